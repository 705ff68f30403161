package edge_test

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

const appOrigin = "https://app.example.com"

type httpAnswer struct {
	status int
	header http.Header
	code   string // error.code of a JSON error body
	msg    string // error.message
	body   []byte
}

func do(t *testing.T, method, url, origin, bearer, body string, extra http.Header) httpAnswer {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for k, v := range extra {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var eb struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	_ = json.Unmarshal(b, &eb)
	return httpAnswer{status: resp.StatusCode, header: resp.Header, code: eb.Error.Code, msg: eb.Error.Message, body: b}
}

// ALLSPARK_ALLOWED_ORIGINS governs CORS on every endpoint browsers call,
// never touches /v1/messages, and leaves requests without Origin alone.
func TestCORS(t *testing.T) {
	c := newCluster(t)
	listed := c.edge("edge-listed", func(cfg *edge.Config) { cfg.AllowedOrigins = []string{appOrigin, "http://localhost:3000"} })
	anyOrigin := c.edge("edge-any", func(cfg *edge.Config) { cfg.AllowedOrigins = []string{"*"} })
	same := c.edge("edge-same") // default: same origin only
	sameOrigin := same.http.URL // http://127.0.0.1:port, which is also the Host of requests to it
	alice := c.authKey("alice", "alice")
	preflight := http.Header{"Access-Control-Request-Method": {"POST"}, "Access-Control-Request-Headers": {"authorization,content-type"}}

	cases := []struct {
		name       string
		e          *testEdge
		method     string
		path       string
		origin     string
		bearer     string
		body       string
		header     http.Header
		wantStatus int
		wantCode   string
		wantCORS   bool // Access-Control-Allow-Origin echoes the origin
	}{
		{"listed origin connects", listed, "GET", "/v1/connect", appOrigin, alice, "", nil, 200, "", true},
		{"second listed origin", listed, "GET", "/v1/connect", "http://localhost:3000", alice, "", nil, 200, "", true},
		{"listed origin, explicit default port", listed, "GET", "/v1/connect", "https://APP.example.com:443", alice, "", nil, 200, "", true},
		{"unlisted origin refused", listed, "GET", "/v1/connect", "https://evil.example.com", alice, "", nil, 403, "forbidden", false},
		{"other port refused", listed, "GET", "/v1/connect", "http://localhost:3001", alice, "", nil, 403, "forbidden", false},
		{"null origin refused", listed, "GET", "/v1/connect", "null", alice, "", nil, 403, "forbidden", false},
		{"no origin unaffected", listed, "GET", "/v1/connect", "", alice, "", nil, 200, "", false},
		{"AllSparkRT pre-connection info", listed, "GET", "/?get_pre_connection_info=true", appOrigin, alice, "", nil, 200, "", true},
		{"create session", listed, "POST", "/v1/sessions", appOrigin, alice, `{"session_id":"cors-room"}`, nil, 201, "", true},
		{"get session", listed, "GET", "/v1/sessions/cors-room", appOrigin, alice, "", nil, 200, "", true},
		{"AllSparkRT create_session", listed, "POST", "/create_session?session_id=cors-room-2", appOrigin, alice, "", nil, 201, "", true},
		{"unlisted origin cannot create a session", listed, "POST", "/v1/sessions", "https://evil.example.com", alice, `{"session_id":"evil-room"}`, nil, 403, "forbidden", false},
		{"push token", listed, "POST", "/v1/push-tokens", appOrigin, alice, `{"platform":"fcm","token":"tok-1"}`, nil, 200, "", true},
		{"push token removal", listed, "DELETE", "/v1/push-tokens/tok-1", appOrigin, alice, "", nil, 200, "", true},
		{"auth failure still gets CORS, so the page can read the 401", listed, "GET", "/v1/connect", appOrigin, "garbage", "", nil, 401, "unauthorized", true},
		{"preflight, listed origin", listed, "OPTIONS", "/v1/sessions", appOrigin, "", "", preflight, 204, "", true},
		{"preflight of a path with an id", listed, "OPTIONS", "/v1/push-tokens/abc", appOrigin, "", "", preflight, 204, "", true},
		{"preflight of an AllSparkRT name", listed, "OPTIONS", "/v1/join_session", appOrigin, "", "", preflight, 204, "", true},
		{"preflight, unlisted origin", listed, "OPTIONS", "/v1/connect", "https://evil.example.com", "", "", preflight, 403, "forbidden", false},
		{"any origin under *", anyOrigin, "GET", "/v1/connect", "https://whoever.example.org", alice, "", nil, 200, "", true},
		{"preflight under *", anyOrigin, "OPTIONS", "/v1/connect", "https://whoever.example.org", "", "", preflight, 204, "", true},
		{"same origin by default", same, "GET", "/v1/connect", sameOrigin, alice, "", nil, 200, "", true},
		{"same origin also when a list is configured", listed, "GET", "/v1/connect", listed.http.URL, alice, "", nil, 200, "", true},
		{"other origin refused by default", same, "GET", "/v1/connect", appOrigin, alice, "", nil, 403, "forbidden", false},
		{"same host, other port refused by default", same, "GET", "/v1/connect", "http://127.0.0.1:1", alice, "", nil, 403, "forbidden", false},
		{"no origin unaffected by default", same, "GET", "/v1/connect", "", alice, "", nil, 200, "", false},
		{"backend messages never CORS, listed origin", listed, "POST", "/v1/messages", appOrigin, "test-api-key", `{"src_id":"svc","dest_id":"nobody","payload":1}`, nil, 200, "", false},
		{"backend messages ignore a disallowed origin", same, "POST", "/v1/messages", "https://evil.example.com", "test-api-key", `{"src_id":"svc","dest_id":"nobody","payload":1}`, nil, 200, "", false},
		{"backend messages have no preflight", listed, "OPTIONS", "/v1/messages", appOrigin, "", "", preflight, 405, "method_not_allowed", false},
		{"wrong method on a known path", listed, "POST", "/v1/connect", "", alice, "", nil, 405, "method_not_allowed", false},
		{"health has no CORS", listed, "GET", "/healthz", "https://evil.example.com", "", "", nil, 200, "", false},
		{"dev tokens off: not found", listed, "POST", "/v1/dev/token", appOrigin, "", `{"node_id":"x"}`, nil, 404, "not_found", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := do(t, tc.method, tc.e.http.URL+tc.path, tc.origin, tc.bearer, tc.body, tc.header)
			if got.status != tc.wantStatus || got.code != tc.wantCode {
				t.Fatalf("%s %s from %q: %d %q, want %d %q", tc.method, tc.path, tc.origin, got.status, got.code, tc.wantStatus, tc.wantCode)
			}
			acao := got.header.Get("Access-Control-Allow-Origin")
			if tc.wantCORS != (acao != "") || (tc.wantCORS && acao != tc.origin) {
				t.Fatalf("Access-Control-Allow-Origin = %q, want CORS=%v echoing %q", acao, tc.wantCORS, tc.origin)
			}
			if tc.origin != "" && (tc.wantCORS || tc.wantStatus == 403) && !strings.Contains(got.header.Get("Vary"), "Origin") {
				t.Fatalf("Vary = %q, want Origin", got.header.Get("Vary"))
			}
			if !tc.wantCORS && got.header.Get("Access-Control-Allow-Methods") != "" {
				t.Fatalf("CORS headers on a refused or non-browser answer: %v", got.header)
			}
			if tc.method == "OPTIONS" && tc.wantStatus == 204 {
				h := got.header
				if m := h.Get("Access-Control-Allow-Methods"); !strings.Contains(m, "POST") || !strings.Contains(m, "GET") || !strings.Contains(m, "DELETE") {
					t.Fatalf("Access-Control-Allow-Methods = %q", m)
				}
				if a := h.Get("Access-Control-Allow-Headers"); !strings.Contains(a, "Authorization") || !strings.Contains(a, "Content-Type") {
					t.Fatalf("Access-Control-Allow-Headers = %q", a)
				}
				if h.Get("Access-Control-Allow-Credentials") != "" {
					t.Fatal("credentials must not be allowed: clients use bearer keys")
				}
			}
		})
	}
}

