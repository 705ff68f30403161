package edge_test

import (
	"encoding/json"
	"github.com/allspark-rt/allspark/edge"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/lxzan/gws"
)

// wsGet performs a websocket handshake request by hand so the test sees
// the exact HTTP answer to bad credentials.
func wsGet(t *testing.T, rawURL string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", rawURL, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

func TestBadCredentialsGet401BeforeUpgrade(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	forger, _ := auth.NewKeys("some-other-secret-0123456789", time.Now)
	forged, _ := forger.MintAuthKey(auth.Identity{NodeID: "alice"}, time.Hour)
	past, _ := auth.NewKeys(testSecret, func() time.Time { return time.Now().Add(-2 * time.Hour) })
	expired, _ := past.MintAuthKey(auth.Identity{NodeID: "alice"}, time.Hour)
	expiredVT, _, _ := past.MintValidationToken(auth.Identity{NodeID: "alice"}, time.Minute, time.Now().Add(-time.Hour))
	bobVT, _, _ := c.keys.MintValidationToken(auth.Identity{NodeID: "bob"}, time.Minute, time.Now().Add(time.Hour))
	good := c.authKey("alice", "alice")
	q := url.QueryEscape

	base := "http://" + a.http.Listener.Addr().String()
	cases := []struct {
		name, path, want string
	}{
		{"ws: nothing", "/v1/ws", "auth_key or validation_token required"},
		{"ws: malformed auth_key", "/v1/ws?auth_key=abc", "auth_key invalid"},
		{"ws: forged auth_key", "/v1/ws?auth_key=" + q(forged), "auth_key invalid"},
		{"ws: expired auth_key", "/v1/ws?auth_key=" + q(expired), "auth_key expired"},
		{"ws: auth_key as validation_token", "/v1/ws?validation_token=" + q(good), "validation_token invalid"},
		{"ws: expired validation_token", "/v1/ws?validation_token=" + q(expiredVT), "validation_token expired"},
		{"ws: tokens for different nodes", "/v1/ws?auth_key=" + q(good) + "&validation_token=" + q(bobVT), "auth_key and validation_token name different nodes"},
		{"connect: missing", "/v1/connect", "auth_key missing"},
		{"connect: forged", "/v1/connect?auth_key=" + q(forged), "auth_key invalid"},
		{"connect: expired", "/v1/connect?auth_key=" + q(expired), "auth_key expired"},
		{"seed connect: missing", "/?get_pre_connection_info=true", "auth_key missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := wsGet(t, base+tc.path)
			want, _ := json.Marshal(map[string]any{"error": map[string]string{"code": "unauthorized", "message": tc.want}})
			if status != 401 || body != string(want) {
				t.Fatalf("got %d %s, want 401 %s", status, body, want)
			}
		})
	}
	if n := a.srv.Connections(); n != 0 {
		t.Fatalf("%d connections registered by rejected handshakes", n)
	}
}

func TestBadFramesGetErrorFramesAndConnectionStays(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	long := strings.Repeat("x", 129)

	cases := []struct {
		name, frame, code, id string
	}{
		{"not json", `hello`, "bad_frame", ""},
		{"json array", `[1,2]`, "bad_frame", ""},
		{"truncated json", `{"dest_id":"bob"`, "bad_frame", ""},
		{"unknown type", `{"type":"launch","id":"k1"}`, "unknown_type", "k1"},
		{"empty dest id", `{"id":"k2","dest_id":""}`, "bad_id", "k2"},
		{"too long dest id", `{"id":"k3","dest_id":"` + long + `"}`, "bad_id", "k3"},
		{"control char in id", `{"id":"k4","dest_client_id":"a\u0007b"}`, "bad_id", "k4"},
		{"two destinations", `{"id":"k5","dest_id":"bob","dest_client_id":"bob"}`, "bad_frame", "k5"},
		{"three destinations", `{"id":"k6","dest_id":"a","dest_client_id":"b","dest_session_id":"c"}`, "bad_frame", "k6"},
		{"id of wrong type", `{"id":7,"dest_id":"bob"}`, "bad_frame", ""},
		{"ack without ids", `{"type":"ack"}`, "bad_frame", ""},
		{"message type without dest", `{"type":"message","id":"k7"}`, "bad_frame", "k7"},
		{"sync without session", `{"type":"sync","id":"k8"}`, "bad_id", "k8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			alice.SendRaw(t, tc.frame)
			f := alice.Next(t, wait)
			if f.Type != "error" || f.Code != tc.code || f.ID != tc.id || f.Message == "" {
				t.Fatalf("got %s, want error %s id %q", f.Raw, tc.code, tc.id)
			}
		})
	}
	t.Run("binary frame", func(t *testing.T) {
		if err := alice.WriteMessage(gws.OpcodeBinary, []byte(`{"dest_id":"bob"}`)); err != nil {
			t.Fatal(err)
		}
		if f := alice.Next(t, wait); f.Type != "error" || f.Code != "bad_frame" {
			t.Fatalf("got %s", f.Raw)
		}
	})
	// Still connected and served.
	alice.SendRaw(t, `{"type":"ping"}`)
	if f := alice.Next(t, wait); f.Type != "pong" {
		t.Fatalf("got %s", f.Raw)
	}
}

func TestOversizedFrameClosesWith1009(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.MaxFrameBytes = 1024 })
	alice := c.dial(a, "alice", "alice")
	alice.SendRaw(t, `{"dest_id":"bob","payload":"`+strings.Repeat("x", 1100)+`"}`)
	if code := alice.WaitClose(t, wait); code != 1009 {
		t.Fatalf("close code %d, want 1009", code)
	}
	waitConns(t, a, 0)
}

// A message to a node that is not connected anywhere is stored at once
// (NATS reports no responders), not left waiting for a timeout.
func TestOfflineTargetIsAnswered(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	alice.Send(t, map[string]any{"id": "x", "dest_id": "nobody", "payload": 1})
	f := alice.Until(t, time.Second, func(f wstest.Frame) bool { return f.Type == "sent" })
	if f.ID != "x" || f.MsgID == "" || f.Status != "stored" {
		t.Fatalf("got %s", f.Raw)
	}
}

// Unknown paths get JSON 404s.
func TestUnknownPath(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	status, body := wsGet(t, a.http.URL+"/nope")
	if status != 404 || body != `{"error":{"code":"not_found","message":"no such endpoint"}}` {
		t.Fatalf("%d %s", status, body)
	}
}
