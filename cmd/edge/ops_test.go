package main

import (
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// /metrics is served on ALLSPARK_OPS_LISTEN and not on the public
// listener; pprof only with ALLSPARK_PPROF=true; the deprecated
// ALLSPARK_PPROF_LISTEN still works and says it is deprecated.
func TestOpsListener(t *testing.T) {
	base := map[string]string{"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{"ALLSPARK_DATA_DIR": t.TempDir()}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}

	e := startEdge(t, with())
	if code, body := get(t, "http://"+e.ops+"/metrics"); code != 200 || !strings.Contains(body, "allspark_connections ") {
		t.Fatalf("ops /metrics: %d, allspark_connections present: %v", code, strings.Contains(body, "allspark_connections "))
	}
	if code, _ := get(t, "http://"+e.addr+"/metrics"); code != 404 {
		t.Fatalf("public /metrics: %d, want 404", code)
	}
	if code, _ := get(t, "http://"+e.ops+"/debug/pprof/"); code != 404 {
		t.Fatalf("pprof without ALLSPARK_PPROF: %d, want 404", code)
	}

	p := startEdge(t, with("ALLSPARK_PPROF", "true"))
	if code, _ := get(t, "http://"+p.ops+"/debug/pprof/"); code != 200 {
		t.Fatalf("pprof with ALLSPARK_PPROF=true: %d", code)
	}
	if code, _ := get(t, "http://"+p.addr+"/debug/pprof/"); code != 404 {
		t.Fatalf("pprof on the public listener: %d, want 404", code)
	}

	d := startEdge(t, with("ALLSPARK_PPROF_LISTEN", "127.0.0.1:0"))
	if d.logged("ALLSPARK_PPROF_LISTEN is deprecated") == "" {
		t.Fatal("no deprecation warning for ALLSPARK_PPROF_LISTEN")
	}
	m := regexp.MustCompile(`msg="pprof listening" addr=(\S+)`).FindStringSubmatch(d.logged(`msg="pprof listening"`))
	if m == nil {
		t.Fatal("no pprof listener logged")
	}
	if code, _ := get(t, "http://"+m[1]+"/debug/pprof/"); code != 200 {
		t.Fatalf("deprecated pprof listener: %d", code)
	}

	off := startEdge(t, with("ALLSPARK_OPS_LISTEN", "off"))
	if off.ops != "" && off.ops != `""` {
		t.Fatalf("ops listener %q with ALLSPARK_OPS_LISTEN=off", off.ops)
	}
}
