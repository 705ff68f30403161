package edge

import (
	"context"
	"encoding/binary"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
	"github.com/lxzan/gws"
)

// readTimeout is how long the edge waits for anything from the client (a
// frame or a pong) before it gives up on the peer. Pings go out every
// pingInterval (see pingWheel: at most one wheel step early), so a live
// client answers one at least every interval; the extra half interval is
// the pong's allowance for round trip and for a ping queued behind a batch. A client that stops answering is
// therefore closed between 1 and 1.5 intervals after its last frame, and
// always within 2.
func readTimeout(pingInterval time.Duration) time.Duration {
	return pingInterval + pingInterval/2
}

// conn is one websocket connection. Its reader is gws's ReadLoop, which
// calls handle for each frame; its writer is writeLoop, which runs only
// while there is something to write (see signal), so an idle connection
// costs one goroutine. A writer that fails closes the socket, which stops
// the reader; a reader that stops tears the connection down, and no writer
// runs after that.
type conn struct {
	s       *Server
	id      auth.Identity
	ctx     context.Context // ends when the connection does
	cancel  context.CancelFunc
	drained chan struct{} // capacity 1: "the writer emptied the queue"
	done    chan struct{} // closed when teardown has run
	expiry  *time.Timer   // closes with 4001 when the auth_key expires; nil if none

	// order keeps this sender's answers in send order, the router's and the
	// edge's own early rejections (router.Reject) alike.
	order bus.OutcomeOrder
	inbox *nodeInbox // the node's inbox reader on this edge; set by hub.add

	// Used by the reader goroutine only (handle), so unguarded.
	limiter     rateLimiter
	rateClosing bool // over the rate for the whole grace: closing with 4008

	// writer is writerIdle (no writer goroutine), writerRunning (exactly
	// one) or writerDone (the close handshake began or a write failed: no
	// writer ever again). Only signal starts a writer, by moving it from
	// idle to running; only the writer moves it on, with mu held.
	writer atomic.Int32
	// pingSlot is 1 + the index of the ping wheel slot holding c, 0 when
	// it is in none. Set before the reader starts; read by teardown.
	pingSlot int

	mu       sync.Mutex
	ws       *gws.Conn              // guarded by mu: nil until attach
	aborted  bool                   // guarded by mu: abort ran; attach closes the socket at once
	queue    [][]byte               // guarded by mu
	queued   int                    // guarded by mu: bytes in queue
	closing  closeRequest           // guarded by mu: code non-zero once a close is requested
	pingDue  bool                   // guarded by mu: the ping wheel asked for a ping
	tornDown bool                   // guarded by mu: the reader has stopped and teardown ran; nothing is queued any more
	pending  map[string]*pendingAck // guarded by mu: live deliveries awaiting the client's ack
	ackq     []ackDeadline          // guarded by mu: pending acks in delivery order (same timeout, so deadline order)
	ackTimer *time.Timer            // guarded by mu: fires at ackq's head deadline; nil until first use
	ackArmed bool                   // guarded by mu

	// Inbox state; see inbox.go.
	replaying    bool                // guarded by mu: the replay has not finished
	replayCount  int                 // guarded by mu: inbox messages the replay delivered
	held         []heldMsg           // guarded by mu: live deliveries held while replaying
	heldBytes    int                 // guarded by mu: bytes in held, counted with queued against SendQueueBytes
	replayed     map[string]struct{} // guarded by mu: msg_ids the replay delivered
	inboxLagging bool                // guarded by mu: a pass skipped this connection for a full queue
	inboxNext    uint64              // guarded by mu: next inbox sequence to deliver
	inboxSent    inboxLedger         // guarded by mu: inbox messages handed and not yet removed
	inboxAcks    map[string]uint64   // guarded by mu: msg_id -> inbox sequence, until acked

	sessions map[string]string       // guarded by mu: session id -> this node's member id there
	cursors  map[string]*cursorWrite // guarded by mu: session id -> the read-cursor write in flight; see ackSession
	sessSync bool                    // guarded by mu: a session sync is running; see syncSession

	// draining: the reconnect frame is queued; only answers to the client's
	// earlier frames may follow it (see drain.go). Guarded by mu.
	draining bool
}

// closeRequest is a close the writer will carry out once it has flushed
// the queue.
type closeRequest struct {
	code   int
	reason string
}

type heldMsg struct {
	frame []byte
	msgID string
}

