package engine

import (
	"errors"
	"strings"
	"testing"
)

type closeCounter struct{ n *int }

func (c closeCounter) Close() { *c.n++ }

// TestProviderRegistry: a provider library is registered once per process,
// whatever the number of Loads; the same name from another path is refused,
// and a failed registration is tried again by the next Load.
func TestProviderRegistry(t *testing.T) {
	var p providerRegistry
	calls, closed := 0, 0
	register := func(fail bool) func() (interface{ Close() }, error) {
		return func() (interface{ Close() }, error) {
			calls++
			if fail {
				return nil, errors.New("no such library")
			}
			return closeCounter{&closed}, nil
		}
	}
	for i, tc := range []struct {
		name, path string
		fail       bool
		wantErr    string
		wantCalls  int
	}{
		{"CUDA", "/lib/a.so", true, "no such library", 1},
		{"CUDA", "/lib/a.so", false, "", 2},
		{"CUDA", "/lib/a.so", false, "", 2},
		{"CUDA", "/lib/b.so", false, "registered from /lib/a.so", 2},
		{"Other", "/lib/b.so", false, "", 3},
	} {
		err := p.once(tc.name, tc.path, register(tc.fail))
		if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
			t.Errorf("%d: %s from %s: error %v, want %q", i, tc.name, tc.path, err, tc.wantErr)
		}
		if calls != tc.wantCalls {
			t.Errorf("%d: %d registrations, want %d", i, calls, tc.wantCalls)
		}
	}
	if len(p.keep) != 2 || closed != 0 {
		t.Errorf("%d environment references kept (%d closed), want 2 and none closed", len(p.keep), closed)
	}
}
