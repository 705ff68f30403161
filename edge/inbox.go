package edge

import (
	"context"
	"errors"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
)

// Inbox replay. A connection starts "replaying": live deliveries are held
// while the node's pending messages are read from the inbox, oldest first,
// then sync_done goes out, then the held live messages (minus any the
// replay already delivered). So a sender whose earlier messages were stored
// and later ones are live sees them arrive in order.
//
// After that first pass, a nudge (bus.HeaderInbox) on the node's subject
// starts another pass from where the last one stopped: a message stored
// after the node connected (say its sender timed out waiting for a dead
// edge) still reaches it without a reconnect.

// inboxReadTimeout bounds one inbox read.
const inboxReadTimeout = 5 * time.Second

// syncInbox starts a pass unless one is running, in which case that pass
// runs once more when it finishes.
func (c *conn) syncInbox() {
	c.mu.Lock()
	if c.closed {
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
			c.s.log.Warn("read inbox", "node", c.id.NodeID, "err", err)
			// The client cannot be told its inbox is synced; let it retry.
			c.close(allspark.CloseTryAgain, "inbox unavailable")
		}
		c.mu.Lock()
		if c.replaying && err == nil {
			c.finishReplay(n)
		}
		if !c.syncAgain || c.closed || err != nil {
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
	c.held, c.replayed = nil, nil
	c.signal()
}

var errConnClosed = errors.New("connection closed")

// inboxPass delivers every pending message from c.inboxNext on and returns
// how many it delivered.
func (c *conn) inboxPass() (int, error) {
	n := 0
	for {
		c.mu.Lock()
		from, closed := c.inboxNext, c.closed
		c.mu.Unlock()
		if closed {
			return n, errConnClosed
		}
		ctx, cancel := context.WithTimeout(c.ctx, inboxReadTimeout)
		m, err := c.s.inbox.Next(ctx, c.id.NodeID, from)
		cancel()
		if errors.Is(err, bus.ErrInboxEmpty) {
			return n, nil
		}
		if err != nil {
			if c.ctx.Err() != nil {
				return n, errConnClosed
			}
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

// sendPaced queues b once the queue is at most half full, so a replay of
// any length follows the client's pace instead of tripping the 4009 cap.
func (c *conn) sendPaced(b []byte) bool {
	for {
		c.mu.Lock()
		if c.closed || c.closeCode != 0 {
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
			if err := s.inbox.Remove(ctx, seq); err != nil {
				s.log.Warn("remove acked message", "seq", seq, "err", err)
			}
			cancel()
		}
	}
}
