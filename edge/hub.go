package edge

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

const (
	// dispatchers is how many goroutines hand deliveries from NATS to
	// connections. A node (or a session) always maps to the same one, which
	// keeps its messages in order.
	dispatchers = 4
	// dispatchBuffer is each dispatcher's NATS channel size. When it is full
	// nats.go drops the delivery; the sender then times out and stores the
	// message, so an overload costs latency, never a message.
	dispatchBuffer = 1 << 16
)

// hub is the set of nodes connected to this edge. It owns one NATS
// subscription and one inbox reader per connected node, shared by that
// node's connections, and (in sess) one subscription per session with a
// member connected here. It also enforces the connection limits.
type hub struct {
	nc    *nats.Conn
	subj  bus.Subjects
	log   *slog.Logger
	lim   hubLimits
	count atomic.Int64 // connections, counting those being admitted
	// reads bounds the inbox reads in flight on this edge: a read holds a
	// slot for its duration (see nodeInbox.read).
	reads     chan struct{}
	readCount atomic.Int64 // inbox reads made, for InboxReads
	reading   atomic.Int64 // inbox reads in flight
	readPeak  atomic.Int64 // most inbox reads ever in flight at once (tests check the bound)

	self       string       // this edge's holder id, unique per process (see holders.go)
	acks       *ackBatcher  // "+" verdicts for other edges' deliveries
	localOut   atomic.Int64 // deliveries routed without NATS (see holders.go)
	nodes      shardedMap[*hubNode]
	chans      [dispatchers]chan *nats.Msg
	sess       sessionIndex
	livePrefix string // subject prefix of session live subjects
	// sum keeps the online counts of large sessions (presence_summary.go);
	// the index tells it when a session's named members here change.
	sum *summaries
}

type hubNode struct {
	conns []*conn // guarded by the nodes shard's mu
	sub   *nats.Subscription
	inbox *nodeInbox // reads the node's inbox once for all of conns
	// dropped is sub's count of dropped deliveries when the re-nudge loop
	// last looked (see reconnect.go).
	dropped atomic.Int64

	// Same-edge deliveries; see holders.go.
	remote  map[string]struct{} // guarded by the nodes shard's mu: other edges known to hold the node
	local   bool                // guarded by the nodes shard's mu: this edge's messages skip NATS
	natsOut atomic.Uint64       // this edge's deliveries to the node sent through NATS while it was held here
}

// hubLimits are the connection limits of an edge and its bound on
// concurrent inbox reads (see Config).
type hubLimits struct {
	maxConns   int
	perNode    int
	single     bool // a new connection replaces the node's older ones
	inboxReads int
}

// Why hub.add refuses a connection.
var (
	errEdgeFull = errors.New("edge full")
	errNodeFull = errors.New("too many connections for this node")
)

func newHub(nc *nats.Conn, subj bus.Subjects, log *slog.Logger, lim hubLimits) *hub {
	h := &hub{nc: nc, subj: subj, log: log, lim: lim, livePrefix: subj.SessionLive(""),
		reads: make(chan struct{}, lim.inboxReads), self: holderID(), acks: newAckBatcher(nc)}
	h.nodes.init()
	h.sess.init(h)
	for i := range h.chans {
		h.chans[i] = make(chan *nats.Msg, dispatchBuffer)
	}
	return h
}

// subscribe subscribes to subject on the dispatcher that hash maps to.
func (h *hub) subscribe(subject string, hash uint64) (*nats.Subscription, error) {
	sub, err := h.nc.ChanSubscribe(subject, h.chans[hash%dispatchers])
	if err != nil {
		return nil, err
	}
	_ = sub.SetPendingLimits(-1, -1) // the shared channel is the bound
	return sub, nil
}

// admissible is a cheap early check of the limits add enforces, so a
// connection that will be refused costs no device or membership work.
func (h *hub) admissible(node string) error {
	if h.full() {
		return errEdgeFull
	}
	var n int
	h.nodes.view(node, func(hn *hubNode, ok bool) {
		if ok {
			n = len(hn.conns)
		}
	})
	if n >= h.lim.perNode {
		return errNodeFull
	}
	return nil
}

// full reports whether the edge holds its maximum of connections.
func (h *hub) full() bool { return h.count.Load() >= int64(h.lim.maxConns) }