// pendingAck is a delivery from another edge waiting for this client's ack;
// v collects the verdict of every connection of the node that has it.
type pendingAck struct {
	v  *ackVerdict
	at time.Time // deadline
}

type ackDeadline struct {
	msgID string
	p     *pendingAck
}

func newConn(s *Server, id auth.Identity) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, id: id, ctx: ctx, cancel: cancel,
		drained: make(chan struct{}, 1), done: make(chan struct{}),
		pending: map[string]*pendingAck{}, replaying: true, replayed: map[string]struct{}{}, inboxAcks: map[string]uint64{},
		limiter: newRateLimiter(s.cfg.RateLimit, s.cfg.RateBurst, s.cfg.RateLimitGrace, s.now())}
}

// attach binds the upgraded socket and starts a writer for the
// deliveries queued before it (until now a writer finds no socket and
// stops). If abort already ran (the server is closing), the socket is
// closed at once, so the reader the caller starts ends immediately.
func (c *conn) attach(ws *gws.Conn) {
	c.mu.Lock()
	c.ws = ws
	aborted := c.aborted
	c.mu.Unlock()
	if aborted {
		_ = ws.NetConn().Close()
		return
	}
	c.signal()
}

// abort closes the socket without a close frame, as if the process died;
// the reader then fails and teardown runs. Before attach there is no
// socket yet: abort marks the connection so attach closes it.
func (c *conn) abort() {
	c.mu.Lock()
	c.aborted = true
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		_ = ws.NetConn().Close()
	}
}

// The writer's states; see conn.writer.
const (
	writerIdle int32 = iota
	writerRunning
	writerDone
)

// signal says the queue, the close request or a due ping changed: it
// starts a writer unless one is running (which will see the change: it
// looks at the queue under mu before it stops) or the connection is done
// writing. It never blocks and may be called with or without c.mu held.
func (c *conn) signal() {
	if c.writer.CompareAndSwap(writerIdle, writerRunning) {
		go c.writeLoop()
	}
}

// send queues a frame for the writer. A client whose queued and held
// frames would exceed SendQueueBytes is disconnected with 4009 rather than
// allowed to hold memory or slow down anyone else. It reports whether the
// frame was queued.
func (c *conn) send(b []byte) bool {
	c.mu.Lock()
	if c.tornDown || c.closing.code != 0 {
		c.mu.Unlock()
		return false
	}
	if !c.roomLocked(len(b)) {
		c.mu.Unlock()
		return false
	}
	c.queueLocked(b)
	c.mu.Unlock()
	c.signal()
	return true
}

// roomLocked reports whether n more bytes fit under SendQueueBytes, counting
// the queue and the live deliveries held during a replay. If they do not,
// it requests the 4009 close. Called with c.mu held.
func (c *conn) roomLocked(n int) bool {
	if c.queued+c.heldBytes+n <= c.s.cfg.SendQueueBytes {
		return true
	}
	c.closing = closeRequest{allspark.CloseSlowConsumer, "slow consumer"}
	c.s.slowConsumers.Add(1)
	c.s.m.slow.Inc()
	c.s.log.Warn("slow consumer disconnected", "node", c.id.NodeID, "queued", c.queued, "held", c.heldBytes)
	c.signal()
	return false
}

// queueLocked appends b to the queue. Called with c.mu held.
func (c *conn) queueLocked(b []byte) {
	c.queue = append(c.queue, b)
	c.queued += len(b)
}

// closeAfterFrame queues frame as the last one and asks for a close with
// code: nothing is queued after it, so a delivery racing the close is
// refused (and its sender stores it) instead of landing between the two.
func (c *conn) closeAfterFrame(frame []byte, code int, reason string) {
	c.mu.Lock()
	if !c.tornDown && c.closing.code == 0 {
		c.queueLocked(frame)
		c.closing = closeRequest{code, reason}
	}
	c.mu.Unlock()
	c.signal()
}

// requestClose asks the writer to flush what is queued and close with code.
func (c *conn) requestClose(code int, reason string) {
	c.mu.Lock()
	if c.closing.code == 0 {
		c.closing = closeRequest{code, reason}
	}
	c.mu.Unlock()
	c.signal()
}

