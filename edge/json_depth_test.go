package edge_test

import (
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// nested is a JSON array nested depth deep.
func nested(depth int) string { return strings.Repeat("[", depth) + strings.Repeat("]", depth) }

// A payload nested past ALLSPARK_MAX_JSON_DEPTH is refused bad_frame,
// naming the limit, on every way in, and nothing reaches the recipient;
// one at the limit is routed. The edge runs with a limit of 8, so the
// outer object plus a payload 7 deep passes and 8 deep does not.
func TestJSONDepthLimitEverywhere(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.MaxJSONDepth = 8 })
	alice := c.dial(a, "alice", "alice")
	bob := c.dial(a, "bob", "bob")
	tooDeep := `{"src_id":"svc","dest_id":"bob","payload":` + nested(8) + `}`

	alice.SendRaw(t, `{"id":"deep","dest_id":"bob","payload":`+nested(8)+`}`)
	f := alice.Next(t, wait)
	if f.Type != "error" || f.Code != "bad_frame" || !strings.Contains(f.Message, "deeper than 8 levels") {
		t.Fatalf("websocket: got %s, want error bad_frame naming the limit", f.Raw)
	}
	// A frame 9,000 deep is refused the same way, and the connection stays.
	alice.SendRaw(t, `{"id":"bomb","dest_id":"bob","payload":`+nested(9000)+`}`)
	if f := alice.Next(t, wait); f.Type != "error" || f.Code != "bad_frame" {
		t.Fatalf("websocket, 9000 deep: got %s", f.Raw)
	}

	status, body := postMessage(t, a.http.URL, "test-api-key", tooDeep)
	if status != 400 || !strings.Contains(body, `"code":"bad_frame"`) || !strings.Contains(body, "deeper than 8 levels") {
		t.Fatalf("POST /v1/messages: %d %s", status, body)
	}

	nc := testutil.Connect(t, c.ns.ClientURL())
	reply, err := nc.Request("allspark.send", []byte(tooDeep), wait)
	if err != nil {
		t.Fatal(err)
	}
	if r := string(reply.Data); !strings.Contains(r, `"status":"rejected"`) || !strings.Contains(r, "deeper than 8 levels") {
		t.Fatalf("allspark.send: %s", r)
	}

	alice.SendRaw(t, `{"id":"ok","dest_id":"bob","payload":`+nested(7)+`}`)
	if m := bob.Until(t, wait, wstest.Frame.IsMessage); string(m.Payload) != nested(7) {
		t.Fatalf("bob's first message is %s, want the one at the limit", m.Raw)
	}
	if s := alice.Until(t, wait, func(f wstest.Frame) bool { return f.Type == "sent" }); s.ID != "ok" || s.Status != "delivered" {
		t.Fatalf("message at the limit answered %s", s.Raw)
	}
}

// The default limit is 64.
func TestJSONDepthDefault(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	alice.SendRaw(t, `{"id":"deep","dest_id":"bob","payload":`+nested(64)+`}`)
	if f := alice.Next(t, wait); f.Type != "error" || f.Code != "bad_frame" || !strings.Contains(f.Message, "64 levels") {
		t.Fatalf("65 deep: got %s", f.Raw)
	}
}

// Error answers name fields, not Go types.
func TestErrorsNameNoGoTypes(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	alice.SendRaw(t, `{"id":"c-1","type":"sync","session_id":"s","limit":"all"}`)
	f := alice.Next(t, wait)
	if f.Code != "bad_frame" || !strings.Contains(f.Message, `field "limit" must be an integer`) || strings.Contains(f.Message, "Go") {
		t.Fatalf("websocket: %s", f.Raw)
	}
	status, body := c.call(a, "POST", "/v1/sessions", "alice", "alice", map[string]any{"allow_anonymous": "yes"})
	if status != 400 || !strings.Contains(body, `field \"allow_anonymous\" must be true or false`) || strings.Contains(body, "Go ") ||
		strings.Contains(body, "sessionRequest") {
		t.Fatalf("POST /v1/sessions: %d %s", status, body)
	}
	status, body = postMessage(t, a.http.URL, "test-api-key", `{"src_id":"svc","dest_id":7}`)
	if status != 400 || strings.Contains(body, "Go ") || strings.Contains(body, "BackendMessage") {
		t.Fatalf("POST /v1/messages: %d %s", status, body)
	}
}
