package edge

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Inbox replay. A connection starts "replaying": live deliveries are held
// while the node's pending messages are read from the inbox, oldest first,
// then sync_done goes out, then the held live messages (minus any the
// replay already delivered). So a sender whose earlier messages were stored
// and later ones are live sees them arrive in order. Held deliveries count
// against SendQueueBytes with the queue (see roomLocked), so a replay that
// cannot progress does not let live traffic pile up without bound.
//
// A failing inbox read is retried for InboxReadGrace (see readInbox); only
// then is the connection closed with 1013.
//
// After that first pass, a nudge (bus.HeaderInbox) on the node's subject
// starts another pass from where the last one stopped: a message stored
// after the node connected (say its sender timed out waiting for a dead
// edge) still reaches it without a reconnect.

const (
	// inboxReadTimeout bounds one inbox read.
	inboxReadTimeout = 5 * time.Second
	// inboxRetryMin and inboxRetryMax bound the pause between retries of a
	// failing inbox read; it doubles from the first to the second.
	inboxRetryMin = 50 * time.Millisecond
	inboxRetryMax = time.Second
)

// syncInbox starts a pass unless one is running, in which case that pass
// runs once more when it finishes.
func (c *conn) syncInbox() {
	c.mu.Lock()
	if c.tornDown {
		c.mu.Unlock()
		return
	}
	if c.syncing {
		c.syncAgain = true
		c.mu.Unlock()
		return
	}
	c.syncing = true
	c.mu.Unlock()
	c.s.spawn(func() {
		c.syncLoop()
	})
}

func (c *conn) syncLoop() {
	for {
		n, err := c.inboxPass()
		if err != nil && !errors.Is(err, errConnClosed) {
			c.s.log.Warn("read inbox: giving up after the grace", "node", c.id.NodeID, "grace", c.s.cfg.InboxReadGrace, "err", err)
			// The client cannot be told its inbox is synced; let it retry.
			c.requestClose(allspark.CloseTryAgain, "inbox unavailable")
		}
		c.mu.Lock()
		if c.replaying && err == nil {
			c.finishReplay(n)
		}
		if !c.syncAgain || c.tornDown || err != nil {
			c.syncing = false
			c.mu.Unlock()
			return
		}
		c.syncAgain = false
		c.mu.Unlock()
	}
}

// finishReplay queues sync_done and the live messages held during the
// first pass. Called with c.mu held.
func (c *conn) finishReplay(pending int) {
	c.replaying = false
	c.queueLocked(mustJSON(syncDoneFrame{Type: "sync_done", Pending: pending}))
	for _, h := range c.held {
		if _, dup := c.replayed[h.msgID]; !dup || h.msgID == "" {
			c.queueLocked(h.frame)
			c.s.m.delivered(h.msgID)
		}
	}
	c.held, c.heldBytes, c.replayed = nil, 0, nil
	c.signal()
}

var errConnClosed = errors.New("connection closed")

// inboxPass delivers every pending message from c.inboxNext on and returns
// how many it delivered.
func (c *conn) inboxPass() (int, error) {
	n := 0
	for {
		c.mu.Lock()
		from, gone := c.inboxNext, c.tornDown
		c.mu.Unlock()
		if gone {
			return n, errConnClosed
		}
		m, err := c.readInbox(from)
		if errors.Is(err, bus.ErrInboxEmpty) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		c.mu.Lock()
		c.inboxNext = m.Seq + 1
		if m.MsgID != "" {
			c.inboxAcks[m.MsgID] = m.Seq
			if c.replaying {
				c.replayed[m.MsgID] = struct{}{}
			}
		}
		c.mu.Unlock()
		if !c.sendPaced(m.Frame) {
			return n, errConnClosed
		}
		c.s.m.replayed.Inc()
		n++
	}
}