// add registers c and, for a node's first connection here, subscribes to the
// node's subject and reports first. The caller flushes NATS before relying
// on the interest. Past a limit it registers nothing and returns
// errEdgeFull or errNodeFull. The per-node limit counts connections still
// closing, so it bounds what a node holds on this edge even in
// single-connection mode. In that mode add returns the node's older
// connections, for the caller to close as replaced.
func (h *hub) add(c *conn) (first bool, replaced []*conn, err error) {
	for { // reserve a slot under the edge's limit
		n := h.count.Load()
		if n >= int64(h.lim.maxConns) {
			return false, nil, errEdgeFull
		}
		if h.count.CompareAndSwap(n, n+1) {
			break
		}
	}
	node := c.id.NodeID
	h.nodes.update(node, func(n *hubNode, ok bool) (*hubNode, bool) {
		if !ok {
			sub, serr := h.subscribe(h.subj.Node(node), h.nodes.hash(node))
			if serr != nil {
				err = fmt.Errorf("subscribe node: %w", serr)
				return nil, false
			}
			n, first = &hubNode{sub: sub, inbox: newNodeInbox(c.s, node)}, true
			h.announceLocked(node, n, opHello)
		} else if len(n.conns) >= h.lim.perNode {
			err = errNodeFull
			return n, true
		}
		if h.lim.single {
			replaced = slices.Clone(n.conns)
		}
		n.conns = append(n.conns, c)
		c.inbox = n.inbox
		return n, true
	})
	if err != nil {
		h.count.Add(-1)
	}
	return first, replaced, err
}

// remove unregisters c; the node's last connection here unsubscribes and
// stops the node's inbox reader, and remove reports last.
func (h *hub) remove(c *conn) (last bool) {
	node := c.id.NodeID
	var removed bool
	// The count drops last, once the node's NATS work is done: callers
	// (and tests) take a zero count to mean the connection is gone.
	defer func() {
		if removed {
			h.count.Add(-1)
		}
	}()
	h.nodes.update(node, func(n *hubNode, ok bool) (*hubNode, bool) {
		if !ok {
			return nil, false
		}
		i := slices.Index(n.conns, c)
		if i < 0 {
			return n, true
		}
		n.conns = slices.Delete(n.conns, i, i+1)
		removed = true
		if len(n.conns) == 0 {
			_ = n.sub.Unsubscribe()
			h.announceLocked(node, n, opBye)
			n.inbox.stop()
			last = true
			return nil, false
		}
		return n, true
	})
	return last
}

// nudgeInbox starts an inbox pass for node, if it has connections here.
func (h *hub) nudgeInbox(node string) {
	var in *nodeInbox
	h.nodes.view(node, func(n *hubNode, ok bool) {
		if ok {
			in = n.inbox
		}
	})
	if in != nil {
		in.nudge()
	}
}

// holds reports whether node has a connection on this edge.
func (h *hub) holds(node string) (held bool) {
	h.nodes.view(node, func(_ *hubNode, ok bool) { held = ok })
	return held
}

// lookup returns the connections of node on this edge.
func (h *hub) lookup(node string) (conns []*conn) {
	h.nodes.view(node, func(n *hubNode, ok bool) {
		if ok {
			conns = slices.Clone(n.conns)
		}
	})
	return conns
}

// all returns every connection on this edge.
func (h *hub) all() []*conn {
	var out []*conn
	h.nodes.each(func(_ string, n *hubNode) { out = append(out, n.conns...) })
	return out
}

// dispatch hands deliveries from channel i to connections until stop closes.
func (h *hub) dispatch(i int, stop <-chan struct{}) {
	var w wakeList
	for {
		select {
		case <-stop:
			w.wake()
			return
		case m := <-h.chans[i]:
			if strings.HasPrefix(m.Subject, h.livePrefix) {
				h.sess.queueSession(m, &w)
			} else {
				w.wake() // queued session frames never wait on other work
				h.deliver(m)
			}
			// With more deliveries waiting, queue them before waking the
			// session members' writers, so that each writes the burst at
			// once.
			if w.messages > 0 && (len(h.chans[i]) == 0 || w.messages >= maxDeferredWakes) {
				w.wake()
			}
		}
	}
}

