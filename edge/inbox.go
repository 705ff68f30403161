package edge

import (
	"context"
	"errors"
	"strings"
	"sync"
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
// The inbox is read once per node on this edge, not once per connection:
// the node's nodeInbox runs one pass at a time for all of the node's
// connections here, reading each message once and handing it to every
// connection that has not had it yet (a new connection starts from the
// beginning, the others from where they are). A pass never waits for a
// client: a connection whose queue is half full is skipped ("lagging") and
// its writer starts another pass once it has written what was queued, so a
// replay follows each client's pace without one slow client holding up the
// node's others. Reads in flight on the edge are bounded by
// Config.MaxInboxReads.
//
// A failing inbox read is retried for InboxReadGrace (see read); only then
// are the connections the pass served closed with 1013.
//
// After a connection's first pass, a nudge (bus.HeaderInbox) on the node's
// subject starts another pass from where the last one stopped: a message
// stored after the node connected (say its sender timed out waiting for a
// dead edge) still reaches it without a reconnect.
// A nudge can be lost (this edge off NATS, a dispatcher channel full); the
// edge then runs the passes itself (see reconnect.go).

const (
	// inboxReadTimeout bounds one inbox read.
	inboxReadTimeout = 5 * time.Second
	// inboxRetryMin and inboxRetryMax bound the pause between retries of a
	// failing inbox read; it doubles from the first to the second.
	inboxRetryMin = 50 * time.Millisecond
	inboxRetryMax = time.Second
)

// nodeInbox reads one node's inbox for all its connections on this edge.
// The hub creates it with the node's first connection here and stops it
// with the last.
type nodeInbox struct {
	s      *Server
	node   string
	ctx    context.Context // ends when the node's last connection here does
	cancel context.CancelFunc

	mu      sync.Mutex
	running bool // guarded by mu: a pass is running
	again   bool // guarded by mu: run another pass after this one
}

func newNodeInbox(s *Server, node string) *nodeInbox {
	ctx, cancel := context.WithCancel(context.Background())
	return &nodeInbox{s: s, node: node, ctx: ctx, cancel: cancel}
}

func (in *nodeInbox) stop() { in.cancel() }

// nudge starts a pass unless one is running, in which case that pass runs
// once more when it finishes. It never blocks: callers include NATS
// dispatchers and connection writers.
func (in *nodeInbox) nudge() {
	if in.claim() {
		in.s.spawn(func() { _ = in.loop(false) })
	}
}

// runPass is nudge on the caller's goroutine: it runs the pass (and any
// more asked for meanwhile) before it returns, unless a pass is running,
// which it asks to go once more. The re-nudge sweeps use it so that their
// bounded pool, not a goroutine per node, does the reading. Its passes are
// soft: a read failing past the grace closes only the connections still
// waiting for their first sync_done (a sweep after a reconnect must not
// close every synced connection of the edge because JetStream is slow to
// recover); it returns the error so that the sweep can try again.
func (in *nodeInbox) runPass() error {
	if in.claim() {
		return in.loop(true)
	}
	return nil
}

// claim marks a pass as running and reports true if none was; otherwise
// it asks the running pass to go once more.
func (in *nodeInbox) claim() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ctx.Err() != nil {
		return false
	}
	if in.running {
		in.again = true
		return false
	}
	in.running = true
	return true
}

func (in *nodeInbox) loop(soft bool) error {
	for {
		err := in.pass(soft)
		in.mu.Lock()
		if !in.again || err != nil || in.ctx.Err() != nil {
			in.running = false
			in.mu.Unlock()
			return err
		}
		in.again = false
		in.mu.Unlock()
	}
}

var errInboxStopped = errors.New("node has no connection left on this edge")

// pass reads the inbox from the earliest position a connection of the node
// wants, hands each message to the connections that want it, and when the
// inbox has nothing more, ends the replay of those still replaying. A soft
// pass that fails closes only the connections still replaying.
func (in *nodeInbox) pass(soft bool) error {
	for {
		conns := in.s.hub.lookup(in.node)
		from, ok := inboxFrom(conns)
		if !ok {
			return nil // every connection is gone, closing, or lagging (its writer nudges)
		}
		m, err := in.read(from)
		switch {
		case errors.Is(err, bus.ErrInboxEmpty):
			for _, c := range conns {
				c.inboxCaughtUp(from)
			}
			return nil
		case errors.Is(err, errInboxStopped):
			return err
		case err != nil:
			in.s.log.Warn("read inbox: giving up after the grace", "node", in.node, "grace", in.s.cfg.InboxReadGrace, "err", err)
			// The clients cannot be told their inbox is synced; let them retry.
			for _, c := range conns {
				c.inboxFailed(soft)
			}
			return err
		}
		for _, c := range conns {
			c.offerInbox(m)
		}
	}
}

// inboxFrom is the earliest inbox position any of conns wants; ok is false
// when none wants anything now.
func inboxFrom(conns []*conn) (from uint64, ok bool) {
	for _, c := range conns {
		c.mu.Lock()
		if c.wantsInboxLocked() && (!ok || c.inboxNext < from) {
			from, ok = c.inboxNext, true
		}
		c.mu.Unlock()
	}
	return from, ok
}

