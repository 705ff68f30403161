package edge_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/loadtest"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// startLoad connects recipients to at(i) (reconnecting to reconnect(i))
// and senders to senderAt(i); the recipients stop at the end of the test.
func startLoad(t *testing.T, c *cluster, recipients int, at, reconnect func(int) *testEdge, senders int, senderAt func(int) *testEdge) (*loadtest.Load, []*wstest.Client) {
	l := loadtest.New(t, func(node string) string { return c.authKey(node, node) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	t.Cleanup(func() { close(stop); wg.Wait() })
	l.ConnectRecipients(recipients, func(i int) string { return at(i).ws() }, func(i int) string { return reconnect(i).ws() }, stop, &wg)
	var ss []*wstest.Client
	for i := range senders {
		ss = append(ss, c.dial(senderAt(i), fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	return l, ss
}

// Acceptance 3: edge B is hard-stopped mid-stream; its recipients
// reconnect to edge A; nothing answered delivered/stored is lost.
func TestNoLossWhenEdgeKilled(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	l, senders := startLoad(t, c, loadtest.Scale(200), func(int) *testEdge { return b }, func(int) *testEdge { return a },
		20, func(int) *testEdge { return a })
	perSender := loadtest.Scale(1000)
	total := int64(20 * perSender)
	go func() {
		if l.WaitAnswered(total/3, time.Minute) {
			b.kill()
		}
	}()
	l.RunSenders(senders, perSender, 50)
	if t.Failed() {
		t.FailNow()
	}
	l.Verify()
}

// Acceptance 4: a 3-server NATS cluster with R3 streams; the inbox stream's
// leader is killed mid-stream; nothing answered delivered/stored is lost.
func TestNoLossWhenNATSServerKilled(t *testing.T) {
	servers := testutil.RunCluster(t, 3)
	c := newClusterOn(t, servers[0])
	c.url = testutil.ClusterURL(servers)
	r3 := func(cfg *edge.Config) { cfg.StreamReplicas = 3 }
	a, b := c.edge("edge-a", r3), c.edge("edge-b", r3)
	edges := []*testEdge{a, b}
	l, senders := startLoad(t, c, loadtest.Scale(100), func(i int) *testEdge { return edges[i%2] }, func(i int) *testEdge { return edges[(i+1)%2] },
		10, func(i int) *testEdge { return edges[i%2] })
	perSender := loadtest.Scale(1000)
	total := int64(10 * perSender)
	leader := inboxLeader(t, c)
	go func() {
		if !l.WaitAnswered(total/3, time.Minute) {
			return
		}
		for _, s := range servers {
			if s.Name() == leader {
				s.Shutdown()
			}
		}
	}()
	l.RunSenders(senders, perSender, 50)
	if t.Failed() {
		t.FailNow()
	}
	l.Verify()
}

// Acceptance 3 (issue 7): under traffic, edge B drains: each of its clients
// gets reconnect then 1001, reconnects to A, and nothing promised is lost.
func TestDrainUnderTraffic(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	l, senders := startLoad(t, c, loadtest.Scale(100), func(int) *testEdge { return b }, func(int) *testEdge { return a },
		10, func(int) *testEdge { return a })
	perSender := loadtest.Scale(1000)
	drained := make(chan error, 1)
	go func() {
		if !l.WaitAnswered(int64(10*perSender/3), time.Minute) {
			drained <- nil
			return
		}
		drained <- b.srv.Shutdown(context.Background())
	}()
	l.RunSenders(senders, perSender, 50)
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	l.Verify()
	l.CheckDrained()
}
