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

// Store keeps a message for a node that did not acknowledge it.
//
// Contract: when Store returns nil the message is durably stored and will be
// offered to nodeID at its next connection. Storing the same msg_id for the
// same node twice keeps one copy. Store may block on I/O; it is never called
// from a goroutine that must not block.
type Store interface {
	Store(ctx context.Context, nodeID, msgID string, frame []byte) error
}

// RouterConfig configures a Router.
type RouterConfig struct {
	AckTimeout time.Duration
}

// Router routes messages to nodes and clients and tells the sender what
// happened. It is shared by every connection of an edge and by the
// allspark.send responder.
type Router struct {
	nc      *nats.Conn
	req     *Requester
	subj    Subjects
	devices *Devices
	store   Store // nil: nothing can be stored; unreached nodes make the send rejected
	cfg     RouterConfig
	now     func() time.Time
	log     *slog.Logger
	// storing counts store goroutines, so Close can wait for them.
	storing sync.WaitGroup
}

// NewRouter builds a router. store may be nil.
func NewRouter(nc *nats.Conn, req *Requester, subj Subjects, devices *Devices, store Store, cfg RouterConfig, now func() time.Time, log *slog.Logger) *Router {
	return &Router{nc: nc, req: req, subj: subj, devices: devices, store: store, cfg: cfg, now: now, log: log}
}

// NewMsgID returns a new time-ordered message id.
func (r *Router) NewMsgID() string { return ulid.Make().String() }

// Send routes m and calls done exactly once with the outcome. m's
// destination must be valid; Send fills MsgID (if empty) and TS. Deliveries
// are published before Send returns, so messages sent from one goroutine
// reach each node in order. done may run on another goroutine.
func (r *Router) Send(ctx context.Context, m *allspark.Message, corrID string, done func(allspark.Sent)) {
	if m.MsgID == "" {
		m.MsgID = r.NewMsgID()
	}
	m.TS = r.now().UnixMilli()
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
	default:
		reject(allspark.CodeUnavailable, "session messages are not enabled on this edge")
		return
	}
	frame, err := json.Marshal(m)
	if err != nil {
		reject(allspark.CodeBadFrame, "payload cannot be encoded")
		return
	}
	f := &fanout{r: r, m: m, corrID: corrID, frame: frame, done: done, left: len(targets)}
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

	mu        sync.Mutex
	left      int      // guarded by mu
	delivered int      // guarded by mu
	unreached []string // guarded by mu: nodes that did not ack
}

func (r *Router) deliver(f *fanout, node string) {
	msg := &nats.Msg{Subject: r.subj.Node(node), Data: f.frame, Header: nats.Header{HeaderMsgID: []string{f.m.MsgID}}}
	err := r.req.Request(msg, r.cfg.AckTimeout+replyGrace, func(reply *nats.Msg, err error) {
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

// finish runs once, after the last node's outcome.
func (f *fanout) finish() {
	id, msgID := f.corrID, f.m.MsgID
	if len(f.unreached) == 0 {
		f.done(allspark.NewSent(id, msgID, allspark.StatusDelivered, nil))
		return
	}
	if f.r.store == nil {
		if f.delivered > 0 {
			// Nothing can be stored, and every node that was reachable has it.
			f.done(allspark.NewSent(id, msgID, allspark.StatusDelivered, nil))
			return
		}
		f.done(allspark.NewSent(id, msgID, allspark.StatusRejected, allspark.Errorf(allspark.CodeOffline, "no target node is online")))
		return
	}
	// Storing is I/O; this runs on the reply goroutine, which must not block.
	f.r.storing.Add(1)
	go func() {
		defer f.r.storing.Done()
		f.done(f.r.storeAll(f))
	}()
}

func (r *Router) storeAll(f *fanout) allspark.Sent {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, node := range f.unreached {
		if err := r.store.Store(ctx, node, f.m.MsgID, f.frame); err != nil {
			errs = append(errs, fmt.Errorf("store for %q: %w", node, err))
		}
	}
	if err := errors.Join(errs...); err != nil {
		r.log.Error("store message", "msg_id", f.m.MsgID, "err", err)
		return allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusRejected, allspark.Errorf(allspark.CodeUnavailable, "the message could not be stored"))
	}
	return allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusStored, nil)
}

// Wait blocks until every store started by the router has finished.
func (r *Router) Wait() { r.storing.Wait() }
