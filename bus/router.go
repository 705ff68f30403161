package bus

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Defaults for the RouterDeps limits left zero.
const (
	defaultStoreTimeout    = 10 * time.Second
	defaultStoreQueue      = 1 << 14
	defaultStoreQueueBytes = 64 << 20
	defaultBackendQueue    = 1024
)

// Store keeps messages for nodes that did not acknowledge them.
//
// Contract: Append does not block (it may be called from a NATS callback).
// Messages appended by one goroutine are stored in that order. The returned
// wait blocks until the message is durable (nil) or failed, or ctx ends.
// After a nil wait the message will be offered to nodeID at its next
// connection, or sooner if it is connected now. Appending the same msg_id
// for the same node twice keeps one copy.
type Store interface {
	Append(nodeID, msgID string, frame []byte) (wait func(context.Context) error)
}

// Router routes messages to nodes and clients and tells the sender what
// happened. It is shared by every connection of an edge and by the
// allspark.send responder.
//
// Nothing on the path from a NATS callback to a sender's answer blocks:
// stores start with async publishes, each message's stores are awaited on
// a goroutine of its own, and the number and bytes of copies in flight are
// bounded; past the bound a copy fails at once with "overloaded".
type Router struct {
	rand         io.Reader // msg_id entropy
	nc           *nats.Conn
	req          *Requester
	subj         Subjects
	devices      *Devices
	store        Store
	sessions     *Sessions
	history      *History
	now          func() time.Time
	log          *slog.Logger
	hooks        RouterDeps // only the On* fields and Route are used
	storeTimeout time.Duration
	budget       storeBudget

	// storeCtx parents every store wait; Shutdown cancels it when its own
	// context ends, so waits still pending are answered at once.
	storeCtx    context.Context
	cancelStore context.CancelFunc
	openMu      sync.RWMutex
	open        bool                // guarded by openMu: stores and backend requests are accepted
	appendq     chan *fanout        // guarded by openMu for send and close: admitted messages, for the appender
	backend     chan backendRequest // guarded by openMu for send and close; nil until ServeSend
	backendQ    int
	stores      sync.WaitGroup // admitted stores until answered; Add only under openMu with open set
	loops       sync.WaitGroup // the appender and the backend worker
}

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
	// StoreTimeout bounds the making durable of one message's copies,
	// retries included (default 10 s).
	StoreTimeout time.Duration
	// StoreQueue and StoreQueueBytes bound the copies being stored at once
	// (defaults 16384 and 64 MiB); a copy past them fails "overloaded".
	StoreQueue      int
	StoreQueueBytes int64
	// BackendQueue bounds the allspark.send requests waiting for the
	// backend worker (default 1024); past it they are answered "overloaded".
	BackendQueue int
	// Rand is the entropy of msg_ids (default crypto/rand.Reader): a
	// client learns msg_ids, so none may be guessable from another.
	Rand io.Reader
	// Route, if set, takes every live delivery to a node (service ids
	// aside) first: it either calls publish (the NATS request to the node's
	// subject, whose error it returns) or delivers the frame itself and
	// calls done exactly once with whether the node acked it. An edge uses
	// it to hand a message for a node held only on that edge straight to its
	// connections (see edge/holders.go). publish must be called at most once.
	Route func(node, msgID string, frame []byte, publish func() error, done func(acked bool)) error
	// Hooks, for metrics; each may be nil and must not block.
	OnOutcome func(allspark.Sent) // every answer to a send
	OnStored  func(copies int)    // inbox copies made durable
}

