package edge

import (
	"fmt"
	"hash/maphash"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

const (
	hubShards = 64
	// dispatchers is how many goroutines hand deliveries from NATS to
	// connections. A node always maps to the same one, which keeps its
	// messages in order.
	dispatchers = 4
	// dispatchBuffer is each dispatcher's NATS channel size. When it is full
	// nats.go drops the delivery; the sender then times out and stores the
	// message, so an overload costs latency, never a message.
	dispatchBuffer = 1 << 16
)

// hub is the set of nodes connected to this edge. It owns one NATS
// subscription per connected node, shared by that node's connections.
type hub struct {
	nc    *nats.Conn
	subj  bus.Subjects
	log   *slog.Logger
	seed  maphash.Seed
	count atomic.Int64 // connections

	shards     [hubShards]hubShard
	chans      [dispatchers]chan *nats.Msg
	sess       sessionIndex
	livePrefix string // subject prefix of session live subjects
}

type hubShard struct {
	mu    sync.RWMutex
	nodes map[string]*hubNode // guarded by mu
}

type hubNode struct {
	conns []*conn // guarded by the shard's mu
	sub   *nats.Subscription
}

func newHub(nc *nats.Conn, subj bus.Subjects, log *slog.Logger) *hub {
	h := &hub{nc: nc, subj: subj, log: log, seed: maphash.MakeSeed(), livePrefix: subj.SessionLive("")}
	h.sess.init(h)
	for i := range h.shards {
		h.shards[i].nodes = map[string]*hubNode{}
	}
	for i := range h.chans {
		h.chans[i] = make(chan *nats.Msg, dispatchBuffer)
	}
	return h
}

func (h *hub) hash(node string) uint64 { return maphash.String(h.seed, node) }

func (h *hub) shard(node string) *hubShard { return &h.shards[h.hash(node)%hubShards] }

// add registers c and, for a node's first connection here, subscribes to the
// node's subject and reports first. The caller flushes NATS before relying
// on the interest.
func (h *hub) add(c *conn) (first bool, err error) {
	node := c.id.NodeID
	sh := h.shard(node)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.nodes[node]
	if n == nil {
		sub, err := h.nc.ChanSubscribe(h.subj.Node(node), h.chans[h.hash(node)%dispatchers])
		if err != nil {
			return false, fmt.Errorf("subscribe node: %w", err)
		}
		_ = sub.SetPendingLimits(-1, -1) // the shared channel is the bound
		n = &hubNode{sub: sub}
		sh.nodes[node] = n
		first = true
	}
	n.conns = append(n.conns, c)
	h.count.Add(1)
	return first, nil
}

// remove unregisters c; the node's last connection here unsubscribes, and
// remove reports last.
func (h *hub) remove(c *conn) (last bool) {
	node := c.id.NodeID
	sh := h.shard(node)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	n := sh.nodes[node]
	if n == nil {
		return false
	}
	for i, x := range n.conns {
		if x == c {
			n.conns = append(n.conns[:i], n.conns[i+1:]...)
			h.count.Add(-1)
			if len(n.conns) == 0 {
				_ = n.sub.Unsubscribe()
				delete(sh.nodes, node)
				return true
			}
			return false
		}
	}
	return false
}

// holds reports whether node has a connection on this edge.
func (h *hub) holds(node string) bool {
	sh := h.shard(node)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	return sh.nodes[node] != nil
}

// lookup returns the connections of node on this edge.
func (h *hub) lookup(node string) []*conn {
	sh := h.shard(node)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if n := sh.nodes[node]; n != nil {
		return append([]*conn(nil), n.conns...)
	}
	return nil
}

// all returns every connection on this edge.
func (h *hub) all() []*conn {
	var out []*conn
	for i := range h.shards {
		sh := &h.shards[i]
		sh.mu.RLock()
		for _, n := range sh.nodes {
			out = append(out, n.conns...)
		}
		sh.mu.RUnlock()
	}
	return out
}

// dispatch hands deliveries from channel i to connections until stop closes.
func (h *hub) dispatch(i int, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case m := <-h.chans[i]:
			h.deliver(m)
		}
	}
}

// deliver writes one delivery to every connection of its node. If none
// takes it, the sender is told at once so it can store the message instead
// of waiting for a timeout.
func (h *hub) deliver(m *nats.Msg) {
	if strings.HasPrefix(m.Subject, h.livePrefix) {
		h.sess.deliverSession(m)
		return
	}
	tok := m.Subject[len(m.Subject)-tokenLen(m.Subject):]
	node, err := bus.ParseToken(tok)
	if err != nil {
		return
	}
	if m.Header.Get(bus.HeaderInbox) != "" {
		for _, c := range h.lookup(node) {
			c.syncInbox()
		}
		return
	}
	if m.Header.Get(bus.HeaderMembership) != "" {
		if conns := h.lookup(node); len(conns) > 0 {
			conns[0].s.reloadMemberships(node, conns, m.Reply)
		}
		return
	}
	msgID := m.Header.Get(bus.HeaderMsgID)
	taken := false
	for _, c := range h.lookup(node) {
		if c.deliver(m.Data, msgID, m.Reply) {
			taken = true
		}
	}
	if !taken && m.Reply != "" {
		_ = h.nc.Publish(m.Reply, bus.ReplyNotAcked)
	}
}

func tokenLen(subject string) int {
	for i := len(subject) - 1; i >= 0; i-- {
		if subject[i] == '.' {
			return len(subject) - i - 1
		}
	}
	return len(subject)
}