// writeLoop is the connection's only writer while it runs; signal starts
// it and it ends when nothing is left to write, so an idle connection has
// no writer goroutine. Pings come from the server's ping wheel, which asks
// for one every PingInterval whatever else is written: a client that only
// receives must still be asked for a pong, or its silence would be taken
// for death. Each round drains the whole queue, so a burst costs one lock
// round and one write(2).
func (c *conn) writeLoop() {
	var batch [][]byte
	for {
		w, ok := c.takeQueue(batch)
		if !ok {
			return
		}
		batch = w.batch
		// A slow consumer would not read what is queued anyway.
		if w.closing.code == allspark.CloseSlowConsumer {
			batch = batch[:0]
		}
		if err := c.writeBatch(w.ws, w.ping, batch); err != nil {
			c.writer.Store(writerDone)
			_ = w.ws.NetConn().Close()
			return
		}
		clear(batch)
		select {
		case c.drained <- struct{}{}:
		default:
		}
		c.resumeInbox()
		if w.closing.code != 0 {
			c.beginCloseHandshake(w.ws, w.closing)
			return
		}
	}
}

// writeWork is one round of the writer.
type writeWork struct {
	ws      *gws.Conn
	batch   [][]byte
	closing closeRequest
	ping    bool
}

// takeQueue swaps the queue for buf (emptied) and returns what was queued,
// whether a ping is due and the close requested, if any. With nothing to
// do (or no socket yet, or the connection torn down) it stops the writer
// instead and reports false: deciding that under mu is what lets signal
// start a new writer without losing a wake-up. A close request moves the
// writer to done, as the round that carries it out is its last.
func (c *conn) takeQueue(buf [][]byte) (writeWork, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		c.writer.Store(writerDone)
		return writeWork{}, false
	}
	if c.ws == nil || (len(c.queue) == 0 && !c.pingDue && c.closing.code == 0) {
		// Idle (or not attached yet: attach signals again). An empty
		// queue's array goes too: an idle connection holds none.
		if len(c.queue) == 0 {
			c.queue = nil
		}
		c.writer.Store(writerIdle)
		return writeWork{}, false
	}
	w := writeWork{ws: c.ws, batch: c.queue, closing: c.closing, ping: c.pingDue}
	c.queue, c.queued, c.pingDue = buf[:0], 0, false
	if w.closing.code != 0 {
		c.writer.Store(writerDone)
	}
	return w, true
}

// requestPing asks the writer for a ping; the ping wheel calls it. A
// connection that is closing or gone gets none.
func (c *conn) requestPing() {
	c.mu.Lock()
	if c.tornDown || c.closing.code != 0 {
		c.mu.Unlock()
		return
	}
	c.pingDue = true
	c.mu.Unlock()
	c.signal()
}

// writeBatch writes a ping (if ping) and the frames and, on a batchConn,
// flushes them in one write.
func (c *conn) writeBatch(ws *gws.Conn, ping bool, batch [][]byte) error {
	if len(batch) == 0 && !ping {
		return nil
	}
	_ = ws.SetWriteDeadline(c.s.now().Add(c.s.cfg.WriteTimeout))
	bc, batched := ws.NetConn().(*batchConn)
	if batched {
		bc.begin()
	}
	if ping {
		if err := ws.WritePing(nil); err != nil {
			if batched {
				_ = bc.flush()
			}
			return err
		}
	}
	for i, b := range batch {
		if err := writeQueued(ws, b); err != nil {
			if batched {
				_ = bc.flush()
			}
			return err
		}
		batch[i] = nil
	}
	if batched {
		return bc.flush()
	}
	return nil
}

// closeLinger bounds how long a closing connection waits for the peer's
// close frame.
const closeLinger = 2 * time.Second

// beginCloseHandshake sends a close frame and half-closes the socket, leaving
// the reader to finish the RFC 6455 handshake: it ends when the client
// answers with its close frame or after closeLinger. Closing the socket at
// once (as gws's WriteClose does) makes the kernel answer with a reset
// when unread client bytes (acks, say) are pending, and the client can
// then lose the close frame, and with it the code.
func (c *conn) beginCloseHandshake(ws *gws.Conn, req closeRequest) {
	_ = ws.SetWriteDeadline(c.s.now().Add(c.s.cfg.WriteTimeout))
	payload := make([]byte, 2, 2+len(req.reason))
	binary.BigEndian.PutUint16(payload, uint16(req.code))
	payload = append(payload, req.reason...)
	if err := ws.WriteMessage(gws.OpcodeCloseConnection, payload); err != nil {
		_ = ws.NetConn().Close()
		return
	}
	if hc, ok := ws.NetConn().(interface{ CloseWrite() error }); ok {
		_ = hc.CloseWrite()
	}
	_ = ws.SetReadDeadline(c.s.now().Add(closeLinger))
}

