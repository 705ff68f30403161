package edge

import (
	"strings"
	"sync"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// ackBatcher sends the "+" verdicts of deliveries from other edges, several
// to one NATS message where it can. Every reply subject of a sending edge's
// Requester is its prefix plus one token, so the acks bound for one edge
// that are waiting here together go out as one message to the prefix's
// batch subject (bus.BatchReplySubject), listing their tokens. A lone ack
// goes to its own reply subject as before.
//
// It batches what accumulates while it publishes: an idle edge sends an ack
// as soon as the client's ack frame is read, a busy one sends fewer, larger
// messages. Only verdicts a client acked are ever queued here (see
// ackVerdict.ack): a batch never acks a message the client did not ack.
//
// An edge of an older version ignores a batch: its senders time out and
// store those messages, which then arrive twice (never lost). Upgrade all
// edges of a deployment together.
type ackBatcher struct {
	nc   *nats.Conn
	wake chan struct{} // capacity 1

	mu      sync.Mutex
	q       []string // guarded by mu: reply subjects to answer "+"
	stopped bool     // guarded by mu: run has returned; add publishes itself
}

func newAckBatcher(nc *nats.Conn) *ackBatcher {
	return &ackBatcher{nc: nc, wake: make(chan struct{}, 1)}
}

// add queues a "+" for reply. It never blocks on NATS.
func (b *ackBatcher) add(reply string) {
	b.mu.Lock()
	if b.stopped {
		b.mu.Unlock()
		_ = b.nc.Publish(reply, bus.ReplyAcked)
		return
	}
	b.q = append(b.q, reply)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default:
	}
}

// run publishes queued acks until stop closes, then what is left.
func (b *ackBatcher) run(stop <-chan struct{}) {
	var buf []string
	for {
		select {
		case <-stop:
			b.mu.Lock()
			b.stopped = true
			buf, b.q = b.q, nil
			b.mu.Unlock()
			b.publish(buf)
			return
		case <-b.wake:
		}
		b.mu.Lock()
		buf, b.q = b.q, buf[:0]
		b.mu.Unlock()
		b.publish(buf)
		clear(buf)
	}
}

// publish sends replies grouped by their Requester prefix.
func (b *ackBatcher) publish(replies []string) {
	if len(replies) == 1 {
		_ = b.nc.Publish(replies[0], bus.ReplyAcked)
		return
	}
	groups := map[string][]string{}
	for _, r := range replies {
		i := strings.LastIndexByte(r, '.') + 1
		groups[r[:i]] = append(groups[r[:i]], r[i:])
	}
	for prefix, toks := range groups {
		if len(toks) == 1 {
			_ = b.nc.Publish(prefix+toks[0], bus.ReplyAcked)
			continue
		}
		_ = b.nc.Publish(bus.BatchReplySubject(prefix), []byte(strings.Join(toks, " ")))
	}
}
