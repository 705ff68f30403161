package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func envOf(m map[string]string) func(string) string {
	return func(k string) string {
		if v, ok := m[k]; ok {
			return v
		}
		if k == "ALLSPARK_OPS_LISTEN" {
			return "127.0.0.1:0" // the default 127.0.0.1:9090 may be taken by a parallel test
		}
		return ""
	}
}

// The all-in-one edge starts with no setup but a data dir, serves /healthz
// and /readyz, and stops cleanly when its context ends.
func TestServeAllInOne(t *testing.T) {
	vars := map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
	}
	env := envOf(vars)
	base := "http://" + startEdge(t, vars).addr // stopped, and checked to stop cleanly, at the end
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}

	// `edge token` signs with the secret the server generated.
	var out strings.Builder
	if err := run(context.Background(), []string{"token", "--node", "alice"}, env, &out); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", base+"/v1/connect", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(out.String()))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("connect with `edge token` key: %d", resp.StatusCode)
	}

}

func TestInvalidConfigNamesVariable(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"unparsable int":              {map[string]string{"ALLSPARK_MAX_FRAME_BYTES": "lots"}, "ALLSPARK_MAX_FRAME_BYTES"},
		"out of range":                {map[string]string{"ALLSPARK_MAX_FRAME_BYTES": "10"}, "ALLSPARK_MAX_FRAME_BYTES"},
		"bad duration":                {map[string]string{"ALLSPARK_ACK_TIMEOUT": "abc"}, `ALLSPARK_ACK_TIMEOUT="abc"`},
		"bad public url":              {map[string]string{"ALLSPARK_PUBLIC_URL": "ftp://x"}, "ALLSPARK_PUBLIC_URL"},
		"bad prefix":                  {map[string]string{"ALLSPARK_SUBJECT_PREFIX": "a.b"}, "ALLSPARK_SUBJECT_PREFIX"},
		"bad listen":                  {map[string]string{"ALLSPARK_LISTEN": "nope"}, "ALLSPARK_LISTEN"},
		"cluster needs secret":        {map[string]string{"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_LISTEN": "127.0.0.1:0"}, "ALLSPARK_AUTH_SECRET"},
		"short secret":                {map[string]string{"ALLSPARK_AUTH_SECRET": "short", "ALLSPARK_LISTEN": "127.0.0.1:0"}, "ALLSPARK_AUTH_SECRET"},
		"attempt over store timeout":  {map[string]string{"ALLSPARK_STORE_TIMEOUT": "1s", "ALLSPARK_STORE_ATTEMPT_TIMEOUT": "2s"}, "ALLSPARK_STORE_ATTEMPT_TIMEOUT"},
		"no store queue":              {map[string]string{"ALLSPARK_STORE_QUEUE": "0"}, "ALLSPARK_STORE_QUEUE"},
		"store queue bytes too small": {map[string]string{"ALLSPARK_STORE_QUEUE_BYTES": "10"}, "ALLSPARK_STORE_QUEUE_BYTES"},
		"no backend queue":            {map[string]string{"ALLSPARK_BACKEND_QUEUE": "0"}, "ALLSPARK_BACKEND_QUEUE"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tc.env["ALLSPARK_DATA_DIR"] = t.TempDir()
			err := run(context.Background(), nil, envOf(tc.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want mention of %s", err, tc.want)
			}
			if strings.Contains(err.Error(), "%!") {
				t.Fatalf("formatting artefact in %q", err)
			}
		})
	}
}

func TestTokenNeedsNode(t *testing.T) {
	err := run(context.Background(), []string{"token"}, envOf(map[string]string{"ALLSPARK_DATA_DIR": t.TempDir()}), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "--node") {
		t.Fatalf("err = %v", err)
	}
	if err := run(context.Background(), []string{"bogus"}, envOf(nil), io.Discard); err == nil {
		t.Fatal("unknown command accepted")
	}
}
