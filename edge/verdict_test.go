package edge_test

import (
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/wstest"
)

// A delivery handed to two connections of one node on this edge is
// answered "+" if either acks: one connection closing first (its "-") must
// not win over the other's ack, or the sender would store a message the
// node has already taken.
func TestOneConnectionClosingDoesNotOverrideAnotherAck(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a")
	first, second := c.dial(e, "bob", "bob"), c.dial(e, "bob", "bob")
	first.SetAutoAck(false)
	second.SetAutoAck(false)
	alice := c.dial(e, "alice", "alice")
	alice.Send(t, map[string]any{"id": "m", "dest_id": "bob", "payload": "hi"})
	isMsg := func(f wstest.Frame) bool { return f.IsMessage() }
	msg := first.Until(t, 10*time.Second, isMsg)
	second.Until(t, 10*time.Second, isMsg)

	first.Close()      // gives up on the delivery
	waitConns(t, e, 2) // bob's second connection and alice
	second.Ack(t, msg.MsgID)
	sent := alice.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" })
	if sent.Status != "delivered" {
		t.Fatalf("answer %s, want delivered (the second connection acked)", sent.Raw)
	}
}
