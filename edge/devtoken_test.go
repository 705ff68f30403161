package edge_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// POST /v1/dev/token mints a working auth_key when dev tokens are on, and
// does not exist when they are off.
func TestDevToken(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-dev", func(cfg *edge.Config) { cfg.DevTokens = true; cfg.AllowedOrigins = []string{appOrigin} })
	off := c.edge("edge-nodev")

	mint := func(body string) (httpAnswer, struct {
		AuthKey   string    `json:"auth_key"`
		NodeID    string    `json:"node_id"`
		ClientID  string    `json:"client_id"`
		ExpiresAt time.Time `json:"expires_at"`
	}) {
		t.Helper()
		got := do(t, "POST", e.http.URL+"/v1/dev/token", appOrigin, "", body, http.Header{"Content-Type": {"application/json"}})
		var tok struct {
			AuthKey   string    `json:"auth_key"`
			NodeID    string    `json:"node_id"`
			ClientID  string    `json:"client_id"`
			ExpiresAt time.Time `json:"expires_at"`
		}
		_ = json.Unmarshal(got.body, &tok)
		return got, tok
	}

	got, tok := mint(`{"node_id":"dev-alice","client_id":"acme"}`)
	if got.status != 200 || tok.AuthKey == "" || tok.NodeID != "dev-alice" || tok.ClientID != "acme" {
		t.Fatalf("mint: %d %s", got.status, got.body)
	}
	if got.header.Get("Access-Control-Allow-Origin") != appOrigin {
		t.Fatalf("dev token answer lacks CORS for an allowed origin: %v", got.header)
	}
	if d := time.Until(tok.ExpiresAt); d < 23*time.Hour || d > 24*time.Hour+time.Minute {
		t.Fatalf("expires_at %v is not 24h away", tok.ExpiresAt)
	}
	// The key is a real auth_key: pre-connection info, then the websocket.
	ci := getConnect(t, e.http.URL, "/v1/connect", tok.AuthKey)
	if ci.NodeID != "dev-alice" || ci.ClientID != "acme" {
		t.Fatalf("connect info %+v", ci)
	}
	cl := wstest.Dial(t, e.wsURL("auth_key="+tok.AuthKey))
	if f := cl.Next(t, wait); f.Type != "sync_done" {
		t.Fatalf("got %s, want sync_done", f.Raw)
	}

	if got, tok := mint(`{"node_id":"dev-bob"}`); got.status != 200 || tok.ClientID != "dev-bob" {
		t.Fatalf("mint without client_id: %d %s", got.status, got.body)
	}

	for _, tc := range []struct {
		name, body string
		status     int
		code       string
	}{
		{"empty node id", `{"node_id":""}`, 400, "bad_id"},
		{"no node id", `{}`, 400, "bad_id"},
		{"node id too long", `{"node_id":"` + strings.Repeat("n", 129) + `"}`, 400, "bad_id"},
		{"control character in client id", `{"node_id":"a","client_id":"\u0001"}`, 400, "bad_id"},
		{"not JSON", `node_id=a`, 400, "bad_request"},
		{"body over the limit", `{"node_id":"a","pad":"` + strings.Repeat("x", 2000) + `"}`, 413, "too_large"},
	} {
		if got, _ := mint(tc.body); got.status != tc.status || got.code != tc.code {
			t.Errorf("%s: %d %q, want %d %q", tc.name, got.status, got.code, tc.status, tc.code)
		}
	}
	if got := do(t, "GET", e.http.URL+"/v1/dev/token", "", "", "", nil); got.status != 404 {
		t.Errorf("GET /v1/dev/token: %d, want 404", got.status)
	}
	if got := do(t, "OPTIONS", e.http.URL+"/v1/dev/token", appOrigin, "", "", http.Header{"Access-Control-Request-Method": {"POST"}}); got.status != 204 {
		t.Errorf("preflight of /v1/dev/token: %d, want 204", got.status)
	}
	if got := do(t, "POST", off.http.URL+"/v1/dev/token", "", "", `{"node_id":"a"}`, nil); got.status != 404 || got.code != "not_found" {
		t.Errorf("dev tokens off: %d %q, want 404 not_found", got.status, got.code)
	}
}