// maxDeferredWakes bounds the session messages a dispatcher queues before
// it wakes their members' writers: the first of them waits for the others
// to be queued (a few microseconds per member each).
const maxDeferredWakes = 16

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
		h.nudgeInbox(node) // one pass for all the node's connections here
		return
	}
	if op := m.Header.Get(headerHolder); op != "" {
		h.onHolder(node, op, m.Data)
		return
	}
	if m.Header.Get(bus.HeaderMembership) != "" {
		if conns := h.lookup(node); len(conns) > 0 {
			conns[0].s.reloadMemberships(node, conns, m.Reply)
		}
		return
	}
	msgID := m.Header.Get(bus.HeaderMsgID)
	var v *ackVerdict
	if m.Reply != "" {
		v = &ackVerdict{reply: m.Reply, nc: h.nc, acks: h.acks}
		v.hold() // ours, until every connection has had the delivery
	}
	for _, c := range h.lookup(node) {
		c.deliver(m.Data, msgID, v)
	}
	if v != nil {
		v.giveUp() // no connection took it: "-" now
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

// sessionIndex maps each session with a member connected here to those
// connections, and holds one NATS subscription per such session on its
// live subject. A session message crosses NATS once per edge, however many
// of its members that edge holds.
type sessionIndex struct {
	h       *hub
	entries shardedMap[*sessionEntry]
}

type sessionEntry struct {
	sub *nats.Subscription
	// conns maps each connection here to its node id if the node is a
	// named member of the session, "" if anonymous (no presence, not
	// counted); nodes counts the connections of each named node, so
	// len(nodes) is the named members online here. Both guarded by the
	// entries shard's mu.
	conns map[*conn]string
	nodes map[string]int
	// list is the keys of conns as a slice, built by the first delivery
	// after a join or leave and then shared, unchanged, by every delivery
	// until the next one: a message costs no copy of the members. Joins
	// and leaves (under the shard's write lock) clear it; deliveries (under
	// the read lock) build it, so none can store a list older than a change.
	list atomic.Pointer[[]*conn]
}

func (x *sessionIndex) init(h *hub) {
	x.h = h
	x.entries.init()
}

// join adds c, whose member id in sid is member, to sid's entry; joining
// again with another member id (an unjoin and an anonymous rejoin between
// two reloads) updates the count.
func (x *sessionIndex) join(c *conn, sid, member string) {
	named := ""
	if !anonymous(c.id.NodeID, member) {
		named = c.id.NodeID
	}
	x.entries.update(sid, func(e *sessionEntry, ok bool) (*sessionEntry, bool) {
		if !ok {
			sub, err := x.h.subscribe(x.h.subj.SessionLive(sid), x.entries.hash(sid))
			if err != nil {
				x.h.log.Warn("subscribe session", "session", sid, "err", err)
				return nil, false
			}
			e = &sessionEntry{sub: sub, conns: map[*conn]string{}}
		}
		before := len(e.nodes)
		if old, in := e.conns[c]; in {
			e.uncount(old)
		}
		e.conns[c] = named
		e.list.Store(nil)
		if named != "" {
			if e.nodes == nil {
				e.nodes = map[string]int{}
			}
			e.nodes[named]++
		}
		x.h.sum.joined(sid, c, before, len(e.nodes))
		return e, true
	})
}

func (x *sessionIndex) leave(c *conn, sid string) {
	x.entries.update(sid, func(e *sessionEntry, ok bool) (*sessionEntry, bool) {
		if !ok {
			return nil, false
		}
		named, in := e.conns[c]
		if !in {
			return e, true
		}
		before := len(e.nodes)
		delete(e.conns, c)
		e.list.Store(nil)
		e.uncount(named)
		if len(e.conns) == 0 {
			_ = e.sub.Unsubscribe()
			x.h.sum.left(sid, before, 0, false)
			return nil, false
		}
		x.h.sum.left(sid, before, len(e.nodes), true)
		return e, true
	})
}

// uncount drops one connection of named node (if any) from the counts.
func (e *sessionEntry) uncount(node string) {
	if node == "" {
		return
	}
	if e.nodes[node]--; e.nodes[node] <= 0 {
		delete(e.nodes, node)
	}
}

// named returns the named members of sid online here.
func (x *sessionIndex) named(sid string) (n int, ok bool) {
	x.entries.view(sid, func(e *sessionEntry, found bool) {
		if found {
			n, ok = len(e.nodes), true
		}
	})
	return n, ok
}

// members returns the session's connections here. The slice is shared:
// callers must not modify it.
func (x *sessionIndex) members(sid string) (out []*conn) {
	x.entries.view(sid, func(e *sessionEntry, ok bool) {
		if !ok {
			return
		}
		if l := e.list.Load(); l != nil {
			out = *l
			return
		}
		out = make([]*conn, 0, len(e.conns))
		for c := range e.conns {
			out = append(out, c)
		}
		e.list.CompareAndSwap(nil, &out)
	})
	return out
}

// deliverSession writes a live session message or presence frame to the
// session's members here, except the node it is about (no echo).
func (x *sessionIndex) deliverSession(m *nats.Msg) {
	var w wakeList
	x.queueSession(m, &w)
	w.wake()
}

// queueSession queues a live session message or presence frame for the
// session's members here, except the node it is about (no echo), and adds
// the members to w for the caller to wake. The frame is encoded for the
// wire once, for all of them.
func (x *sessionIndex) queueSession(m *nats.Msg, w *wakeList) {
	sid, err := bus.ParseToken(m.Subject[len(m.Subject)-tokenLen(m.Subject):])
	if err != nil {
		return
	}
	if m.Header.Get(bus.HeaderPresenceCount) != "" {
		x.h.sum.received(sid, m) // between edges only, never to a client
		return
	}
	if m.Header.Get(bus.HeaderPresence) != "" && x.h.sum.large(sid) {
		return // an announcer that did not know yet: large sessions get summaries
	}
	src := m.Header.Get(bus.HeaderSrcNode)
	members := x.members(sid)
	wire := wireFrame(m.Data)
	if wire == nil { // not UTF-8: each writer refuses it, as gws does any such frame
		for _, c := range members {
			if c.id.NodeID != src {
				c.deliver(m.Data, "", nil)
			}
		}
		return
	}
	queued := 0
	for _, c := range members {
		if c.id.NodeID != src && c.queueShared(wire) {
			queued++
		}
	}
	if queued > 0 {
		members[0].s.m.outSess.Add(float64(queued))
	}
	w.add(members)
}
