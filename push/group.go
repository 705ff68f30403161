package push

import (
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// group is one node's events in a worker's hands, notified together. The
// worker's Run adds events fetched later while the group is in flight;
// the goroutine handling it closes it when it acks (or gives up on) them.
type group struct {
	node   string
	mu     sync.Mutex
	msgs   []jetstream.Msg // guarded by mu
	closed bool            // guarded by mu: no more joins; later events start a new group
}

// join adds msgs unless the group is closed (its events are being acked:
// msgs would be left unacked); the caller then starts a new group.
func (g *group) join(msgs []jetstream.Msg) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.msgs = append(g.msgs, msgs...)
	return true
}

// snapshot returns the events so far.
func (g *group) snapshot() []jetstream.Msg {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]jetstream.Msg(nil), g.msgs...)
}

// close ends joins and returns every event the group got, for acking.
func (g *group) close() []jetstream.Msg {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	return g.msgs
}