// NewRouter builds a router; Shutdown or Close stops it.
func NewRouter(d RouterDeps) *Router {
	ctx, cancel := context.WithCancel(context.Background())
	queue := cmp.Or(d.StoreQueue, defaultStoreQueue)
	r := &Router{nc: d.NATS, req: d.Requester, subj: d.Subjects, devices: d.Devices, store: d.Store,
		sessions: d.Sessions, history: d.History, now: d.Now, log: d.Log, hooks: d, rand: cmp.Or[io.Reader](d.Rand, rand.Reader),
		storeTimeout: cmp.Or(d.StoreTimeout, defaultStoreTimeout),
		budget:       storeBudget{maxCount: int64(queue), maxBytes: cmp.Or(d.StoreQueueBytes, defaultStoreQueueBytes)},
		// Every admitted message holds at least one unit of the budget
		// until answered, so this queue never has fewer free slots than
		// the budget has units: sending to it never waits.
		appendq:  make(chan *fanout, queue),
		backendQ: cmp.Or(d.BackendQueue, defaultBackendQueue),
		storeCtx: ctx, cancelStore: cancel, open: true}
	r.loops.Add(1)
	go r.appender()
	return r
}

// NewMsgID returns a new message id: a ULID whose 80 random bits come
// from the router's entropy source, never from math/rand (ulid.Make's
// monotonic source is seeded from the clock, so one id predicts the next).
// A failing injected source falls back to the operating system's CSPRNG.
func (r *Router) NewMsgID() string {
	id, err := ulid.New(ulid.Timestamp(r.now()), r.rand)
	if err != nil {
		r.log.Error("msg_id entropy source failed; using crypto/rand", "err", err)
		id = ulid.MustNew(ulid.Timestamp(r.now()), rand.Reader)
	}
	return id.String()
}

// Send routes m and calls done exactly once with the outcome. m's
// destination must be valid; Send fills MsgID (if empty) and TS. Deliveries
// are published before Send returns, so messages sent from one goroutine
// reach each node in order. order, if not nil, releases the outcomes of the
// messages sent with it in send order, early rejections included. done may
// run on another goroutine, and must not block.
//
// Send itself may block on a KV read (a client's devices, a session's
// members) bounded by ctx; call it from the sender's own goroutine, never
// from a NATS callback.
func (r *Router) Send(ctx context.Context, m *allspark.Message, corrID string, order *OutcomeOrder, done func(allspark.Sent)) {
	f := r.newFanout(m, corrID, order, done)
	if m.DestSessionID != "" && m.MemberID == "" {
		r.sendSession(f)
		return
	}
	targets, storeOnly, rej := r.targets(ctx, m)
	if rej == nil {
		if f.frame, rej = encode(m); rej == nil && len(targets) == 0 {
			rej = allspark.Errorf(allspark.CodeOffline, "the client has no known devices")
		}
	}
	if rej != nil {
		f.rejectNow(rej)
		return
	}
	f.left = len(targets)
	f.enter()
	for _, node := range targets {
		if storeOnly {
			f.result(node, false) // straight to its inbox; the nudge brings it to the node
			continue
		}
		r.deliver(f, node)
	}
}

// Reject answers m rejected with e without routing it, in its turn among
// the sender's answers: a check the caller makes before routing (session
// membership, a draining edge) must not overtake the answers to the
// sender's older messages.
func (r *Router) Reject(m *allspark.Message, corrID string, order *OutcomeOrder, e *allspark.Error, done func(allspark.Sent)) {
	r.newFanout(m, corrID, order, done).rejectNow(e)
}

// newFanout stamps m (msg_id if none, ts) and starts its way to an answer.
func (r *Router) newFanout(m *allspark.Message, corrID string, order *OutcomeOrder, done func(allspark.Sent)) *fanout {
	if m.MsgID == "" {
		m.MsgID = r.NewMsgID()
	}
	m.TS = r.now().UnixMilli()
	if hook := r.hooks.OnOutcome; hook != nil {
		answer := done
		done = func(s allspark.Sent) { hook(s); answer(s) }
	}
	return &fanout{r: r, m: m, corrID: corrID, done: done, order: order}
}

