package allspark

import (
	"strings"
	"testing"
)

func TestValidID(t *testing.T) {
	cases := map[string]bool{
		"bob": true, "a.b.*.>": true, "with space": true, "ünïcødé ✓": true, strings.Repeat("x", 128): true,
		"": false, strings.Repeat("x", 129): false, "tab\there": false, "nul\x00": false, "bell\a": false,
		"\xff\xfe": false, "del\x7f": false, "c1\u0085": false,
	}
	for id, want := range cases {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
}
