package edge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

type errorResp struct {
	Error struct{ Code, Message string } `json:"error"`
}

// httpDo sends one request and returns its status, headers and decoded
// body (as a JSON error: on success its fields stay empty).
func httpDo(t *testing.T, method, url string, header map[string]string) (int, http.Header, errorResp) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body errorResp
	if method != http.MethodHead {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s %s: body %q is not a JSON error: %v", method, url, b, err)
		}
	}
	return resp.StatusCode, resp.Header, body
}

// A known path asked with a method it does not serve answers 405 with a
// JSON error and an Allow header; an unknown path answers 404.
func TestWrongMethodGets405WithAllow(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	base := "http://" + a.http.Listener.Addr().String()
	cases := []struct{ method, path, allow string }{
		{"GET", "/v1/messages", "POST"},
		{"PUT", "/v1/messages", "POST"},
		{"POST", "/v1/connect", "GET, HEAD"},
		{"POST", "/v1/ws", "GET, HEAD"},
		{"POST", "/", "GET, HEAD"},
		{"DELETE", "/healthz", "GET, HEAD"},
		{"POST", "/readyz", "GET, HEAD"},
		{"GET", "/v1/sessions", "POST"},
		{"GET", "/v1/sessions/room-1/join", "POST"},
		{"DELETE", "/v1/sessions/room-1/unjoin", "POST"},
		{"POST", "/v1/sessions/room-1", "GET, HEAD"},
		{"GET", "/v1/push-tokens", "POST"},
		{"GET", "/v1/push-tokens/tok-1", "DELETE"},
	}
	for _, tc := range cases {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			status, h, body := httpDo(t, tc.method, base+tc.path, nil)
			if status != http.StatusMethodNotAllowed || h.Get("Allow") != tc.allow {
				t.Fatalf("got %d Allow %q, want 405 Allow %q", status, h.Get("Allow"), tc.allow)
			}
			if body.Error.Code != "method_not_allowed" || !strings.Contains(body.Error.Message, tc.allow) {
				t.Fatalf("body %v", body)
			}
			if ct := h.Get("Content-Type"); ct != "application/json" {
				t.Fatalf("Content-Type %q", ct)
			}
		})
	}
	for _, path := range []string{"/nope", "/v1/nope", "/v1/sessions/a/b/c"} {
		status, h, body := httpDo(t, "GET", base+path, nil)
		if status != http.StatusNotFound || h.Get("Allow") != "" || body.Error.Code != "not_found" {
			t.Fatalf("GET %s: %d Allow %q %v, want 404 not_found", path, status, h.Get("Allow"), body)
		}
	}
}

// An Authorization header without the Bearer scheme is answered 401 with
// a message saying so, not "auth_key missing"; the scheme is matched
// without regard to case.
func TestAuthorizationNeedsBearerScheme(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	base := "http://" + a.http.Listener.Addr().String()
	key := c.authKey("alice", "alice")
	for _, h := range []string{key, "Basic " + key, "Token " + key} {
		for _, path := range []string{"/v1/connect", "/v1/ws"} {
			status, _, body := httpDo(t, "GET", base+path, map[string]string{"Authorization": h})
			if status != 401 || body.Error.Code != "unauthorized" || !strings.Contains(body.Error.Message, `"Bearer <key>"`) {
				t.Fatalf("GET %s with Authorization %.12q…: %d %v", path, h, status, body)
			}
		}
		status, _, body := httpDo(t, "POST", base+"/v1/sessions", map[string]string{"Authorization": h})
		if status != 401 || !strings.Contains(body.Error.Message, "Bearer") {
			t.Fatalf("POST /v1/sessions: %d %v", status, body)
		}
	}
	status, _, body := httpDo(t, "POST", base+"/v1/messages", map[string]string{"Authorization": a.cfg.APIKey})
	if status != 401 || !strings.Contains(body.Error.Message, `"Bearer <key>"`) {
		t.Fatalf("POST /v1/messages with a bare API key: %d %v", status, body)
	}
	if status, _, body := httpDo(t, "GET", base+"/v1/connect", map[string]string{"Authorization": "bearer " + key}); status != 200 {
		t.Fatalf("lower-case bearer: %d %v", status, body)
	}
	// Another scheme next to ?auth_key= (a proxy's Basic credentials) is left alone.
	if status, _, body := httpDo(t, "GET", base+"/v1/connect?auth_key="+url.QueryEscape(key), map[string]string{"Authorization": "Basic dXNlcjpwdw=="}); status != 200 {
		t.Fatalf("Basic header with ?auth_key=: %d %v", status, body)
	}
	if status, _, body := httpDo(t, "GET", base+"/v1/connect", nil); status != 401 || body.Error.Message != "auth_key missing" {
		t.Fatalf("no credentials: %d %v", status, body)
	}
}
