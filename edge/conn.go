package edge

import (
	"context"
	"encoding/binary"
	"sync"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
	"github.com/lxzan/gws"
)

const (
	// pingEvery is how often an idle connection is pinged, and readTimeout
	// how long the edge waits for any frame before it gives up on the peer.
	pingEvery   = 25 * time.Second
	readTimeout = 2*pingEvery + 10*time.Second
)

// conn is one websocket connection. Its reader is gws's ReadLoop, which
// calls handle for each frame; its writer is writeLoop. Either stopping
// closes the socket, which stops the other.
type conn struct {
	s       *Server
	id      auth.Identity
	ctx     context.Context // ends when the connection does
	cancel  context.CancelFunc
	wake    chan struct{} // capacity 1: "the queue or closeCode changed"
	drained chan struct{} // capacity 1: "the writer emptied the queue"
	done    chan struct{} // closed when the reader has stopped
	expiry  *time.Timer   // closes with 4001 when the auth_key expires; nil if none

	order bus.OutcomeOrder // keeps this sender's outcomes in send order

	mu          sync.Mutex
	ws          *gws.Conn              // guarded by mu: nil until the handshake completes
	queue       [][]byte               // guarded by mu
	queued      int                    // guarded by mu: bytes in queue
	closeCode   int                    // guarded by mu: non-zero once a close is requested
	closeReason string                 // guarded by mu
	closed      bool                   // guarded by mu: the reader has stopped
	pending     map[string]*pendingAck // guarded by mu: live deliveries awaiting the client's ack
	ackq        []ackDeadline          // guarded by mu: pending acks in delivery order (same timeout, so deadline order)
	ackTimer    *time.Timer            // guarded by mu: fires at ackq's head deadline; nil until first use
	ackArmed    bool                   // guarded by mu

	// Inbox state; see inbox.go.
	replaying bool                // guarded by mu: the first inbox pass has not finished
	held      []heldMsg           // guarded by mu: live deliveries held while replaying
	replayed  map[string]struct{} // guarded by mu: msg_ids the first pass delivered
	syncing   bool                // guarded by mu: an inbox pass is running
	syncAgain bool                // guarded by mu: run another pass after this one
	inboxNext uint64              // guarded by mu: next inbox sequence to read
	inboxAcks map[string]uint64   // guarded by mu: msg_id -> inbox sequence, until acked

	sessions map[string]string // guarded by mu: session id -> this node's member id there
}

type heldMsg struct {
	frame []byte
	msgID string
}

// pendingAck is a delivery from another edge waiting for this client's ack;
// reply is where the verdict goes.
type pendingAck struct {
	reply string
	at    time.Time // deadline
}

type ackDeadline struct {
	msgID string
	p     *pendingAck
}

func newConn(s *Server, id auth.Identity) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, id: id, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), drained: make(chan struct{}, 1), done: make(chan struct{}),
		pending: map[string]*pendingAck{}, replaying: true, replayed: map[string]struct{}{}, inboxAcks: map[string]uint64{}}
}

// attach binds the upgraded socket. Deliveries queued before it wait for
// the writer, which starts after this.
func (c *conn) attach(ws *gws.Conn) {
	c.mu.Lock()
	c.ws = ws
	c.mu.Unlock()
}

// cut closes the socket without a close frame. Before the handshake it
// only marks the connection closed.
func (c *conn) cut() {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		_ = ws.NetConn().Close()
	}
}

func (c *conn) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// send queues a frame for the writer. A client whose queue would exceed
// SendQueueBytes is disconnected with 4009 rather than allowed to hold
// memory or slow down anyone else. It reports whether the frame was queued.
func (c *conn) send(b []byte) bool {
	c.mu.Lock()
	if c.closed || c.closeCode != 0 {
		c.mu.Unlock()
		return false
	}
	if c.queued+len(b) > c.s.cfg.SendQueueBytes {
		c.closeCode, c.closeReason = allspark.CloseSlowConsumer, "slow consumer"
		c.mu.Unlock()
		c.s.slowConsumers.Add(1)
		c.s.m.slow.Inc()
		c.s.log.Warn("slow consumer disconnected", "node", c.id.NodeID)
		c.signal()
		return false
	}
	c.queueLocked(b)
	c.mu.Unlock()
	c.signal()
	return true
}

