package edge_test

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// Refused credentials: a client without Origin gets the 401 before the
// upgrade; a browser (Origin header, allowed) gets an upgrade closed at
// once with 4001 and a reason it can read, and nothing else.
func TestWebsocketCredentialsRefused(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-auth", func(cfg *edge.Config) { cfg.AllowedOrigins = []string{appOrigin} })
	past, err := auth.NewKeys(testSecret, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	if err != nil {
		t.Fatal(err)
	}
	alice := auth.Identity{NodeID: "alice"}
	expiredKey, _ := past.MintAuthKey(alice, time.Hour)
	expiredVT, _, _ := past.MintValidationToken(alice, time.Minute)
	bobVT, _, _ := c.keys.MintValidationToken(auth.Identity{NodeID: "bob"}, time.Minute)
	aliceKey := c.authKey("alice", "alice")
	q := url.QueryEscape

	cases := []struct {
		name, query, reason, httpMessage string
	}{
		{"missing", "", "credentials missing", "auth_key or validation_token required"},
		{"expired auth_key", "auth_key=" + q(expiredKey), "auth_key expired", "auth_key expired"},
		{"invalid auth_key", "auth_key=garbage", "auth_key invalid", "auth_key invalid"},
		{"expired validation token", "validation_token=" + q(expiredVT), "validation token expired", "validation_token expired"},
		{"invalid validation token", "validation_token=garbage", "validation token invalid", "validation_token invalid"},
		{"auth_key passed as validation token", "validation_token=" + q(aliceKey), "validation token invalid", "validation_token invalid"},
		{"credentials of two nodes", "auth_key=" + q(aliceKey) + "&validation_token=" + q(bobVT), "validation token invalid", "auth_key and validation_token name different nodes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			u := e.wsURL(tc.query)

			// Browser: upgraded, then 4001 with the reason, no frame before it.
			cl, resp, err := wstest.DialHeader(u, http.Header{"Origin": {appOrigin}})
			if err != nil {
				t.Fatalf("browser dial: %v (%v); want an upgrade closed with 4001", err, resp)
			}
			if code := cl.WaitClose(t, wait); code != 4001 {
				t.Fatalf("close code %d, want 4001", code)
			}
			if got := cl.CloseReason(); got != tc.reason {
				t.Fatalf("close reason %q, want %q", got, tc.reason)
			}
			select {
			case f := <-cl.Frames():
				t.Fatalf("frame before the close: %s", f.Raw)
			default:
			}

			// Native client: a plain 401 before any upgrade.
			_, resp, err = wstest.DialErr(u)
			if err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("native dial: err %v, resp %v; want 401", err, resp)
			}
			hs := http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
				"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}
			if got := do(t, "GET", e.http.URL+"/v1/ws?"+tc.query, "", "", "", hs); got.status != 401 || got.code != "unauthorized" || got.msg != tc.httpMessage {
				t.Fatalf("native upgrade: %d %q %q, want 401 unauthorized %q", got.status, got.code, got.msg, tc.httpMessage)
			}
		})
	}
	if n := e.srv.Connections(); n != 0 {
		t.Fatalf("%d connections registered by refused upgrades", n)
	}

	// Valid credentials from a browser still connect normally.
	cl, _, err := wstest.DialHeader(e.wsURL("auth_key="+q(aliceKey)), http.Header{"Origin": {appOrigin}})
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if f := cl.Next(t, wait); f.Type != "sync_done" {
		t.Fatalf("got %s, want sync_done", f.Raw)
	}
}