// wantsInboxLocked reports whether a pass should read for c now. Called
// with c.mu held.
func (c *conn) wantsInboxLocked() bool {
	return !c.tornDown && c.closing.code == 0 && !c.draining && !c.inboxLagging
}

// offerInbox queues m for c if c has not had it, and its queue is at most
// half full; otherwise c is marked lagging and its writer nudges the node's
// reader once it has written what is queued.
func (c *conn) offerInbox(m bus.InboxMsg) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.wantsInboxLocked() || c.inboxNext > m.Seq {
		return
	}
	if c.queued != 0 && c.queued+len(m.Frame) > c.s.cfg.SendQueueBytes/2 {
		c.inboxLagging = true
		return
	}
	c.inboxNext = m.Seq + 1
	if m.MsgID != "" {
		c.inboxAcks[m.MsgID] = m.Seq
		if c.replaying {
			c.replayed[m.MsgID] = struct{}{}
		}
	}
	if c.replaying {
		c.replayCount++
	}
	c.queueLocked(m.Frame)
	c.s.m.replayed.Inc()
	c.signal()
}

// inboxCaughtUp ends c's replay if c has every message from on.
func (c *conn) inboxCaughtUp(from uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.replaying && c.wantsInboxLocked() && c.inboxNext >= from {
		c.finishReplay(c.replayCount)
	}
}

// inboxFailed closes c with 1013 if the failed pass was reading for it
// (and, after a soft pass, if c is still waiting for its sync_done).
func (c *conn) inboxFailed(soft bool) {
	c.mu.Lock()
	wanted := c.wantsInboxLocked() && (!soft || c.replaying)
	c.mu.Unlock()
	if wanted {
		c.requestClose(allspark.CloseTryAgain, "inbox unavailable")
	}
}

// resumeInbox nudges the node's reader if a pass skipped c because its
// queue was full; the writer calls it after writing a batch.
func (c *conn) resumeInbox() {
	c.mu.Lock()
	lagging := c.inboxLagging
	c.inboxLagging = false
	c.mu.Unlock()
	if lagging {
		c.inbox.nudge()
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

// read reads the node's next pending message at or after from. A failing
// read (the stream's leader is being elected, say) is retried for up to
// InboxReadGrace from the start of the first failed attempt, so a failover
// shorter than the grace costs the clients a delay, not a reconnect. It
// returns errInboxStopped if the node's last connection here ends
// meanwhile.
func (in *nodeInbox) read(from uint64) (bus.InboxMsg, error) {
	var deadline time.Time // zero until a read fails
	var lastErr error
	pause := inboxRetryMin
	for {
		start := in.s.now()
		timeout := inboxReadTimeout
		if !deadline.IsZero() {
			left := deadline.Sub(start)
			if left <= 0 {
				return bus.InboxMsg{}, lastErr
			}
			timeout = min(timeout, left)
		}
		m, err := in.next(from, timeout)
		if err == nil || errors.Is(err, bus.ErrInboxEmpty) {
			return m, err
		}
		if in.ctx.Err() != nil {
			return m, errInboxStopped
		}
		lastErr = err
		if deadline.IsZero() {
			deadline = start.Add(in.s.cfg.InboxReadGrace)
		}
		left := deadline.Sub(in.s.now())
		if left <= 0 {
			return m, err
		}
		in.s.log.Debug("read inbox failed; retrying", "node", in.node, "in", min(pause, left), "grace_left", left, "err", err)
		t := time.NewTimer(min(pause, left))
		select {
		case <-t.C:
		case <-in.ctx.Done():
			t.Stop()
			return m, errInboxStopped
		}
		pause = min(2*pause, inboxRetryMax)
	}
}

// next makes one inbox read, once one of the edge's MaxInboxReads slots is
// free; timeout bounds the read, not the wait for a slot (a busy edge makes
// reads wait, it does not make them fail).
func (in *nodeInbox) next(from uint64, timeout time.Duration) (bus.InboxMsg, error) {
	select {
	case in.s.hub.reads <- struct{}{}:
	case <-in.ctx.Done():
		return bus.InboxMsg{}, errInboxStopped
	}
	defer func() { <-in.s.hub.reads }()
	in.s.hub.readStarted()
	defer in.s.hub.reading.Add(-1)
	ctx, cancel := context.WithTimeout(in.ctx, timeout)
	defer cancel()
	return in.s.inbox.Next(ctx, in.node, from)
}

// readStarted counts an inbox read and keeps the peak of reads in flight.
func (h *hub) readStarted() {
	h.readCount.Add(1)
	n := h.reading.Add(1)
	for {
		peak := h.readPeak.Load()
		if n <= peak || h.readPeak.CompareAndSwap(peak, n) {
			return
		}
	}
}

// InboxReads counts the inbox reads this edge has made since it started.
func (s *Server) InboxReads() int64 { return s.hub.readCount.Load() }

// sendPaced queues b once the queue is at most half full, so a long
// session sync follows the client's pace instead of tripping the 4009 cap.
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