// The websocket upgrade checks Origin before anything else: a disallowed
// one is refused 403 with a JSON error and never upgraded; an allowed one,
// or none, connects.
func TestWebsocketOrigin(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-ws", func(cfg *edge.Config) { cfg.AllowedOrigins = []string{appOrigin} })
	key := c.authKey("alice", "alice")
	u := e.wsURL("auth_key=" + key)

	// A real websocket client from a disallowed origin: 403, no upgrade,
	// even with valid credentials.
	_, resp, err := wstest.DialHeader(u, http.Header{"Origin": {"https://evil.example.com"}})
	if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial from a disallowed origin: err %v, status %d; want 403", err, status)
	}
	// The same handshake over plain HTTP, to read the body.
	hs := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
		"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
	if got := do(t, "GET", e.http.URL+"/v1/ws?auth_key="+key, "https://evil.example.com", "", "", hs); got.status != 403 || got.code != "forbidden" {
		t.Fatalf("upgrade from a disallowed origin: %d %q, want 403 forbidden", got.status, got.code)
	}
	// A disallowed origin is refused before credentials are looked at.
	if got := do(t, "GET", e.http.URL+"/v1/ws?auth_key=garbage", "https://evil.example.com", "", "", hs); got.status != 403 || got.code != "forbidden" {
		t.Fatalf("upgrade from a disallowed origin with bad credentials: %d %q, want 403 forbidden", got.status, got.code)
	}
	if n := e.srv.Connections(); n != 0 {
		t.Fatalf("%d connections after refused upgrades", n)
	}

	for _, origin := range []string{appOrigin, ""} {
		var h http.Header
		if origin != "" {
			h = http.Header{"Origin": {origin}}
		}
		cl, resp, err := wstest.DialHeader(u, h)
		if err != nil {
			t.Fatalf("dial with Origin %q: %v (%v)", origin, err, resp)
		}
		if f := cl.Next(t, wait); f.Type != "sync_done" {
			t.Fatalf("origin %q: got %s, want sync_done", origin, f.Raw)
		}
		cl.Close()
	}
}

// ALLSPARK_ALLOWED_ORIGINS entries must be origins or "*".
func TestAllowedOriginsValidation(t *testing.T) {
	for _, tc := range []struct {
		list []string
		ok   bool
	}{
		{nil, true},
		{[]string{"*"}, true},
		{[]string{"https://app.example.com", " http://localhost:3000 ", ""}, true},
		{[]string{"https://app.example.com/"}, true},
		{[]string{"capacitor://localhost"}, true},
		{[]string{"app.example.com"}, false},
		{[]string{"https://app.example.com/chat"}, false},
		{[]string{"https://app.example.com?x=1"}, false},
		{[]string{"https://user@app.example.com"}, false},
		{[]string{"null"}, false},
	} {
		cfg := testConfig("e", "http://127.0.0.1:1")
		cfg.AllowedOrigins = tc.list
		err := cfg.Validate()
		if (err == nil) != tc.ok || (err != nil && !strings.Contains(err.Error(), "ALLSPARK_ALLOWED_ORIGINS")) {
			t.Errorf("%q: err %v, want ok=%v naming ALLSPARK_ALLOWED_ORIGINS", tc.list, err, tc.ok)
		}
	}
}