// queueLocked appends b to the queue. Called with c.mu held.
func (c *conn) queueLocked(b []byte) {
	c.queue = append(c.queue, b)
	c.queued += len(b)
}

// closeAfter queues frame as the last one and asks for a close with code:
// nothing is queued after it, so a delivery racing the close is refused
// (and its sender stores it) instead of landing between the two.
func (c *conn) closeAfter(frame []byte, code int, reason string) {
	c.mu.Lock()
	if !c.closed && c.closeCode == 0 {
		c.queueLocked(frame)
		c.closeCode, c.closeReason = code, reason
	}
	c.mu.Unlock()
	c.signal()
}

// close asks the writer to flush what is queued and close with code.
func (c *conn) close(code int, reason string) {
	c.mu.Lock()
	if c.closeCode == 0 {
		c.closeCode, c.closeReason = code, reason
	}
	c.mu.Unlock()
	c.signal()
}

// writeLoop is the connection's only writer of data frames. It drains the
// whole queue on each wake-up so a burst costs one lock round.
func (c *conn) writeLoop() {
	c.mu.Lock()
	ws := c.ws
	c.mu.Unlock()
	ping := time.NewTimer(pingEvery)
	defer ping.Stop()
	var batch [][]byte
	for {
		select {
		case <-c.done:
			return
		case <-ping.C:
			_ = ws.SetWriteDeadline(c.s.now().Add(c.s.cfg.WriteTimeout))
			if err := ws.WritePing(nil); err != nil {
				_ = ws.NetConn().Close()
				return
			}
			ping.Reset(pingEvery)
			continue
		case <-c.wake:
		}
		c.mu.Lock()
		batch, c.queue = c.queue, batch[:0]
		c.queued = 0
		code, reason := c.closeCode, c.closeReason
		c.mu.Unlock()

		_ = ws.SetWriteDeadline(c.s.now().Add(c.s.cfg.WriteTimeout))
		if code != allspark.CloseSlowConsumer && len(batch) > 0 { // a slow consumer would not read them anyway
			bc, batched := ws.NetConn().(*batchConn)
			if batched {
				bc.begin()
			}
			for i, b := range batch {
				if err := ws.WriteMessage(gws.OpcodeText, b); err != nil {
					_ = ws.NetConn().Close()
					return
				}
				batch[i] = nil
			}
			if batched {
				if err := bc.flush(); err != nil {
					_ = ws.NetConn().Close()
					return
				}
			}
		}
		clear(batch)
		select {
		case c.drained <- struct{}{}:
		default:
		}
		if code != 0 {
			c.closeHandshake(ws, code, reason)
			return
		}
		ping.Reset(pingEvery)
	}
}

// closeLinger bounds how long a closing connection waits for the peer's
// close frame.
const closeLinger = 2 * time.Second

// closeHandshake sends a close frame and half-closes the socket, leaving
// the reader to finish the RFC 6455 handshake: it ends when the client
// answers with its close frame or after closeLinger. Closing the socket at
// once (as gws's WriteClose does) makes the kernel answer with a reset
// when unread client bytes (acks, say) are pending, and the client can
// then lose the close frame, and with it the code.
func (c *conn) closeHandshake(ws *gws.Conn, code int, reason string) {
	payload := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(payload, uint16(code))
	payload = append(payload, reason...)
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
// the client's ack. It reports whether the connection took it.
func (c *conn) deliver(frame []byte, msgID, reply string) bool {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false
	}
	if reply != "" && msgID != "" {
		if _, dup := c.pending[msgID]; !dup {
			p := &pendingAck{reply: reply, at: c.s.now().Add(c.s.cfg.AckTimeout)}
			c.pending[msgID] = p
			c.ackq = append(c.ackq, ackDeadline{msgID: msgID, p: p})
			c.armAckTimerLocked()
		}
	}
	if c.replaying {
		c.held = append(c.held, heldMsg{frame: frame, msgID: msgID})
		c.mu.Unlock()
		return true
	}
	c.mu.Unlock()
	c.s.m.delivered(msgID)
	return c.send(frame)
}

