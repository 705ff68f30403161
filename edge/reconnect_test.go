package edge_test

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats-server/v2/server"
)

// natsClientNamed reports whether ns has a client connection named name.
func natsClientNamed(t *testing.T, ns *server.Server, name string) bool {
	t.Helper()
	cz, err := ns.Connz(&server.ConnzOptions{Limit: 1024})
	if err != nil {
		t.Fatal(err)
	}
	for _, ci := range cz.Conns {
		if ci.Name == name {
			return true
		}
	}
	return false
}

// cutEdgeNATS takes edge (named id) off NATS through its proxy and waits
// until the server has dropped it, so nothing published meanwhile can
// reach it.
func cutEdgeNATS(t *testing.T, ns *server.Server, p *testutil.TCPProxy, id string) {
	t.Helper()
	p.Cut()
	testutil.Eventually(t, 10*time.Second, func() error {
		if natsClientNamed(t, ns, id) {
			return fmt.Errorf("NATS still has a connection from edge %s", id)
		}
		return nil
	})
}

// proxiedEdges starts edge-a, whose NATS connection goes through a proxy
// the test can cut, and edge-b, connected straight to NATS.
func proxiedEdges(t *testing.T, c *cluster, optsA ...func(*edge.Config)) (proxy *testutil.TCPProxy, a, b *testEdge) {
	t.Helper()
	proxy = testutil.StartTCPProxy(t, c.ns.Addr().String())
	c.url = "nats://" + proxy.Addr()
	a = c.edge("edge-a", optsA...)
	c.url = c.ns.ClientURL()
	return proxy, a, c.edge("edge-b")
}

// A message stored for a node online on an edge whose NATS connection is
// down is announced by a nudge the edge cannot hear. Once the edge is back
// on NATS it reads the inbox of every node it holds, so the message
// arrives without the node reconnecting.
func TestStoredWhileEdgeOffNATSArrivesAfterReconnect(t *testing.T) {
	c := newCluster(t)
	proxy, a, b := proxiedEdges(t, c)

	const nodes, perNode = 3, 4
	clients := make([]*wstest.Client, nodes)
	for i := range clients {
		clients[i] = c.dial(a, fmt.Sprint("bob", i), "bob")
	}
	alice := c.dial(b, "alice", "alice")

	cutEdgeNATS(t, c.ns, proxy, "edge-a")
	want := map[string]string{} // msg_id -> destination node
	for i := range nodes * perNode {
		alice.Send(t, map[string]any{"id": fmt.Sprint(i), "dest_id": fmt.Sprint("bob", i%nodes), "payload": i})
	}
	for range nodes * perNode {
		s := alice.Until(t, wait, isSent)
		if s.Status != "stored" {
			t.Fatalf("got %s, want stored", s.Raw)
		}
		want[s.MsgID] = fmt.Sprint("bob", atoiT(t, s.ID)%nodes)
	}
	proxy.Restore()

	for i, cl := range clients {
		node := fmt.Sprint("bob", i)
		got := 0
		for got < perNode {
			f := cl.Until(t, 20*time.Second, wstest.Frame.IsMessage)
			if want[f.MsgID] != node {
				t.Fatalf("%s got %s, not one of its messages", node, f.Raw)
			}
			delete(want, f.MsgID)
			got++
		}
	}
	if len(want) != 0 {
		t.Fatalf("not received: %v", want)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if n := testutil.CounterValue(t, edge.MetricsRegistry(a.srv), "allspark_inbox_renudge_passes_total"); n < 1 {
			return fmt.Errorf("allspark_inbox_renudge_passes_total = %v, want >= 1", n)
		}
		return nil
	})
}

func atoiT(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("id %q: %v", s, err)
	}
	return n
}

// A nudge dropped by an overloaded edge (its dispatcher channel full, a
// slow consumer to nats.go) is made up for: the edge reads the inbox of
// every node whose subscription dropped deliveries.
func TestStoredWhileEdgeDropsNudgeArrives(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	bob := c.dial(a, "bob", "bob")
	alice := c.dial(b, "alice", "alice")

	dropped, release := edge.StallDispatcher(t, a.srv, "bob")
	released := false
	defer func() {
		if !released {
			release()
		}
	}()
	alice.Send(t, map[string]any{"id": "1", "dest_id": "bob", "payload": 1})
	s := alice.Until(t, 4*wait, isSent)
	if s.Status != "stored" {
		t.Fatalf("got %s, want stored", s.Raw)
	}
	// The live delivery and the nudge that followed the store.
	testutil.Eventually(t, 10*time.Second, func() error {
		if d := dropped(); d < 2 {
			return fmt.Errorf("edge-a dropped %d deliveries to bob, want the message and its nudge", d)
		}
		return nil
	})
	release()
	released = true

	f := bob.Until(t, 20*time.Second, wstest.Frame.IsMessage)
	if f.MsgID != s.MsgID {
		t.Fatalf("bob got %s, want msg_id %s", f.Raw, s.MsgID)
	}
	if n := testutil.CounterValue(t, edge.MetricsRegistry(a.srv), "allspark_inbox_renudge_passes_total"); n < 1 {
		t.Fatalf("allspark_inbox_renudge_passes_total = %v, want >= 1", n)
	}
}

