package edge

import (
	"context"
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
	s      *Server
	id     auth.Identity
	ctx    context.Context // ends when the connection does
	cancel context.CancelFunc
	wake   chan struct{} // capacity 1: "the queue or closeCode changed"
	done   chan struct{} // closed when the reader has stopped
	expiry *time.Timer   // closes with 4001 when the auth_key expires; nil if none

	mu          sync.Mutex
	ws          *gws.Conn              // guarded by mu: nil until the handshake completes
	queue       [][]byte               // guarded by mu
	queued      int                    // guarded by mu: bytes in queue
	closeCode   int                    // guarded by mu: non-zero once a close is requested
	closeReason string                 // guarded by mu
	closed      bool                   // guarded by mu: the reader has stopped
	pending     map[string]*pendingAck // guarded by mu: live deliveries awaiting the client's ack
}

// pendingAck is a delivery from another edge waiting for this client's ack;
// reply is where the verdict goes.
type pendingAck struct {
	reply string
	timer *time.Timer
}

func newConn(s *Server, id auth.Identity) *conn {
	ctx, cancel := context.WithCancel(context.Background())
	return &conn{s: s, id: id, ctx: ctx, cancel: cancel,
		wake: make(chan struct{}, 1), done: make(chan struct{}), pending: map[string]*pendingAck{}}
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
		c.s.log.Warn("slow consumer disconnected", "node", c.id.NodeID)
		c.signal()
		return false
	}
	c.queue = append(c.queue, b)
	c.queued += len(b)
	c.mu.Unlock()
	c.signal()
	return true
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
		if code != allspark.CloseSlowConsumer { // a slow consumer would not read them anyway
			for i, b := range batch {
				if err := ws.WriteMessage(gws.OpcodeText, b); err != nil {
					_ = ws.NetConn().Close()
					return
				}
				batch[i] = nil
			}
		}
		clear(batch)
		if code != 0 {
			_ = ws.WriteClose(uint16(code), []byte(reason))
			return
		}
		ping.Reset(pingEvery)
	}
}

// deliver queues a message from another edge and remembers where to send
// the client's ack. It reports whether the connection took it.
func (c *conn) deliver(frame []byte, msgID, reply string) bool {
	if reply != "" && msgID != "" {
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			return false
		}
		if _, dup := c.pending[msgID]; !dup {
			p := &pendingAck{reply: reply}
			p.timer = time.AfterFunc(c.s.cfg.AckTimeout, func() { c.expireAck(msgID, p) })
			c.pending[msgID] = p
		}
		c.mu.Unlock()
	}
	return c.send(frame)
}

// ack settles the client's acknowledgements.
func (c *conn) ack(ids []string) {
	var replies []string
	c.mu.Lock()
	for _, id := range ids {
		if p := c.pending[id]; p != nil {
			delete(c.pending, id)
			p.timer.Stop()
			replies = append(replies, p.reply)
		}
	}
	c.mu.Unlock()
	for _, r := range replies {
		c.s.reply(r, bus.ReplyAcked)
	}
}

func (c *conn) expireAck(msgID string, p *pendingAck) {
	c.mu.Lock()
	if c.pending[msgID] != p {
		c.mu.Unlock()
		return
	}
	delete(c.pending, msgID)
	c.mu.Unlock()
	c.s.reply(p.reply, bus.ReplyNotAcked)
}

// stopped runs once, when the reader has stopped. Deliveries the client
// did not ack are reported at once so their senders store them now.
func (c *conn) stopped() {
	c.mu.Lock()
	c.closed = true
	pending := c.pending
	c.pending = nil
	c.queue = nil
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.s.hub.remove(c)
	for _, p := range pending {
		p.timer.Stop()
		c.s.reply(p.reply, bus.ReplyNotAcked)
	}
}

// handle processes one frame from the client, on the reader goroutine.
func (c *conn) handle(op gws.Opcode, data []byte) {
	if op != gws.OpcodeText {
		c.send(encodeError("", allspark.Errorf(allspark.CodeBadFrame, "only text frames are accepted")))
		return
	}
	f, perr := decodeFrame(data)
	if perr != nil {
		c.send(encodeError(f.id, perr))
		return
	}
	switch f.kind {
	case kindPing:
		c.send(pongFrame)
	case kindAck:
		c.ack(f.ackIDs)
	case kindSync:
		c.send(encodeError(f.id, allspark.Errorf(allspark.CodeNotFound, "sessions are not enabled on this edge")))
	case kindMessage:
		m := f.msg
		m.SrcID, m.SrcClientID = c.id.NodeID, c.id.ClientID
		c.s.router.Send(c.ctx, m, f.id, func(s allspark.Sent) { c.send(mustJSON(s)) })
	}
}