// deliver queues a message from another edge and remembers where to send
// the client's ack. It reports whether the connection took it; one that
// would overflow SendQueueBytes (held frames included) is refused, and the
// connection closed with 4009.
func (c *conn) deliver(frame []byte, msgID string, v *ackVerdict) bool {
	c.mu.Lock()
	if c.tornDown || c.closing.code != 0 || c.draining || !c.roomLocked(len(frame)) {
		c.mu.Unlock()
		return false
	}
	if v != nil && msgID != "" {
		if _, dup := c.pending[msgID]; !dup {
			v.hold()
			p := &pendingAck{v: v, at: c.s.now().Add(c.s.cfg.AckTimeout)}
			c.pending[msgID] = p
			c.ackq = append(c.ackq, ackDeadline{msgID: msgID, p: p})
			c.armAckTimerLocked()
		}
	}
	if c.replaying {
		c.held = append(c.held, heldMsg{frame: frame, msgID: msgID})
		c.heldBytes += len(frame)
		c.mu.Unlock()
		return true
	}
	c.queueLocked(frame)
	c.mu.Unlock()
	c.s.m.delivered(msgID)
	c.signal()
	return true
}

// ack settles the client's acknowledgements.
func (c *conn) ack(ids []string) {
	var acked []*ackVerdict
	var seqs []uint64
	c.mu.Lock()
	now := c.s.now()
	for _, id := range ids {
		if p := c.pending[id]; p != nil {
			delete(c.pending, id)
			acked = append(acked, p.v)
			// p stays in ackq until its deadline; a same-edge verdict
			// holds its whole message, which must not live that long.
			p.v = nil
			c.s.m.ackLatency.Observe(now.Sub(p.at.Add(-c.s.cfg.AckTimeout)).Seconds())
		}
		if seq, ok := c.inboxAcks[id]; ok {
			delete(c.inboxAcks, id)
			seqs = append(seqs, seq)
		}
	}
	c.mu.Unlock()
	for _, v := range acked {
		v.ack()
	}
	c.removeAcked(seqs)
}

// armAckTimerLocked makes sure the ack timer will fire for ackq's head.
// Called with c.mu held.
func (c *conn) armAckTimerLocked() {
	if c.ackArmed || len(c.ackq) == 0 {
		return
	}
	d := c.ackq[0].p.at.Sub(c.s.now())
	if c.ackTimer == nil {
		c.ackTimer = time.AfterFunc(d, c.expireAcks)
	} else {
		c.ackTimer.Reset(d)
	}
	c.ackArmed = true
}

// expireAcks tells the senders of deliveries not acked in time, in the
// order they were delivered, so their stores keep that order.
func (c *conn) expireAcks() {
	now := c.s.now()
	var expired []*ackVerdict
	c.mu.Lock()
	c.ackArmed = false
	for len(c.ackq) > 0 && !c.ackq[0].p.at.After(now) {
		e := c.ackq[0]
		c.ackq[0] = ackDeadline{}
		c.ackq = c.ackq[1:]
		if c.pending[e.msgID] == e.p {
			delete(c.pending, e.msgID)
			expired = append(expired, e.p.v)
		}
	}
	if !c.tornDown {
		c.armAckTimerLocked()
	}
	c.mu.Unlock()
	for _, v := range expired {
		v.giveUp()
	}
}

// giveUpLocal gives up at once on the same-edge deliveries awaiting this
// client's ack, as if their ack timeout had passed, so their senders (on
// this edge) store them while the router still takes stores. A drain calls
// it when it stops waiting for answers; a later ack still settles nothing
// twice (the inbox copy is delivered again, and dropped by msg_id).
func (c *conn) giveUpLocal() {
	var local []*ackVerdict
	c.mu.Lock()
	kept := c.ackq[:0]
	for _, e := range c.ackq {
		if c.pending[e.msgID] != e.p {
			continue // acked or replaced: nothing to answer
		}
		if e.p.v.isLocal() {
			delete(c.pending, e.msgID)
			local = append(local, e.p.v)
			continue
		}
		kept = append(kept, e)
	}
	clear(c.ackq[len(kept):])
	c.ackq = kept
	c.mu.Unlock()
	for _, v := range local {
		v.giveUp()
	}
}

