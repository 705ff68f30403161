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
// reply subscription's goroutine (or the expiry goroutine) and must not block.
type ReplyFunc func(reply *nats.Msg, err error)

const requesterShards = 32

// Requester publishes requests without waiting for their replies. nats.go's
// Request blocks the caller for a round trip; an edge's reader must instead
// publish each message in order and learn the outcome later, so replies come
// back on one wildcard subscription and are matched to callbacks here.
//
// Every request has the same timeout, so deadlines are in publish order and
// one goroutine expires them from a FIFO, in that order: a sender whose
// messages all time out learns so in the order it sent them.
type Requester struct {
	nc      *nats.Conn
	prefix  string // reply subjects are prefix + token
	timeout time.Duration
	now     func() time.Time
	sub     *nats.Subscription
	next    atomic.Uint64
	shards  [requesterShards]requestShard

	expMu     sync.Mutex
	expq      []expiry // guarded by expMu: deadlines in publish order
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

type expiry struct {
	id uint64
	at time.Time
}

type requestShard struct {
	mu      sync.Mutex
	pending map[uint64]*pendingRequest // guarded by mu
	closed  bool                       // guarded by mu
}

type pendingRequest struct {
	cb ReplyFunc
}

// NewRequester subscribes to a fresh inbox prefix on nc. Requests time out
// after timeout.
func NewRequester(nc *nats.Conn, timeout time.Duration, now func() time.Time) (*Requester, error) {
	// A private prefix (under the connection's inbox prefix, which backends
	// cannot subscribe to), not nc.NewRespInbox(): that one is shared with
	// nats.go's own request mux, and the server addresses a no-responders
	// status to just one of the subscriptions matching the reply subject.
	r := &Requester{nc: nc, prefix: nc.NewInbox() + ".", timeout: timeout, now: now,
		stop: make(chan struct{}), done: make(chan struct{})}
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
	go r.expire()
	return r, nil
}

// expire times out requests whose deadline has passed, oldest first.
func (r *Requester) expire() {
	defer close(r.done)
	t := time.NewTicker(max(r.timeout/50, 5*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-r.stop:
			return
		case <-t.C:
		}
		now := r.now()
		r.expMu.Lock()
		n := 0
		for n < len(r.expq) && !r.expq[n].at.After(now) {
			n++
		}
		due := append([]expiry(nil), r.expq[:n]...)
		r.expq = r.expq[n:]
		r.expMu.Unlock()
		for _, e := range due {
			r.finish(e.id, nil, nats.ErrTimeout)
		}
	}
}

// Request publishes msg with a reply subject and calls cb with the outcome
// within the timeout. Messages published by one goroutine reach NATS in order.
func (r *Requester) Request(msg *nats.Msg, cb ReplyFunc) error {
	id := r.next.Add(1)
	sh := &r.shards[id%requesterShards]
	sh.mu.Lock()
	if sh.closed {
		sh.mu.Unlock()
		return ErrRequesterClosed
	}
	sh.pending[id] = &pendingRequest{cb: cb}
	sh.mu.Unlock()
	r.expMu.Lock()
	r.expq = append(r.expq, expiry{id: id, at: r.now().Add(r.timeout)})
	r.expMu.Unlock()

	msg.Reply = r.prefix + strconv.FormatUint(id, 36)
	if err := r.nc.PublishMsg(msg); err != nil {
		if r.take(id) != nil {
			return fmt.Errorf("publish request: %w", err)
		}
		// The request expired already and told the caller; nothing more to say.
		return nil
	}
	return nil
}

// batchToken is the last token of a Requester's batch reply subject; it is
// not base 36, so no request id has it.
const batchToken = "_"

// BatchReplySubject is where the edge holding the targets of several of
// one Requester's requests (prefix is what their reply subjects share, up
// to and including the last '.') acks them all in one message: its data
// is their last reply-subject tokens, separated by spaces. Each request so
// listed is answered ReplyAcked.
func BatchReplySubject(prefix string) string { return prefix + batchToken }

// batchAcked is the reply every request of a batch gets.
var batchAcked = &nats.Msg{Data: ReplyAcked}

func (r *Requester) onReply(m *nats.Msg) {
	tok := m.Subject[strings.LastIndexByte(m.Subject, '.')+1:]
	if tok == batchToken {
		for _, t := range strings.Fields(string(m.Data)) {
			if id, err := strconv.ParseUint(t, 36, 64); err == nil {
				r.finish(id, batchAcked, nil)
			}
		}
		return
	}
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
// A reply already being handled may still finish; no new callback starts.
// Closing again does nothing.
func (r *Requester) Close() { r.closeOnce.Do(r.close) }

func (r *Requester) close() {
	_ = r.sub.Unsubscribe()
	close(r.stop)
	<-r.done
	for i := range r.shards {
		sh := &r.shards[i]
		sh.mu.Lock()
		sh.closed = true
		pending := sh.pending
		sh.pending = map[uint64]*pendingRequest{}
		sh.mu.Unlock()
		for _, p := range pending {
			p.cb(nil, ErrRequesterClosed)
		}
	}
}
