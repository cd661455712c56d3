package hostmem

import (
	"strings"
	"testing"
)

func TestParseMeminfo(t *testing.T) {
	tests := []struct {
		in   string
		want int64
	}{
		{"MemTotal:       24576000 kB\nMemFree:  100 kB\nMemAvailable:   2048 kB\n", 2048 * 1024},
		{"MemTotal: 1 kB\n", 0},
		{"MemAvailable: x kB\n", 0},
		{"", 0},
	}
	for _, tc := range tests {
		if got := parseMeminfo([]byte(tc.in)); got != tc.want {
			t.Errorf("parseMeminfo(%q) = %d, want %d", tc.in, got, tc.want)
		}
	}
}

func TestCheck(t *testing.T) {
	if err := Check("a tiny thing", 1); err != nil {
		t.Errorf("1 byte: %v", err)
	}
	if err := Check("overflow", -5); err == nil || !strings.Contains(err.Error(), "overflow") {
		t.Errorf("negative need: %v", err)
	}
	if Available() > 0 {
		if err := Check("the whole universe", 1<<62); err == nil || !strings.Contains(err.Error(), "the whole universe needs about") {
			t.Errorf("2^62 bytes: %v", err)
		}
	}
}

func TestBytes(t *testing.T) {
	for n, want := range map[int64]string{3 << 30: "3.0 GiB", 5 << 20: "5 MiB", 10: "1 KiB", 4096: "4 KiB"} {
		if got := Bytes(n); got != want {
			t.Errorf("Bytes(%d) = %q, want %q", n, got, want)
		}
	}
}
