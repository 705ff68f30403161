package envconfig

import (
	"strings"
	"testing"
	"time"
)

type Inner struct {
	Timeout time.Duration `env:"ACK_TIMEOUT" envDefault:"2s"`
}

type sample struct {
	Inner
	Frames int `env:"MAX_FRAME_BYTES" envDefault:"65536"`
}

// An unparsable value is reported with the variable's name, the value
// given and the parser's reason, never as a formatting artefact.
func TestParseErrorNamesVariableAndValue(t *testing.T) {
	cases := map[string]struct {
		env        map[string]string
		want       []string
		wantAbsent string
	}{
		"duration": {map[string]string{"ALLSPARK_ACK_TIMEOUT": "abc"},
			[]string{`ALLSPARK_ACK_TIMEOUT="abc"`, "time.Duration", `invalid duration`}, ""},
		"int": {map[string]string{"ALLSPARK_MAX_FRAME_BYTES": "lots"},
			[]string{`ALLSPARK_MAX_FRAME_BYTES="lots"`, "int", "invalid syntax"}, "ACK_TIMEOUT"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			var cfg sample
			err := Load(&cfg, func(k string) string { return tc.env[k] })
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if strings.Contains(msg, "%!") {
				t.Fatalf("formatting artefact in %q", msg)
			}
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %s", msg, w)
				}
			}
			if tc.wantAbsent != "" && strings.Contains(msg, tc.wantAbsent) {
				t.Errorf("error %q mentions %s, which was valid", msg, tc.wantAbsent)
			}
		})
	}
}

func TestLoadDefaultsAndValues(t *testing.T) {
	var cfg sample
	env := map[string]string{"ALLSPARK_ACK_TIMEOUT": "5s"}
	if err := Load(&cfg, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 5*time.Second || cfg.Frames != 65536 {
		t.Fatalf("cfg = %+v", cfg)
	}
}
