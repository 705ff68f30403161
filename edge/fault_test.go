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

// Acceptance 3: edge B is hard-stopped mid-stream; its recipients
// reconnect to edge A; nothing answered delivered/stored is lost.
func TestNoLossWhenEdgeKilled(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	l := loadtest.New(t, func(node string) string { return c.authKey(node, node) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	l.ConnectRecipients(loadtest.Scale(200), func(int) string { return b.ws() }, func(int) string { return a.ws() }, stop, &wg)
	var senders []*wstest.Client
	for i := range 20 {
		senders = append(senders, c.dial(a, fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	perSender := loadtest.Scale(1000)
	total := int64(20 * perSender)
	go func() {
		for l.Answered() < total/3 {
			time.Sleep(time.Millisecond)
		}
		b.kill()
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
	l := loadtest.New(t, func(node string) string { return c.authKey(node, node) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	edges := []*testEdge{a, b}
	l.ConnectRecipients(loadtest.Scale(100), func(i int) string { return edges[i%2].ws() }, func(i int) string { return edges[(i+1)%2].ws() }, stop, &wg)
	var senders []*wstest.Client
	for i := range 10 {
		senders = append(senders, c.dial(edges[i%2], fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	perSender := loadtest.Scale(1000)
	total := int64(10 * perSender)
	leader := inboxLeader(t, c)
	go func() {
		for l.Answered() < total/3 {
			time.Sleep(time.Millisecond)
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
	l := loadtest.New(t, func(node string) string { return c.authKey(node, node) })
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	l.ConnectRecipients(loadtest.Scale(100), func(int) string { return b.ws() }, func(int) string { return a.ws() }, stop, &wg)
	var senders []*wstest.Client
	for i := range 10 {
		senders = append(senders, c.dial(a, fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	perSender := loadtest.Scale(1000)
	drained := make(chan error, 1)
	go func() {
		for l.Answered() < int64(10*perSender/3) {
			time.Sleep(time.Millisecond)
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
