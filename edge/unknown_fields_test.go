package edge_test

import (
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// A misspelt field is rejected with bad_frame naming it on every way in
// (websocket, POST /v1/messages, allspark.send), and nothing reaches the
// recipient: the first message bob gets is the barrier sent afterwards.
func TestMisspeltFieldIsRejectedEverywhere(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	bob := c.dial(a, "bob", "bob")

	alice.SendRaw(t, `{"id":"c-1","dest_id":"bob","paylod":"hi"}`)
	f := alice.Next(t, wait)
	if f.Type != "error" || f.Code != "bad_frame" || f.ID != "c-1" || !strings.Contains(f.Message, `unknown field "paylod"`) {
		t.Fatalf("websocket: got %s", f.Raw)
	}

	status, body := postMessage(t, a.http.URL, "test-api-key", `{"src_id":"svc","dest_id":"bob","paylod":"hi"}`)
	if status != 400 || !strings.Contains(body, `"code":"bad_frame"`) || !strings.Contains(body, `unknown field \"paylod\"`) {
		t.Fatalf("POST /v1/messages: %d %s", status, body)
	}

	nc := testutil.Connect(t, c.ns.ClientURL())
	reply, err := nc.Request("allspark.send", []byte(`{"src_id":"svc","dest_id":"bob","paylod":"hi"}`), wait)
	if err != nil {
		t.Fatal(err)
	}
	if r := string(reply.Data); !strings.Contains(r, `"status":"rejected"`) || !strings.Contains(r, `unknown field \"paylod\"`) {
		t.Fatalf("allspark.send: %s", r)
	}

	alice.SendRaw(t, `{"id":"barrier","dest_id":"bob","payload":"barrier"}`)
	if m := bob.Until(t, wait, wstest.Frame.IsMessage); string(m.Payload) != `"barrier"` {
		t.Fatalf("bob's first message is %s, want the barrier", m.Raw)
	}
	if s := alice.Until(t, wait, func(f wstest.Frame) bool { return f.Type == "sent" }); s.ID != "barrier" || s.Status != "delivered" {
		t.Fatalf("barrier answered %s", s.Raw)
	}
}
