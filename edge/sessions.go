package edge

import (
	"context"
	"errors"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// setSessions replaces c's memberships with m (session id -> member id)
// and updates the index to match. The index changes under c.mu, so a
// reload racing the connection's end cannot re-add it after teardown left.
// Lock order: c.mu, then an index shard's.
func (c *conn) setSessions(m map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tornDown {
		return
	}
	old := c.sessions
	c.sessions = m
	for sid, member := range m {
		if was, ok := old[sid]; !ok || was != member {
			c.s.hub.sess.join(c, sid, member)
		}
	}
	for sid := range old {
		if _, ok := m[sid]; !ok {
			c.s.hub.sess.leave(c, sid)
		}
	}
}

// reloadMemberships reads node's memberships again for its connections
// here, then answers reply (if any) so the caller knows the change is in
// effect on this edge.
func (s *Server) reloadMemberships(node string, conns []*conn, reply string) {
	s.spawn(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		m, err := s.sessions.NodeSessions(ctx, node)
		if err != nil {
			s.log.Warn("reload memberships", "node", node, "err", err)
			return
		}
		for _, c := range conns {
			c.setSessions(m)
		}
		if reply != "" {
			s.reply(reply, bus.ReplyAcked)
		}
	})
}

// memberOf returns c's member id in sid. The cache is checked first; a miss
// asks the session store, which also tells an unknown session from a
// session c is not in.
func (c *conn) memberOf(ctx context.Context, sid string) (string, *allspark.Error) {
	c.mu.Lock()
	id, ok := c.sessions[sid]
	c.mu.Unlock()
	if ok {
		return id, nil
	}
	m, err := c.s.sessions.Member(ctx, sid, c.id.NodeID) // one read of c's member key
	switch {
	case errors.Is(err, bus.ErrSessionNotFound):
		return "", allspark.Errorf(allspark.CodeNotFound, "unknown session")
	case errors.Is(err, bus.ErrNotMember):
		return "", allspark.Errorf(allspark.CodeNotMember, "not a member of the session")
	case err != nil:
		return "", allspark.Errorf(allspark.CodeUnavailable, "cannot read the session")
	}
	c.s.reloadMemberships(c.id.NodeID, []*conn{c}, "") // the cache missed a join
	return m.MemberID, nil
}

// sendToSession checks membership, then routes m as the member: an
// anonymous member's frames carry its alias and no client id.
func (c *conn) sendToSession(corrID string, m *allspark.Message) {
	memberID, perr := c.memberOf(c.ctx, m.DestSessionID)
	if perr != nil {
		c.s.router.Reject(m, corrID, &c.order, perr, c.answer)
		return
	}
	m.SrcID, m.SrcNode = memberID, c.id.NodeID
	if memberID != c.id.NodeID {
		m.SrcClientID = "" // anonymous: nothing that names the node or its client
	}
	c.s.router.Send(c.ctx, m, corrID, &c.order, c.answer)
}

type sessionSyncDone struct {
	Type      string `json:"type"` // "sync_done"
	SessionID string `json:"session_id"`
	LastSeq   uint64 `json:"last_seq"`
}

const (
	defaultSyncLimit = 100
	// syncPageMsgs bounds one history page; SendQueueBytes/2 bounds its
	// bytes. A page is all a sync holds in memory besides the send queue.
	syncPageMsgs = 64
	// syncReadTimeout bounds one page read.
	syncReadTimeout = 5 * time.Second
)

// syncSession answers {"type":"sync"} with the session's messages after
// after_seq, then sync_done with the session's last seq. One sync runs per
// connection: another one meanwhile is answered error busy, so a client
// cannot make the edge load the same history many times over. The sync
// streams page by page at the client's pace (sendPaced): the edge holds
// one page and half a send queue, whatever the limit.
func (c *conn) syncSession(f frame) {
	c.mu.Lock()
	if c.sessSync {
		c.mu.Unlock()
		c.send(encodeError(f.id, allspark.Errorf(allspark.CodeBusy, "a sync is already running on this connection; send the next after its sync_done")))
		return
	}
	c.sessSync = true
	c.mu.Unlock()
	c.s.spawn(func() {
		end := c.streamSync(f)
		// The flag goes before the frame that ends the sync: a client that
		// sends its next sync as soon as it reads sync_done must not be
		// told busy.
		c.mu.Lock()
		c.sessSync = false
		c.mu.Unlock()
		if end != nil {
			c.send(end)
		}
	})
}

