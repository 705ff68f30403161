package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/nats-io/nats.go"
	"github.com/oklog/ulid/v2"
)

// HeaderMsgID carries the msg_id on deliveries between edges, so the
// receiving edge can track acks without decoding the frame.
const HeaderMsgID = "Allspark-Msg-Id"

// Replies from the edge holding a node to the edge that sent the message.
var (
	ReplyAcked    = []byte("+") // the node acknowledged the message
	ReplyNotAcked = []byte("-") // the node disconnected or did not ack within the ack timeout
)

// replyGrace is how much longer than the ack timeout a sender waits for the
// target edge's verdict before deciding on its own.
const replyGrace = time.Second

// DeliveryTimeout is the Requester timeout to use with an ack timeout: the
// target edge's verdict, plus time for it to travel.
func DeliveryTimeout(ackTimeout time.Duration) time.Duration { return ackTimeout + replyGrace }

// Store keeps messages for nodes that did not acknowledge them.
//
// Contract: Append does not wait for I/O to finish. Messages appended by
// one goroutine are stored in that order. The returned wait blocks until
// the message is durable (nil) or failed. After a nil wait the message will
// be offered to nodeID at its next connection, or sooner if it is connected
// now. Appending the same msg_id for the same node twice keeps one copy.
type Store interface {
	Append(nodeID, msgID string, frame []byte) (wait func(context.Context) error)
}

// Router routes messages to nodes and clients and tells the sender what
// happened. It is shared by every connection of an edge and by the
// allspark.send responder.
type Router struct {
	nc       *nats.Conn
	req      *Requester
	subj     Subjects
	devices  *Devices
	store    Store
	sessions *Sessions
	history  *History
	now      func() time.Time
	log      *slog.Logger
	hooks    RouterDeps // only the On* fields are used
	// Unreached nodes' copies go through one ordered pipeline: storeLoop
	// appends in the order outcomes arrive (so a sender's stored messages keep
	// their order), and ackLoop waits for durability and answers the sender.
	storeMu   sync.RWMutex
	storeOpen bool // guarded by storeMu
	storeq    chan *fanout
	ackq      chan pendingStore
	loops     sync.WaitGroup
}

type pendingStore struct {
	f     *fanout
	waits []func(context.Context) error         // direct messages: one per unreached node
	hist  func(context.Context) (uint64, error) // session messages: the history append
}

// storeQueue bounds the stores waiting to be appended; past it, reply
// handling waits, which slows senders instead of growing memory.
const storeQueue = 1 << 14

// RouterDeps are what a Router routes with.
type RouterDeps struct {
	NATS      *nats.Conn
	Requester *Requester
	Subjects  Subjects
	Devices   *Devices
	Store     Store
	Sessions  *Sessions
	History   *History
	Now       func() time.Time
	Log       *slog.Logger
	// Hooks, for metrics; each may be nil and must not block.
	OnOutcome func(allspark.Sent) // every answer to a send
	OnStored  func(copies int)    // inbox copies made durable
}

// NewRouter builds a router and starts its store pipeline; Close stops it.
func NewRouter(d RouterDeps) *Router {
	r := &Router{nc: d.NATS, req: d.Requester, subj: d.Subjects, devices: d.Devices, store: d.Store,
		sessions: d.Sessions, history: d.History, now: d.Now, log: d.Log, hooks: d,
		storeOpen: true, storeq: make(chan *fanout, storeQueue), ackq: make(chan pendingStore, storeQueue)}
	r.loops.Add(2)
	go r.storeLoop()
	go r.ackLoop()
	return r
}

// NewMsgID returns a new time-ordered message id.
func (r *Router) NewMsgID() string { return ulid.Make().String() }

// Sequence keeps one sender's outcomes in the order it sent the messages.
// Replies, timeouts and NATS no-responders statuses may arrive in any order.
// Outcomes held in a Sequence are released oldest first, so a sender's
// messages reach an inbox, and its "sent" answers reach it, in send order.
// A websocket connection has one; independent backend requests need none.
type Sequence struct {
	mu sync.Mutex
	q  []*fanout // guarded by mu: unreleased outcomes, in send order
}

