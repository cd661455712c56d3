package version

import "testing"

func TestBuildString(t *testing.T) {
	tests := []struct {
		b    Build
		want string
	}{
		{Build{Version: "1.2.3"}, "1.2.3"},
		{Build{Version: "1.2.3", Revision: "0123456789abcdef0123"}, "1.2.3 (0123456789ab)"},
		{Build{Version: "1.2.3", Revision: "abc", Modified: true}, "1.2.3 (abc, modified)"},
	}
	for _, tc := range tests {
		if got := tc.b.String(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.b, got, tc.want)
		}
	}
	if Current().Version != Version {
		t.Errorf("Current().Version = %q, want %q", Current().Version, Version)
	}
}
