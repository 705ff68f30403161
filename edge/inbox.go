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

	// Owned by the running pass (passes never overlap; see running).
	gen   uint64     // the pass: a page's end is trusted only in the pass that read it
	buf   inboxPage  // the last page read: every message of the node from buf.from to its last
	ahead *pageAhead // the read of the page after buf, if one is in flight
}

// inboxPage is one read of the inbox: the node's messages from from on,
// oldest first, up to a page.
type inboxPage struct {
	from uint64
	msgs []bus.InboxMsg
	end  bool   // the inbox had nothing after the last one
	gen  uint64 // the pass that started the read
	err  error
}

// last is the sequence after which the page has nothing to say.
func (p *inboxPage) last() uint64 {
	if len(p.msgs) == 0 {
		return 0
	}
	return p.msgs[len(p.msgs)-1].Seq
}

// covers reports whether the page holds every message of the node at or
// after from up to its last.
func (p *inboxPage) covers(from uint64) bool {
	return len(p.msgs) > 0 && p.from <= from && from <= p.last()
}

// pageAhead is a page read while the one before it is handed out.
type pageAhead struct {
	from uint64
	done chan inboxPage // gets the page once
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
// wants, a page per request, hands each message to the connections that
// want it, and when the inbox has nothing more, ends the replay of those
// still replaying. The next page is read while the current one is handed
// out (one page ahead at most), so the client's writes and the reads
// overlap. A soft pass that fails closes only the connections still
// replaying.
func (in *nodeInbox) pass(soft bool) error {
	in.gen++
	for {
		conns := in.s.hub.lookup(in.node)
		from, ok := inboxFrom(conns)
		if !ok {
			// Every connection is gone, closing, or lagging (its writer
			// nudges): keep the page for a lagging one, if any.
			if !anyLagging(conns) {
				in.buf = inboxPage{}
			}
			return nil
		}
		p := in.page(from)
		switch {
		case errors.Is(p.err, bus.ErrInboxEmpty):
			for _, c := range conns {
				c.inboxCaughtUp(from)
			}
			in.buf = inboxPage{}
			return nil
		case errors.Is(p.err, errInboxStopped):
			return p.err
		case p.err != nil:
			in.s.log.Warn("read inbox: giving up after the grace", "node", in.node, "grace", in.s.cfg.InboxReadGrace, "err", p.err)
			// The clients cannot be told their inbox is synced; let them retry.
			for _, c := range conns {
				c.inboxFailed(soft)
			}
			in.buf = inboxPage{}
			return p.err
		}
		end := p.end && p.gen == in.gen
		if !end {
			in.readAhead(p.last() + 1)
		}
		for _, m := range p.msgs {
			if m.Seq < from {
				continue
			}
			for _, c := range conns {
				c.offerInbox(m)
			}
		}
		if end {
			for _, c := range conns {
				c.inboxCaughtUp(p.last() + 1)
			}
			if !anyLagging(conns) {
				in.buf = inboxPage{}
			}
			return nil
		}
	}
}

// page is the node's messages from from on: from the last page if it
// holds them, else from the read ahead if it started there, else read now.
func (in *nodeInbox) page(from uint64) inboxPage {
	if in.buf.covers(from) {
		return in.buf
	}
	if a := in.ahead; a != nil && a.from <= from {
		in.ahead = nil
		var p inboxPage
		select {
		case p = <-a.done:
		case <-in.ctx.Done():
			return inboxPage{err: errInboxStopped}
		case <-in.s.stop:
			return inboxPage{err: errInboxStopped}
		}
		switch {
		case errors.Is(p.err, bus.ErrInboxEmpty):
			if p.gen == in.gen {
				in.buf = inboxPage{}
				return p // nothing from a.from on, so nothing from from on
			}
		case p.err != nil:
			if p.gen == in.gen || errors.Is(p.err, errInboxStopped) {
				return p // the grace is spent: do not start another
			}
		case p.covers(from) || p.end && from > p.last():
			in.buf = p
			return p
		}
		// From an earlier pass, or short of from: read again.
	}
	in.buf = in.read(from, in.gen)
	return in.buf
}

// readAhead starts reading the page from from on. One read ahead at most
// is in flight: one still running for another position is left to finish
// (page drops it if it does not fit).
func (in *nodeInbox) readAhead(from uint64) {
	if a := in.ahead; a != nil {
		if a.from == from {
			return
		}
		select {
		case <-a.done: // finished, and not the page wanted
		default:
			return
		}
	}
	a := &pageAhead{from: from, done: make(chan inboxPage, 1)}
	in.ahead = a
	gen := in.gen
	in.s.spawn(func() { a.done <- in.read(from, gen) })
}

// anyLagging reports whether a pass skipped one of conns for a full queue.
func anyLagging(conns []*conn) bool {
	for _, c := range conns {
		c.mu.Lock()
		lagging := c.inboxLagging
		c.mu.Unlock()
		if lagging {
			return true
		}
	}
	return false
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
	c.inboxSent.handed(m.Seq, c.inboxNext, m.MsgID != "")
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

// read reads a page of the node's pending messages at or after from. A
// failing read (the stream's leader is being elected, say) is retried for
// up to InboxReadGrace from the start of the first failed attempt, so a
// failover shorter than the grace costs the clients a delay, not a
// reconnect. It fails with errInboxStopped if the node's last connection
// here ends meanwhile.
func (in *nodeInbox) read(from, gen uint64) inboxPage {
	var deadline time.Time // zero until a read fails
	var lastErr error
	pause := inboxRetryMin
	for {
		start := in.s.now()
		timeout := inboxReadTimeout
		if !deadline.IsZero() {
			left := deadline.Sub(start)
			if left <= 0 {
				return inboxPage{err: lastErr, gen: gen}
			}
			timeout = min(timeout, left)
		}
		msgs, end, err := in.next(from, timeout)
		if err == nil || errors.Is(err, bus.ErrInboxEmpty) {
			return inboxPage{from: from, msgs: msgs, end: end, gen: gen, err: err}
		}
		if in.ctx.Err() != nil {
			return inboxPage{err: errInboxStopped}
		}
		lastErr = err
		if deadline.IsZero() {
			deadline = start.Add(in.s.cfg.InboxReadGrace)
		}
		left := deadline.Sub(in.s.now())
		if left <= 0 {
			return inboxPage{err: err, gen: gen}
		}
		in.s.log.Debug("read inbox failed; retrying", "node", in.node, "in", min(pause, left), "grace_left", left, "err", err)
		t := time.NewTimer(min(pause, left))
		select {
		case <-t.C:
		case <-in.ctx.Done():
			t.Stop()
			return inboxPage{err: errInboxStopped}
		}
		pause = min(2*pause, inboxRetryMax)
	}
}

// next makes one inbox read of up to InboxPage messages and half the send
// queue's bytes (what a connection takes at once, see offerInbox), once one
// of the edge's MaxInboxReads slots is free; timeout bounds the read, not
// the wait for a slot (a busy edge makes reads wait, it does not make them
// fail).
func (in *nodeInbox) next(from uint64, timeout time.Duration) ([]bus.InboxMsg, bool, error) {
	select {
	case in.s.hub.reads <- struct{}{}:
	case <-in.ctx.Done():
		return nil, false, errInboxStopped
	}
	defer func() { <-in.s.hub.reads }()
	in.s.hub.readStarted()
	defer in.s.hub.reading.Add(-1)
	ctx, cancel := context.WithTimeout(in.ctx, timeout)
	defer cancel()
	return in.s.inbox.Page(ctx, in.node, from, in.s.cfg.InboxPage, in.s.cfg.SendQueueBytes/2)
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
