package allspark

import (
	"strings"
	"testing"
)

func TestDecodeObject(t *testing.T) {
	type msg struct {
		A string `json:"a"`
	}
	var m msg
	if err := DecodeObject([]byte(" {\"a\":\"x\"}\n"), &m); err != nil || m.A != "x" {
		t.Fatalf("good object: %v %+v", err, m)
	}
	cases := map[string]string{
		`{"a":"x","b":1}`:                        `unknown field "b"`,
		`{"a":"x"} {"a":"y"}`:                    "data after the object",
		`{"a":"x"}]`:                             "data after the object",
		``:                                       "invalid JSON",
		`{"a":`:                                  "invalid JSON",
		`{"a":1}`:                                "invalid JSON",
		`{"` + strings.Repeat("k", 200) + `":1}`: "unknown field",
	}
	for in, want := range cases {
		err := DecodeObject([]byte(in), &msg{})
		if err == nil || err.Code != CodeBadFrame || !strings.Contains(err.Message, want) {
			t.Errorf("%.40q: err %v, want bad_frame %q", in, err, want)
		}
		if err != nil && len(err.Message) > 120 {
			t.Errorf("%.40q: message of %d bytes echoes the input", in, len(err.Message))
		}
	}
}