// Send routes m and calls done exactly once with the outcome. m's
// destination must be valid; Send fills MsgID (if empty) and TS. Deliveries
// are published before Send returns, so messages sent from one goroutine
// reach each node in order. seq, if not nil, orders the outcomes of the
// messages sent with it. done may run on another goroutine.
func (r *Router) Send(ctx context.Context, m *allspark.Message, corrID string, seq *Sequence, done func(allspark.Sent)) {
	if m.MsgID == "" {
		m.MsgID = r.NewMsgID()
	}
	m.TS = r.now().UnixMilli()
	if hook := r.hooks.OnOutcome; hook != nil {
		answer := done
		done = func(s allspark.Sent) { hook(s); answer(s) }
	}
	reject := func(code allspark.Code, msg string) {
		done(allspark.NewSent(corrID, m.MsgID, allspark.StatusRejected, allspark.Errorf(code, msg)))
	}
	var targets []string
	switch {
	case m.DestID != "":
		targets = []string{m.DestID}
	case m.DestClientID != "":
		nodes, err := r.devices.Nodes(ctx, m.DestClientID)
		if err != nil {
			r.log.Warn("look up client devices", "client", m.DestClientID, "err", err)
			reject(allspark.CodeUnavailable, "cannot look up the client's devices")
			return
		}
		for _, n := range nodes {
			if n != m.SrcID { // the sending device already has its own message
				targets = append(targets, n)
			}
		}
		if len(targets) == 0 {
			reject(allspark.CodeOffline, "the client has no known devices")
			return
		}
	case m.MemberID != "":
		// One member of a session, by member id: routed like a direct message.
		sess, err := r.sessions.Get(ctx, m.DestSessionID)
		if err != nil {
			reject(sessionCode(err), err.Error())
			return
		}
		node, ok := sess.NodeOf(m.MemberID)
		if !ok {
			reject(allspark.CodeNotFound, "no such member in the session")
			return
		}
		targets = []string{node}
	default:
		r.sendSession(m, corrID, seq, done)
		return
	}
	frame, err := json.Marshal(m)
	if err != nil {
		reject(allspark.CodeBadFrame, "payload cannot be encoded")
		return
	}
	f := &fanout{r: r, m: m, corrID: corrID, frame: frame, done: done, left: len(targets), seq: seq}
	if seq != nil {
		seq.mu.Lock()
		seq.q = append(seq.q, f)
		seq.mu.Unlock()
	}
	for _, node := range targets {
		r.deliver(f, node)
	}
}

// fanout collects the per-node outcomes of one message.
type fanout struct {
	r      *Router
	m      *allspark.Message
	corrID string
	frame  []byte
	done   func(allspark.Sent)
	seq    *Sequence
	ready  bool           // guarded by seq.mu: the outcome is known
	answer *allspark.Sent // set for session messages once appended to history

	session bool // a message to a whole session

	mu        sync.Mutex
	left      int      // guarded by mu
	delivered int      // guarded by mu
	unreached []string // guarded by mu: nodes that did not ack
}

func (r *Router) deliver(f *fanout, node string) {
	msg := &nats.Msg{Subject: r.subj.Node(node), Data: f.frame, Header: nats.Header{HeaderMsgID: []string{f.m.MsgID}}}
	err := r.req.Request(msg, func(reply *nats.Msg, err error) {
		f.result(node, err == nil && len(reply.Data) > 0 && reply.Data[0] == ReplyAcked[0])
	})
	if err != nil {
		r.log.Warn("publish delivery", "node", node, "err", err)
		f.result(node, false)
	}
}

func (f *fanout) result(node string, acked bool) {
	f.mu.Lock()
	if acked {
		f.delivered++
	} else {
		f.unreached = append(f.unreached, node)
	}
	f.left--
	last := f.left == 0
	f.mu.Unlock()
	if last {
		f.finish()
	}
}

// finish runs once, after the last node's outcome. Within a Sequence it
// releases every outcome that no longer waits for an older one.
func (f *fanout) finish() {
	if f.seq == nil {
		f.release()
		return
	}
	s := f.seq
	s.mu.Lock()
	defer s.mu.Unlock()
	f.ready = true
	for len(s.q) > 0 && s.q[0].ready {
		head := s.q[0]
		s.q[0] = nil
		s.q = s.q[1:]
		head.release()
	}
}

// release answers a delivered message, or queues the copies for unreached
// nodes to be stored in release order.
func (f *fanout) release() {
	if f.answer != nil {
		f.done(*f.answer)
		return
	}
	id, msgID := f.corrID, f.m.MsgID
	if len(f.unreached) == 0 {
		f.done(allspark.NewSent(id, msgID, allspark.StatusDelivered, nil))
		return
	}
	if !f.r.enqueue(f) {
		f.done(allspark.NewSent(id, msgID, allspark.StatusRejected, allspark.Errorf(allspark.CodeUnavailable, "edge is stopping")))
	}
}