// streamSync runs one sync (see syncSession) and returns the frame that
// ends it, sync_done or an error, or nil if the connection ended.
func (c *conn) streamSync(f frame) []byte {
	ctx, cancel := context.WithTimeout(c.ctx, syncReadTimeout)
	_, perr := c.memberOf(ctx, f.sessionID)
	cancel()
	if perr != nil {
		return encodeError(f.id, perr)
	}
	left := f.limit
	if left == 0 {
		left = defaultSyncLimit
	}
	left = min(left, c.s.cfg.SyncMaxLimit)
	after := f.afterSeq
	for left > 0 {
		ctx, cancel := context.WithTimeout(c.ctx, syncReadTimeout)
		page, end, err := c.s.history.Range(ctx, f.sessionID, after, min(left, syncPageMsgs), c.s.cfg.SendQueueBytes/2)
		cancel()
		if err != nil {
			return c.syncFailed(f, err)
		}
		for _, m := range page {
			if !c.sendPaced(m.Frame) {
				return nil
			}
			after = m.Seq
		}
		left -= len(page)
		if end {
			break
		}
	}
	ctx, cancel = context.WithTimeout(c.ctx, syncReadTimeout)
	last, err := c.s.history.LastSeq(ctx, f.sessionID)
	cancel()
	if err != nil {
		return c.syncFailed(f, err)
	}
	return mustJSON(sessionSyncDone{Type: "sync_done", SessionID: f.sessionID, LastSeq: last})
}

// syncFailed is the error that ends a sync whose history read failed.
func (c *conn) syncFailed(f frame, err error) []byte {
	if c.ctx.Err() != nil {
		return nil // the connection ended; nobody to tell
	}
	c.s.log.Warn("read session history", "session", f.sessionID, "err", err)
	return encodeError(f.id, allspark.Errorf(allspark.CodeUnavailable, "cannot read session history"))
}

// cursorWrite is a session read-cursor write in flight for one
// connection; seq is the cursor to write next, and dirty says an ack came
// in since the write in flight read it.
type cursorWrite struct {
	seq   uint64 // guarded by the conn's mu
	dirty bool   // guarded by the conn's mu
}

// ackSession records the member's read cursor. At most one write per
// connection and session is in flight: acks that arrive meanwhile only
// replace the seq to write, and the latest one is written when the write in
// flight returns. So a client acking every message costs the KV store one
// write per round trip, not one goroutine and one write per ack.
func (c *conn) ackSession(sid string, seq uint64) {
	c.mu.Lock()
	_, member := c.sessions[sid]
	if !member || c.tornDown {
		c.mu.Unlock()
		return
	}
	if w := c.cursors[sid]; w != nil {
		w.seq, w.dirty = seq, true
		c.mu.Unlock()
		return
	}
	if c.cursors == nil {
		c.cursors = map[string]*cursorWrite{}
	}
	w := &cursorWrite{seq: seq}
	c.cursors[sid] = w
	c.mu.Unlock()
	c.s.spawn(func() { c.writeCursor(sid, w) })
}

// writeCursor writes w's seq until no newer ack is waiting.
func (c *conn) writeCursor(sid string, w *cursorWrite) {
	c.mu.Lock()
	for {
		seq := w.seq
		w.dirty = false
		c.mu.Unlock()
		// Not c.ctx: an ack the client sent is kept even if it disconnects now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := c.s.sessions.SetCursor(ctx, sid, c.id.NodeID, seq); err != nil {
			c.s.log.Warn("save session cursor", "session", sid, "err", err)
		}
		cancel()
		c.mu.Lock()
		if !w.dirty {
			delete(c.cursors, sid)
			c.mu.Unlock()
			return
		}
	}
}

// nudgeMembership tells the edges holding node to reload its sessions and
// waits for one of them to confirm, so a join or unjoin is in effect when
// its HTTP call returns. With no edge holding the node, NATS answers "no
// responders" at once.
func (s *Server) nudgeMembership(ctx context.Context, node string) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := s.nc.RequestMsgWithContext(ctx, &nats.Msg{Subject: s.subj.Node(node), Header: nats.Header{bus.HeaderMembership: []string{"1"}}})
	if err != nil && !errors.Is(err, nats.ErrNoResponders) {
		s.log.Warn("nudge membership", "node", node, "err", err)
	}
}