// ack settles the client's acknowledgements.
func (c *conn) ack(ids []string) {
	var replies []string
	var seqs []uint64
	c.mu.Lock()
	now := c.s.now()
	for _, id := range ids {
		if p := c.pending[id]; p != nil {
			delete(c.pending, id)
			replies = append(replies, p.reply)
			c.s.m.ackLatency.Observe(now.Sub(p.at.Add(-c.s.cfg.AckTimeout)).Seconds())
		}
		if seq, ok := c.inboxAcks[id]; ok {
			delete(c.inboxAcks, id)
			seqs = append(seqs, seq)
		}
	}
	c.mu.Unlock()
	for _, r := range replies {
		c.s.reply(r, bus.ReplyAcked)
	}
	for _, seq := range seqs {
		c.s.removeAcked(seq)
	}
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
	var replies []string
	c.mu.Lock()
	c.ackArmed = false
	for len(c.ackq) > 0 && !c.ackq[0].p.at.After(now) {
		e := c.ackq[0]
		c.ackq[0] = ackDeadline{}
		c.ackq = c.ackq[1:]
		if c.pending[e.msgID] == e.p {
			delete(c.pending, e.msgID)
			replies = append(replies, e.p.reply)
		}
	}
	if !c.closed {
		c.armAckTimerLocked()
	}
	c.mu.Unlock()
	for _, r := range replies {
		c.s.reply(r, bus.ReplyNotAcked)
	}
}

// stopped runs once, when the reader has stopped. Live deliveries the
// client did not ack are reported at once so their senders store them now;
// unacked inbox messages simply stay in the inbox.
func (c *conn) stopped() {
	c.mu.Lock()
	c.closed = true
	var unacked []string // reply subjects, in delivery order
	for _, e := range c.ackq {
		if c.pending[e.msgID] == e.p {
			unacked = append(unacked, e.p.reply)
		}
	}
	c.pending, c.ackq = nil, nil
	c.queue, c.held = nil, nil
	sessions := c.sessions
	for sid := range sessions {
		c.s.hub.sess.leave(c, sid)
	}
	if c.ackTimer != nil {
		c.ackTimer.Stop()
	}
	c.mu.Unlock()
	c.cancel()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.s.hub.remove(c) {
		c.s.announcePresence(c.id.NodeID, false, sessions)
	}
	for _, r := range unacked {
		c.s.reply(r, bus.ReplyNotAcked)
	}
	// Last: Server.Close waits for done, then for the work started above.
	close(c.done)
}

// handle processes one frame from the client, on the reader goroutine.
func (c *conn) handle(op gws.Opcode, data []byte) {
	if op != gws.OpcodeText {
		c.s.m.frameIn(0)
		c.send(encodeError("", allspark.Errorf(allspark.CodeBadFrame, "only text frames are accepted")))
		return
	}
	f, perr := decodeFrame(data)
	if perr != nil {
		c.s.m.frameIn(0)
		c.send(encodeError(f.id, perr))
		return
	}
	c.s.m.frameIn(f.kind)
	switch f.kind {
	case kindPing:
		c.send(pongFrame)
	case kindAck:
		c.ack(f.ackIDs)
		if f.sessionID != "" {
			c.ackSession(f.sessionID, f.afterSeq)
		}
	case kindSync:
		c.syncSession(f)
	case kindMessage:
		m := f.msg
		if m.DestSessionID != "" {
			c.sendToSession(f.id, m)
			return
		}
		m.SrcID, m.SrcClientID, m.SrcNode = c.id.NodeID, c.id.ClientID, c.id.NodeID
		c.s.router.Send(c.ctx, m, f.id, &c.order, func(s allspark.Sent) { c.send(mustJSON(s)) })
	}
}
