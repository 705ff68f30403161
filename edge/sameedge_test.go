package edge_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// waitSameEdge waits until e shortcuts (or not) its messages to node and
// knows of remote other edges holding it.
func waitSameEdge(t *testing.T, e *testEdge, node string, local bool, remote int) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if l, r := edge.SameEdge(e.srv, node); l != local || r != remote {
			return fmt.Errorf("edge %s for %s: local %v, %d remote holders; want %v, %d", e.cfg.ID, node, l, r, local, remote)
		}
		return nil
	})
}

// sendN sends n messages from alice to bob and returns the msg_ids bob got,
// in order; bob does not ack.
func sendN(t *testing.T, alice, bob *wstest.Client, n int) []string {
	t.Helper()
	for i := range n {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
	}
	ids := make([]string, n)
	for i := range n {
		f := bob.Until(t, wait, wstest.Frame.IsMessage)
		if string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("bob got %s as message %d", f.Raw, i)
		}
		ids[i] = f.MsgID
	}
	return ids
}

// expectStored reads n answers and wants each "stored", for ids in order.
func expectStored(t *testing.T, alice *wstest.Client, ids []string) {
	t.Helper()
	for _, id := range ids {
		if s := alice.Until(t, 10*time.Second, isSent); s.Status != "stored" || s.MsgID != id {
			t.Fatalf("alice got %s, want stored for %s", s.Raw, id)
		}
	}
}

// expectReplay connects bob to e and wants ids replayed, in order.
func expectReplay(t *testing.T, c *cluster, e *testEdge, ids []string) {
	t.Helper()
	_, frames := c.dialSynced(e, "bob", "bob")
	if len(frames) != len(ids)+1 || frames[len(ids)].Pending != len(ids) {
		t.Fatalf("replay: %d frames, want %d messages and sync_done", len(frames), len(ids))
	}
	for i, f := range frames[:len(ids)] {
		if f.MsgID != ids[i] {
			t.Fatalf("replayed %s as message %d, want %s", f.Raw, i, ids[i])
		}
	}
}

// A same-edge delivery not acked within the ack timeout is stored and
// replayed, exactly as one from another edge.
func TestSameEdgeUnackedStoredAndReplayed(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.AckTimeout = 300 * time.Millisecond })
	alice, bob := c.dial(a, "alice", "alice"), c.dial(a, "bob", "bob")
	bob.SetAutoAck(false)
	waitSameEdge(t, a, "bob", true, 0)

	ids := sendN(t, alice, bob, 5)
	expectStored(t, alice, ids)
	if got := edge.SameEdgeDeliveries(a.srv); got != 5 {
		t.Fatalf("%d same-edge deliveries, want 5", got)
	}
	bob.Close()
	waitConns(t, a, 1)
	expectReplay(t, c, a, ids)
}

// A receiver closing before it acks has its same-edge deliveries stored at
// once, long before the ack timeout.
func TestSameEdgeCloseBeforeAckStores(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.AckTimeout = time.Hour })
	alice, bob := c.dial(a, "alice", "alice"), c.dial(a, "bob", "bob")
	bob.SetAutoAck(false)
	waitSameEdge(t, a, "bob", true, 0)

	ids := sendN(t, alice, bob, 5)
	bob.Close()
	expectStored(t, alice, ids)
	expectReplay(t, c, a, ids)
}

// A drain with same-edge deliveries awaiting acks answers every send
// "stored" (not "unavailable": the router still takes stores when the
// drain gives up on them), and the node gets them all on another edge.
func TestSameEdgeDrainStoresPending(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.AckTimeout = time.Hour })
	b := c.edge("edge-b")
	alice, bob := c.dial(a, "alice", "alice"), c.dial(a, "bob", "bob")
	bob.SetAutoAck(false)
	waitSameEdge(t, a, "bob", true, 0)

	ids := sendN(t, alice, bob, 5)
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Second)
	defer cancel()
	drained := make(chan error, 1)
	go func() { drained <- a.srv.Shutdown(ctx) }()
	expectStored(t, alice, ids)
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	expectReplay(t, c, b, ids)
}

// A node on two edges gets a message on both, also when its sender is on
// one of them; once the other edge lets go, the sender's edge shortcuts
// again.
func TestSameEdgeNodeOnTwoEdges(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	alice, onA := c.dial(a, "alice", "alice"), c.dial(a, "bob", "bob")
	waitSameEdge(t, a, "bob", true, 0)
	onB := c.dial(b, "bob", "bob")
	waitSameEdge(t, a, "bob", false, 1)
	waitSameEdge(t, b, "bob", false, 1)

	before := edge.SameEdgeDeliveries(a.srv)
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": "both"})
	for name, cl := range map[string]*wstest.Client{"bob on a": onA, "bob on b": onB} {
		if f := cl.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"both"` {
			t.Fatalf("%s got %s", name, f.Raw)
		}
	}
	if s := alice.Until(t, wait, isSent); s.Status != "delivered" {
		t.Fatalf("alice got %s", s.Raw)
	}
	if got := edge.SameEdgeDeliveries(a.srv); got != before {
		t.Fatalf("%d same-edge deliveries while bob is on two edges", got-before)
	}

	onB.Close()
	waitSameEdge(t, a, "bob", true, 0)
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": "one"})
	if f := onA.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"one"` {
		t.Fatalf("bob on a got %s", f.Raw)
	}
	if s := alice.Until(t, wait, isSent); s.Status != "delivered" {
		t.Fatalf("alice got %s", s.Raw)
	}
	if got := edge.SameEdgeDeliveries(a.srv); got != before+1 {
		t.Fatalf("%d same-edge deliveries after bob left edge b, want 1", got-before)
	}
}

// One ack frame acking some of a node's deliveries from another edge (its
// acks go back batched) settles exactly those: the others are stored.
func TestBatchedAcksOnlyAckAcked(t *testing.T) {
	c := newCluster(t)
	short := func(cfg *edge.Config) { cfg.AckTimeout = 500 * time.Millisecond }
	a, b := c.edge("edge-a", short), c.edge("edge-b", short)
	alice, bob := c.dial(a, "alice", "alice"), c.dial(b, "bob", "bob")
	bob.SetAutoAck(false)

	ids := sendN(t, alice, bob, 8)
	var acked []string
	want := map[string]string{}
	for i, id := range ids {
		want[id] = "stored"
		if i%2 == 0 {
			acked = append(acked, id)
			want[id] = "delivered"
		}
	}
	bob.Ack(t, acked...)
	for range ids {
		s := alice.Until(t, 10*time.Second, isSent)
		if s.Status != want[s.MsgID] {
			t.Fatalf("alice got %s, want %s", s.Raw, want[s.MsgID])
		}
	}
}

// One sender's messages keep their order while the sender's edge goes from
// sending through NATS (the node is on another edge too) to handing them
// over directly (the other edge let go): the switch waits until the
// messages already in NATS have been handed over.
func TestSameEdgeSwitchKeepsOrder(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	alice, onA := c.dial(a, "alice", "alice"), c.dial(a, "bob", "bob")
	onB := c.dial(b, "bob", "bob")
	waitSameEdge(t, a, "bob", false, 1)

	const n = 300
	for i := range n {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
		if i == n/3 {
			onB.Close() // its bye races the messages still in NATS
		}
	}
	waitSameEdge(t, a, "bob", true, 0)
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": n})
	for i := range n + 1 {
		if f := onA.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("bob on a got %s as message %d", f.Raw, i)
		}
	}
	if edge.SameEdgeDeliveries(a.srv) == 0 {
		t.Fatal("no same-edge delivery after bob left edge b")
	}
}