// readInbox reads the node's next pending message at or after from. A
// failing read (the stream's leader is being elected, say) is retried for
// up to InboxReadGrace from the start of the first failed attempt, so a
// failover shorter than the grace costs the client a delay, not a
// reconnect. It returns errConnClosed if the connection ends meanwhile.
func (c *conn) readInbox(from uint64) (bus.InboxMsg, error) {
	var deadline time.Time // zero until a read fails
	var lastErr error
	pause := inboxRetryMin
	for {
		start := c.s.now()
		timeout := inboxReadTimeout
		if !deadline.IsZero() {
			left := deadline.Sub(start)
			if left <= 0 {
				return bus.InboxMsg{}, lastErr
			}
			timeout = min(timeout, left)
		}
		ctx, cancel := context.WithTimeout(c.ctx, timeout)
		m, err := c.s.inbox.Next(ctx, c.id.NodeID, from)
		cancel()
		if err == nil || errors.Is(err, bus.ErrInboxEmpty) {
			return m, err
		}
		if c.ctx.Err() != nil {
			return m, errConnClosed
		}
		lastErr = err
		if deadline.IsZero() {
			deadline = start.Add(c.s.cfg.InboxReadGrace)
		}
		left := deadline.Sub(c.s.now())
		if left <= 0 {
			return m, err
		}
		c.s.log.Debug("read inbox failed; retrying", "node", c.id.NodeID, "in", min(pause, left), "grace_left", left, "err", err)
		t := time.NewTimer(min(pause, left))
		select {
		case <-t.C:
		case <-c.ctx.Done():
			t.Stop()
			return m, errConnClosed
		}
		pause = min(2*pause, inboxRetryMax)
	}
}

// sendPaced queues b once the queue is at most half full, so a replay of
// any length follows the client's pace instead of tripping the 4009 cap.
func (c *conn) sendPaced(b []byte) bool {
	for {
		c.mu.Lock()
		if c.tornDown || c.closing.code != 0 || c.draining {
			c.mu.Unlock()
			return false
		}
		if c.queued == 0 || c.queued+len(b) <= c.s.cfg.SendQueueBytes/2 {
			c.queueLocked(b)
			c.mu.Unlock()
			c.signal()
			return true
		}
		c.mu.Unlock()
		select {
		case <-c.drained:
		case <-c.done:
			return false
		}
	}
}

// removeAcked hands acknowledged inbox messages to the deleters. If their
// queue is full the deletion is skipped: the message comes again at the
// next connection (a duplicate, never a loss).
func (s *Server) removeAcked(seq uint64) {
	select {
	case s.deletes <- seq:
	default:
		s.log.Warn("inbox delete queue full; message will be redelivered", "seq", seq)
	}
}

// deleter removes acknowledged messages from the inbox until stop closes.
func (s *Server) deleter() {
	for {
		select {
		case <-s.stop:
			return
		case seq := <-s.deletes:
			ctx, cancel := context.WithTimeout(context.Background(), inboxReadTimeout)
			err := s.inbox.Remove(ctx, seq)
			cancel()
			switch {
			case err == nil:
			case alreadyRemoved(err):
				// Two connections of the node (or a pass after a redelivery)
				// delivered the same message and both acks came back; the
				// first one removed it.
				s.log.Debug("acked message already removed", "seq", seq, "err", err)
			default:
				s.log.Warn("remove acked message", "seq", seq, "err", err)
			}
		}
	}
}

// alreadyRemoved reports whether err is JetStream's answer to deleting a
// message that is no longer there: the sequence is already deleted or past
// the stream's end (10043), or the store found no message at it (10057
// wrapping "no message found"). jetstream.Stream.DeleteMsg reports these
// only as text after ErrMsgDeleteUnsuccessful, so the text is all there is
// to match.
func alreadyRemoved(err error) bool {
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return true
	}
	if !errors.Is(err, jetstream.ErrMsgDeleteUnsuccessful) {
		return false
	}
	msg := err.Error()
	return strings.Contains(msg, "err_code=10043") ||
		strings.Contains(msg, "err_code=10057") && strings.Contains(msg, "no message found")
}