// teardown runs once, when the reader has stopped (or the upgrade failed):
// it unregisters the connection and stops the writer. Live deliveries the
// client did not ack are reported at once so their senders store them now;
// unacked inbox messages simply stay in the inbox.
func (c *conn) teardown() {
	c.mu.Lock()
	c.tornDown = true
	var unacked []*ackVerdict // in delivery order
	for _, e := range c.ackq {
		if c.pending[e.msgID] == e.p {
			unacked = append(unacked, e.p.v)
		}
	}
	c.pending, c.ackq = nil, nil
	c.queue, c.held, c.heldBytes = nil, nil, 0
	sessions := c.sessions
	for sid := range sessions {
		c.s.hub.sess.leave(c, sid)
	}
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
	c.mu.Unlock()
	c.s.pings.remove(c)
	c.cancel()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.s.hub.remove(c) {
		c.s.announcePresence(c.id.NodeID, false, sessions)
	}
	for _, v := range unacked {
		v.giveUp()
	}
	// Last: Server.Close waits for done, then for the work started above.
	close(c.done)
}

// handle processes one frame from the client, on the reader goroutine.
// Every frame but an ack spends a token of the connection's rate limit (see
// rateLimiter): an ack only releases deliveries, and refusing it would make
// a busy client's messages come back stored. A frame over the rate is
// answered rate_limited and otherwise ignored; once the client has stayed
// over the rate for the grace, the connection closes with 4008 and its
// further frames (acks aside) are dropped.
func (c *conn) handle(op gws.Opcode, data []byte) {
	var f frame
	var perr *allspark.Error
	if op != gws.OpcodeText {
		perr = allspark.Errorf(allspark.CodeBadFrame, "only text frames are accepted")
	} else {
		f, perr = decodeFrame(data, c.s.cfg.MaxJSONDepth)
	}
	if perr != nil {
		c.s.m.frameIn(0)
	} else {
		c.s.m.frameIn(f.kind)
		if f.kind == kindAck {
			c.ack(f.ackIDs) // never limited: it only releases deliveries
			// A read cursor is a KV write: it counts against the rate like
			// any other frame, or a flood of cursor acks would bypass it.
			if f.sessionID != "" && c.admitFrame(f, true) {
				c.ackSession(f.sessionID, f.afterSeq)
			}
			return
		}
	}
	if !c.admitFrame(f, perr == nil) {
		return
	}
	if perr != nil {
		c.send(encodeError(f.id, perr))
		return
	}
	switch f.kind {
	case kindPing:
		c.send(pongFrame)
	case kindSync:
		c.syncSession(f)
	case kindMessage:
		m := f.msg
		if c.refuseWhileDraining(f.id, m) {
			return
		}
		if m.DestSessionID != "" {
			c.sendToSession(f.id, m)
			return
		}
		m.SrcID, m.SrcClientID, m.SrcNode = c.id.NodeID, c.id.ClientID, c.id.NodeID
		c.s.router.Send(c.ctx, m, f.id, &c.order, c.answer)
	}
}

// admitFrame applies the rate limit to a frame that is not an ack; it
// answers a refused frame itself and reports whether to process it.
func (c *conn) admitFrame(f frame, decoded bool) bool {
	if c.rateClosing {
		return false
	}
	switch c.limiter.take(c.s.now()) {
	case allow:
		return true
	case disconnect:
		c.rateClosing = true
		c.s.log.Warn("rate limit exceeded for the grace; closing", "node", c.id.NodeID,
			"rate", c.s.cfg.RateLimit, "grace", c.s.cfg.RateLimitGrace)
		c.requestClose(allspark.CloseRateLimited, "rate limit exceeded")
		return false
	}
	e := allspark.Errorf(allspark.CodeRateLimited, "over the rate limit; slow down")
	if decoded && f.kind == kindMessage {
		c.s.router.Reject(f.msg, f.id, &c.order, e, c.answer)
	} else {
		c.send(encodeError(f.id, e))
	}
	c.pauseReader()
	return false
}

// pauseReader holds the reader for one token's time after a refused frame.
// A flood is then read at most at twice the rate (its allowed frames and
// as many refusals), however fast the client writes: the rest waits in the
// client's socket buffers, costing the edge nothing. It ends early when the
// connection does.
func (c *conn) pauseReader() {
	t := time.NewTimer(time.Duration(float64(time.Second) / float64(c.s.cfg.RateLimit)))
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
}