// enqueue hands f to the store pipeline, unless the router is closed.
func (r *Router) enqueue(f *fanout) bool {
	r.storeMu.RLock()
	defer r.storeMu.RUnlock()
	if !r.storeOpen {
		return false
	}
	r.storeq <- f
	return true
}

// sendSession appends m to its session's history, then publishes it live
// with its seq. The append is queued now, in send order, so it never waits
// behind a slower direct message of the same sender; only the answer goes
// through the sender's Sequence.
func (r *Router) sendSession(m *allspark.Message, corrID string, seq *Sequence, done func(allspark.Sent)) {
	frame, err := json.Marshal(m)
	if err != nil {
		done(allspark.NewSent(corrID, m.MsgID, allspark.StatusRejected, allspark.Errorf(allspark.CodeBadFrame, "payload cannot be encoded")))
		return
	}
	f := &fanout{r: r, m: m, corrID: corrID, frame: frame, done: done, seq: seq, session: true}
	if seq != nil {
		seq.mu.Lock()
		seq.q = append(seq.q, f)
		seq.mu.Unlock()
	}
	if !r.enqueue(f) {
		f.answer = &allspark.Sent{Type: "sent", ID: corrID, MsgID: m.MsgID, Status: allspark.StatusRejected,
			Error: allspark.Errorf(allspark.CodeUnavailable, "edge is stopping")}
		f.finish()
	}
}

// sessionCode maps a session store error to a protocol code.
func sessionCode(err error) allspark.Code {
	switch {
	case errors.Is(err, ErrSessionNotFound):
		return allspark.CodeNotFound
	case errors.Is(err, ErrNotMember):
		return allspark.CodeNotMember
	default:
		return allspark.CodeUnavailable
	}
}

func (r *Router) storeLoop() {
	defer r.loops.Done()
	defer close(r.ackq)
	for f := range r.storeq {
		ps := pendingStore{f: f}
		if f.session {
			ps.hist = r.history.append(f.m.DestSessionID, f.m.MsgID, f.frame)
		}
		for _, node := range f.unreached {
			ps.waits = append(ps.waits, r.store.Append(node, f.m.MsgID, f.frame))
		}
		r.ackq <- ps
	}
}

func (r *Router) ackLoop() {
	defer r.loops.Done()
	for ps := range r.ackq {
		if ps.f.session {
			a := r.published(ps)
			ps.f.answer = &a
			ps.f.finish()
			continue
		}
		ps.f.done(r.stored(ps))
	}
}

// published waits for a session message's history append and fans it out.
func (r *Router) published(ps pendingStore) allspark.Sent {
	f := ps.f
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seq, err := ps.hist(ctx)
	if err != nil {
		r.log.Warn("append session message", "session", f.m.DestSessionID, "msg_id", f.m.MsgID, "err", err)
		return allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusRejected, allspark.Errorf(allspark.CodeUnavailable, "the message could not be stored"))
	}
	if err := r.history.publishLive(f.m.DestSessionID, f.m.SrcNode, WithSeq(f.frame, seq)); err != nil {
		r.log.Warn("publish session message", "session", f.m.DestSessionID, "err", err)
	}
	st := allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusStored, nil)
	st.Seq = seq
	return st
}

func (r *Router) stored(ps pendingStore) allspark.Sent {
	f := ps.f
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	full := 0
	for i, wait := range ps.waits {
		if err := wait(ctx); err != nil {
			if errors.Is(err, ErrInboxFull) {
				full++
			}
			errs = append(errs, fmt.Errorf("store for %q: %w", f.unreached[i], err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Warn("store message", "msg_id", f.m.MsgID, "err", err)
		code, text := allspark.CodeUnavailable, "the message could not be stored"
		if full == len(errs) {
			code, text = allspark.CodeInboxFull, "the recipient's inbox is full"
		}
		return allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusRejected, allspark.Errorf(code, text))
	}
	if r.hooks.OnStored != nil {
		r.hooks.OnStored(len(ps.waits))
	}
	return allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusStored, nil)
}

// Close stops the store pipeline after the stores already queued are
// answered. Outcomes arriving later are answered "unavailable". Call it
// after the Requester is closed, so no reply is in flight.
func (r *Router) Close() {
	r.storeMu.Lock()
	if r.storeOpen {
		r.storeOpen = false
		close(r.storeq)
	}
	r.storeMu.Unlock()
	r.loops.Wait()
}