// targets resolves m's destination to nodes: its dest_id, its client's
// devices (but the sending one), or a session member's node.
//
// storeOnly is set for an anonymous member: its copy is stored without a
// live attempt, so the answer (always "stored", at the same speed) says
// nothing about whether, or how quickly, the node behind the alias is
// connected; otherwise a member could time its whispers against another
// session's presence and link the alias to the node.
func (r *Router) targets(ctx context.Context, m *allspark.Message) (targets []string, storeOnly bool, rej *allspark.Error) {
	switch {
	case m.DestID != "":
		return []string{m.DestID}, false, nil
	case m.DestClientID != "":
		nodes, err := r.devices.Nodes(ctx, m.DestClientID)
		if err != nil {
			r.log.Warn("look up client devices", "client", m.DestClientID, "err", err)
			return nil, false, allspark.Errorf(allspark.CodeUnavailable, "cannot look up the client's devices")
		}
		targets := nodes[:0]
		for _, n := range nodes {
			if n != m.SrcID { // the sending device already has its own message
				targets = append(targets, n)
			}
		}
		return targets, false, nil
	default: // one member of a session, by member id: routed like a direct message
		node, anon, err := r.sessions.MemberNode(ctx, m.DestSessionID, m.MemberID)
		switch {
		case errors.Is(err, ErrMemberNotFound):
			return nil, false, allspark.Errorf(allspark.CodeNotFound, "no such member in the session")
		case err != nil:
			return nil, false, allspark.Errorf(sessionCode(err), err.Error())
		}
		return []string{node}, anon, nil
	}
}

// encode makes the exact frame receivers get.
func encode(m *allspark.Message) ([]byte, *allspark.Error) {
	frame, err := json.Marshal(m)
	if err != nil {
		return nil, allspark.Errorf(allspark.CodeBadFrame, "payload cannot be encoded")
	}
	return frame, nil
}

// deliver starts one target's live delivery: through the Route hook when
// there is one, else as a NATS request whose reply is the target edge's
// verdict. Either way f.result(node, ...) follows exactly once.
func (r *Router) deliver(f *fanout, node string) {
	publish := func() error {
		msg := &nats.Msg{Subject: r.subj.Node(node), Data: f.frame, Header: nats.Header{HeaderMsgID: []string{f.m.MsgID}}}
		return r.req.Request(msg, func(reply *nats.Msg, err error) {
			f.result(node, err == nil && len(reply.Data) > 0 && reply.Data[0] == ReplyAcked[0])
		})
	}
	var err error
	if route := r.hooks.Route; route != nil && !allspark.IsServiceID(node) {
		err = route(node, f.m.MsgID, f.frame, publish, func(acked bool) { f.result(node, acked) })
	} else {
		err = publish()
	}
	if err != nil {
		r.log.Warn("publish delivery", "node", node, "err", err)
		f.result(node, false)
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

// Shutdown stops accepting stores and allspark.send requests and waits for
// the stores in flight. If ctx ends first, the stores still pending are
// cancelled and answered "unavailable" (their copies may still become
// durable: JetStream may have them without having acknowledged them), and
// Shutdown returns ctx's error once every answer is given, which takes no
// more than a publish attempt's cancellation. Call it after the Requester is
// closed, so no reply is in flight; outcomes arriving later are answered
// "unavailable".
func (r *Router) Shutdown(ctx context.Context) error {
	r.openMu.Lock()
	if r.open {
		r.open = false
		close(r.appendq)
		if r.backend != nil {
			close(r.backend)
		}
	}
	r.openMu.Unlock()
	idle := make(chan struct{})
	go func() {
		r.loops.Wait() // the appender and the backend worker admit no store once closed
		r.stores.Wait()
		close(idle)
	}()
	defer r.cancelStore()
	select {
	case <-idle:
		return nil
	case <-ctx.Done():
	}
	select {
	case <-idle: // finished as ctx ended: nothing was cut short
		return nil
	default:
	}
	r.cancelStore()
	<-idle
	return fmt.Errorf("stop router: stores cancelled: %w", ctx.Err())
}

// Close is Shutdown without waiting: pending stores are answered at once.
func (r *Router) Close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = r.Shutdown(ctx)
}