// A re-nudge after a reconnect that cannot read the inbox (JetStream still
// failing past INBOX_READ_GRACE) leaves synced connections open and tries
// again later: it must not close every connection of the edge with 1013.
func TestRenudgeFailingInboxKeepsSyncedConnections(t *testing.T) {
	c := newCluster(t)
	logs := recordLogs(c)
	proxy, a, b := proxiedEdges(t, c, func(cfg *edge.Config) { cfg.InboxReadGrace = 300 * time.Millisecond })
	bob := c.dial(a, "bob", "bob")
	alice := c.dial(b, "alice", "alice")
	nc := testutil.Connect(t, c.ns.ClientURL())

	deleteInboxStream(t, nc)
	cutEdgeNATS(t, c.ns, proxy, "edge-a")
	proxy.Restore()
	testutil.Eventually(t, 20*time.Second, func() error {
		return logs.has(slog.LevelWarn, "read inbox: giving up after the grace")
	})
	testutil.Eventually(t, 20*time.Second, func() error {
		select {
		case <-bob.Closed():
			t.Fatalf("bob closed with %d after a failed re-nudge", bob.CloseCode())
		default:
		}
		if n := testutil.CounterValue(t, edge.MetricsRegistry(a.srv), "allspark_inbox_renudge_passes_total"); n < 2 {
			return fmt.Errorf("allspark_inbox_renudge_passes_total = %v, want a pass and a retry", n)
		}
		return nil
	})
	openInbox(t, nc)

	// Barrier: bob's connection still takes live messages.
	alice.Send(t, map[string]any{"id": "after", "dest_id": "bob", "payload": "after"})
	select {
	case <-bob.Closed():
		t.Fatalf("bob closed with %d after a failed re-nudge", bob.CloseCode())
	default:
	}
	if f := bob.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"after"` {
		t.Fatalf("bob got %s", f.Raw)
	}
}

// A membership nudge lost while the edge was off NATS is made up for: after
// the reconnect the edge reloads the memberships of the nodes it holds, so
// a node that left a session meanwhile stops being counted a member here.
func TestUnjoinWhileEdgeOffNATSAppliesAfterReconnect(t *testing.T) {
	c := newCluster(t)
	proxy, a, b := proxiedEdges(t, c)
	c.mustCall(b, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-r"}, 201)
	c.dial(a, "bob", "bob")
	c.mustCall(b, "POST", "/v1/sessions/room-r/join", "bob", "bob", nil, 200)
	member := func() bool { return slices.Contains(edge.HeldSessions(a.srv, "bob"), "room-r") }
	testutil.Eventually(t, wait, func() error {
		if !member() {
			return fmt.Errorf("edge-a does not count bob a member of room-r after his join")
		}
		return nil
	})

	cutEdgeNATS(t, c.ns, proxy, "edge-a")
	c.mustCall(b, "POST", "/v1/sessions/room-r/unjoin", "bob", "bob", nil, 200)
	proxy.Restore()
	testutil.Eventually(t, 20*time.Second, func() error {
		if member() {
			return fmt.Errorf("edge-a still counts bob a member of room-r after his unjoin")
		}
		return nil
	})
}

// An edge off NATS cannot hear another edge's hello for a node it
// shortcuts. After the reconnect it says hello again for every node it
// holds, learns of the other holder, and stops shortcutting, so the node's
// connection on the other edge gets its messages again.
func TestHoldersRelearnedAfterReconnect(t *testing.T) {
	c := newCluster(t)
	proxy, a, b := proxiedEdges(t, c)

	alice, onA := c.dial(a, "alice", "alice"), c.dial(a, "bob", "bob")
	waitSameEdge(t, a, "bob", true, 0)

	cutEdgeNATS(t, c.ns, proxy, "edge-a")
	onB := c.dial(b, "bob", "bob") // its hello cannot reach edge-a
	waitSameEdge(t, b, "bob", true, 0)
	proxy.Restore()

	waitSameEdge(t, a, "bob", false, 1)
	waitSameEdge(t, b, "bob", false, 1)
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": "both"})
	for name, cl := range map[string]*wstest.Client{"bob on a": onA, "bob on b": onB} {
		if f := cl.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"both"` {
			t.Fatalf("%s got %s", name, f.Raw)
		}
	}
}
