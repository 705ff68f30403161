package bus

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// ErrRequesterClosed is passed to callbacks still pending when the Requester closes.
var ErrRequesterClosed = errors.New("requester closed")

// ReplyFunc receives the outcome of one request exactly once: the reply, or
// nats.ErrTimeout, nats.ErrNoResponders or ErrRequesterClosed. It runs on the
// reply subscription's goroutine (or a timer's) and must not block.
type ReplyFunc func(reply *nats.Msg, err error)

const requesterShards = 32

// Requester publishes requests without waiting for their replies. nats.go's
// Request blocks the caller for a round trip; an edge's reader must instead
// publish each message in order and learn the outcome later, so replies come
// back on one wildcard subscription and are matched to callbacks here.
type Requester struct {
	nc     *nats.Conn
	prefix string // reply subjects are prefix + token
	sub    *nats.Subscription
	next   atomic.Uint64
	shards [requesterShards]requestShard
}

type requestShard struct {
	mu      sync.Mutex
	pending map[uint64]*pendingRequest // guarded by mu
	closed  bool                       // guarded by mu
}

type pendingRequest struct {
	cb    ReplyFunc
	timer *time.Timer
}

// NewRequester subscribes to a fresh inbox prefix on nc.
func NewRequester(nc *nats.Conn) (*Requester, error) {
	r := &Requester{nc: nc, prefix: nc.NewRespInbox()}
	r.prefix = r.prefix[:strings.LastIndexByte(r.prefix, '.')+1]
	for i := range r.shards {
		r.shards[i].pending = make(map[uint64]*pendingRequest)
	}
	sub, err := nc.Subscribe(r.prefix+"*", r.onReply)
	if err != nil {
		return nil, fmt.Errorf("subscribe reply inbox: %w", err)
	}
	// Replies are small and must never be dropped for a slow consumer.
	_ = sub.SetPendingLimits(-1, -1)
	r.sub = sub
	return r, nil
}

// Request publishes msg with a reply subject and calls cb with the outcome
// within timeout. Messages published by one goroutine reach NATS in order.
func (r *Requester) Request(msg *nats.Msg, timeout time.Duration, cb ReplyFunc) error {
	id := r.next.Add(1)
	sh := &r.shards[id%requesterShards]
	p := &pendingRequest{cb: cb}
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return ErrRequesterClosed
	}
	sh.pending[id] = p
	p.timer = time.AfterFunc(timeout, func() { r.finish(id, nil, nats.ErrTimeout) })
	sh.mu.Unlock()

	msg.Reply = r.prefix + strconv.FormatUint(id, 36)
	if err := r.nc.PublishMsg(msg); err != nil {
		if r.take(id) != nil {
			return fmt.Errorf("publish request: %w", err)
		}
		// The timer fired already and told the caller; nothing more to say.
		return nil
	}
	return nil
}

func (r *Requester) onReply(m *nats.Msg) {
	tok := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	id, err := strconv.ParseUint(tok, 36, 64)
	if err != nil {
		return
	}
	if len(m.Data) == 0 && m.Header.Get("Status") == "503" {
		r.finish(id, nil, nats.ErrNoResponders)
		return
	}
	r.finish(id, m, nil)
}

func (r *Requester) take(id uint64) *pendingRequest {
	sh := &r.shards[id%requesterShards]
	sh.mu.Lock()
	p := sh.pending[id]
	delete(sh.pending, id)
	sh.mu.Unlock()
	if p != nil {
		p.timer.Stop()
	}
	return p
}

// finish delivers an outcome; only the first for an id wins (a request to a
// node connected on two edges can be answered twice).
func (r *Requester) finish(id uint64, m *nats.Msg, err error) {
	if p := r.take(id); p != nil {
		p.cb(m, err)
	}
}

// Close unsubscribes and fails every pending request with ErrRequesterClosed.
func (r *Requester) Close() {
	_ = r.sub.Unsubscribe()
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		sh.closed = true
		pending := sh.pending
		sh.pending = map[uint64]*pendingRequest{}
		sh.mu.Unlock()
		for _, p := range pending {
			p.timer.Stop()
			p.cb(nil, ErrRequesterClosed)
		}
	}
}
