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

func TestCheckDepth(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	cases := []struct {
		in string
		ok bool
	}{
		{`{"a":` + nest(3) + `}`, true},                       // depth 4
		{`{"a":` + nest(4) + `}`, false},                      // depth 5
		{`{"a":"` + strings.Repeat("[{", 50) + `"}`, true},    // brackets in strings do not nest
		{`{"a":"\"` + strings.Repeat("[", 50) + `\\"}`, true}, // nor after escaped quotes
		{`{"a":"\\\\",` + `"b":` + nest(3) + `}`, true},       // an escaped backslash ends the string
		{`{"a":{"b":{"c":{"d":{}}}}}`, false},
	}
	for _, c := range cases {
		err := CheckDepth([]byte(c.in), 4)
		if (err == nil) != c.ok {
			t.Errorf("%.60s: err %v, want ok=%v", c.in, err, c.ok)
		}
		if err != nil && (err.Code != CodeBadFrame || !strings.Contains(err.Message, "4 levels")) {
			t.Errorf("%.60s: err %v, want bad_frame naming the limit", c.in, err)
		}
	}
	deep := `{"payload":` + nest(9000) + `}`
	if err := DecodeObject([]byte(deep), &struct {
		Payload any `json:"payload"`
	}{}); err == nil || !strings.Contains(err.Message, "64 levels") {
		t.Fatalf("9000-deep payload: %v, want bad_frame at the default 64", err)
	}
}

// Decode errors name fields and JSON kinds, never Go types: the text goes
// to clients.
func TestDecodeErrorsNameNoGoTypes(t *testing.T) {
	type frame struct {
		Type  string   `json:"type"`
		Limit int      `json:"limit"`
		IDs   []string `json:"ids"`
		Seq   uint64   `json:"seq"`
	}
	cases := map[string]string{
		`{"type":7}`:    `field "type" must be a string, got number`,
		`{"limit":"x"}`: `field "limit" must be an integer, got string`,
		`{"ids":{}}`:    `field "ids" must be an array, got object`,
		`{"seq":-1}`:    `field "seq" must be a non-negative integer`,
		`{"type":"a",}`: "invalid JSON at byte",
		`[1]`:           "expected an object, got array",
		`{"type":"a"`:   "invalid JSON",
	}
	for in, want := range cases {
		err := DecodeObject([]byte(in), &frame{})
		if err == nil || !strings.Contains(err.Message, want) {
			t.Errorf("%s: %v, want %q", in, err, want)
			continue
		}
		for _, leak := range []string{"Go ", "frame", "json:", "uint64", "[]string", "int "} {
			if strings.Contains(err.Message, leak) {
				t.Errorf("%s: message %q names a Go type (%q)", in, err.Message, leak)
			}
		}
	}
}
