package edge

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// MetricsRegistry is where s registered its series.
func MetricsRegistry(s *Server) *prometheus.Registry { return s.m.reg }

// StallDispatcher makes s drop the deliveries to node, as an overloaded
// edge does: it holds node's first connection here so that the dispatcher
// of node's subject blocks delivering to it, and fills that dispatcher's
// channel. dropped counts the deliveries to node dropped since; release
// lets the dispatcher go.
func StallDispatcher(t testing.TB, s *Server, node string) (dropped func() int, release func()) {
	t.Helper()
	conns := s.hub.lookup(node)
	if len(conns) == 0 {
		t.Fatalf("%s has no connection on edge %s", node, s.cfg.ID)
	}
	var hn *hubNode
	s.hub.nodes.view(node, func(n *hubNode, _ bool) { hn = n })
	c, hash := conns[0], s.hub.nodes.hash(node)
	ch := s.hub.chans[hash%dispatchers]
	c.mu.Lock()
	// The dispatcher blocks on this one, in c.deliver.
	if err := s.nc.Publish(s.subj.Node(node), []byte(`{"type":"stall"}`)); err != nil {
		t.Fatal(err)
	}
	junk, err := s.hub.subscribe("renudge-test.junk", hash)
	if err != nil {
		t.Fatal(err)
	}
	for range dispatchBuffer + 1000 {
		if err := s.nc.Publish("renudge-test.junk", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for len(ch) < cap(ch) {
		if time.Now().After(deadline) {
			t.Fatalf("dispatcher channel holds %d, want it full (%d)", len(ch), cap(ch))
		}
		time.Sleep(5 * time.Millisecond)
	}
	base, _ := hn.sub.Dropped()
	dropped = func() int {
		d, _ := hn.sub.Dropped()
		return d - base
	}
	release = func() {
		c.mu.Unlock()
		_ = junk.Unsubscribe()
	}
	return dropped, release
}

// HeldSessions is the sessions the first connection of node here counts
// it a member of.
func HeldSessions(s *Server, node string) []string {
	conns := s.hub.lookup(node)
	if len(conns) == 0 {
		return nil
	}
	c := conns[0]
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for sid := range c.sessions {
		out = append(out, sid)
	}
	return out
}
