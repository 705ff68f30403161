package edge

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// sessionIndex maps each session with a member connected here to those
// connections, and holds one NATS subscription per such session on its
// live subject. A session message crosses NATS once per edge, however many
// of its members that edge holds.
type sessionIndex struct {
	h      *hub
	shards [hubShards]sessionShard
}

type sessionShard struct {
	mu       sync.Mutex
	sessions map[string]*sessionEntry // guarded by mu
}

type sessionEntry struct {
	sub   *nats.Subscription
	conns map[*conn]struct{}
}

func (x *sessionIndex) init(h *hub) {
	x.h = h
	for i := range x.shards {
		x.shards[i].sessions = map[string]*sessionEntry{}
	}
}

func (x *sessionIndex) shard(sid string) *sessionShard { return &x.shards[x.h.hash(sid)%hubShards] }

func (x *sessionIndex) join(c *conn, sid string) {
	sh := x.shard(sid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.sessions[sid]
	if e == nil {
		sub, err := x.h.nc.ChanSubscribe(x.h.subj.SessionLive(sid), x.h.chans[x.h.hash(sid)%dispatchers])
		if err != nil {
			x.h.log.Warn("subscribe session", "session", sid, "err", err)
			return
		}
		_ = sub.SetPendingLimits(-1, -1)
		e = &sessionEntry{sub: sub, conns: map[*conn]struct{}{}}
		sh.sessions[sid] = e
	}
	e.conns[c] = struct{}{}
}

func (x *sessionIndex) leave(c *conn, sid string) {
	sh := x.shard(sid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.sessions[sid]
	if e == nil {
		return
	}
	delete(e.conns, c)
	if len(e.conns) == 0 {
		_ = e.sub.Unsubscribe()
		delete(sh.sessions, sid)
	}
}

func (x *sessionIndex) members(sid string) []*conn {
	sh := x.shard(sid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	e := sh.sessions[sid]
	if e == nil {
		return nil
	}
	out := make([]*conn, 0, len(e.conns))
	for c := range e.conns {
		out = append(out, c)
	}
	return out
}

// deliverSession writes a live session message or presence frame to the
// session's members here, except the node it is about (no echo).
func (x *sessionIndex) deliverSession(m *nats.Msg) {
	sid, err := bus.ParseToken(m.Subject[len(m.Subject)-tokenLen(m.Subject):])
	if err != nil {
		return
	}
	src := m.Header.Get(bus.HeaderSrcNode)
	for _, c := range x.members(sid) {
		if c.id.NodeID != src {
			c.deliver(m.Data, "", "")
		}
	}
}

// setSessions replaces c's memberships with m (session id -> member id)
// and updates the index to match. The index changes under c.mu, so a
// reload racing the connection's end cannot re-add it after stopped left.
// Lock order: c.mu, then an index shard's.
func (c *conn) setSessions(m map[string]string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	old := c.sessions
	c.sessions = m
	for sid := range m {
		if _, ok := old[sid]; !ok {
			c.s.hub.sess.join(c, sid)
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
	sess, err := c.s.sessions.Get(ctx, sid)
	switch {
	case errors.Is(err, bus.ErrSessionNotFound):
		return "", allspark.Errorf(allspark.CodeNotFound, "unknown session")
	case err != nil:
		return "", allspark.Errorf(allspark.CodeUnavailable, "cannot read the session")
	}
	m, ok := sess.Members[c.id.NodeID]
	if !ok {
		return "", allspark.Errorf(allspark.CodeNotMember, "not a member of the session")
	}
	c.s.reloadMemberships(c.id.NodeID, []*conn{c}, "") // the cache missed a join
	return m.MemberID, nil
}

// sendToSession checks membership, then routes m as the member: an
// anonymous member's frames carry its alias and no client id.
func (c *conn) sendToSession(corrID string, m *allspark.Message) {
	memberID, perr := c.memberOf(c.ctx, m.DestSessionID)
	if perr != nil {
		c.send(mustJSON(allspark.NewSent(corrID, "", allspark.StatusRejected, perr)))
		return
	}
	m.SrcID, m.SrcNode = memberID, c.id.NodeID
	if memberID != c.id.NodeID {
		m.SrcClientID = "" // anonymous: nothing that names the node or its client
	}
	c.s.router.Send(c.ctx, m, corrID, &c.order, func(s allspark.Sent) { c.send(mustJSON(s)) })
}

type sessionSyncDone struct {
	Type      string `json:"type"` // "sync_done"
	SessionID string `json:"session_id"`
	LastSeq   uint64 `json:"last_seq"`
}

const (
	defaultSyncLimit = 100
	maxSyncLimit     = 1000
)

// syncSession answers {"type":"sync"} with the session's messages after
// after_seq, then sync_done with the session's last seq.
func (c *conn) syncSession(f frame) {
	c.s.spawn(func() {
		ctx, cancel := context.WithTimeout(c.ctx, 10*time.Second)
		defer cancel()
		if _, perr := c.memberOf(ctx, f.sessionID); perr != nil {
			c.send(encodeError(f.id, perr))
			return
		}
		limit := f.limit
		if limit == 0 {
			limit = defaultSyncLimit
		}
		frames, last, err := c.s.history.Range(ctx, f.sessionID, f.afterSeq, min(limit, maxSyncLimit))
		if err != nil {
			c.s.log.Warn("read session history", "session", f.sessionID, "err", err)
			c.send(encodeError(f.id, allspark.Errorf(allspark.CodeUnavailable, "cannot read session history")))
			return
		}
		for _, b := range frames {
			if !c.sendPaced(b) {
				return
			}
		}
		c.send(mustJSON(sessionSyncDone{Type: "sync_done", SessionID: f.sessionID, LastSeq: last}))
	})
}

// ackSession records the member's read cursor.
func (c *conn) ackSession(sid string, seq uint64) {
	c.mu.Lock()
	_, member := c.sessions[sid]
	c.mu.Unlock()
	if !member {
		return
	}
	c.s.spawn(func() {
		// Not c.ctx: an ack the client sent is kept even if it disconnects now.
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := c.s.sessions.SetCursor(ctx, sid, c.id.NodeID, seq); err != nil {
			c.s.log.Warn("save session cursor", "session", sid, "err", err)
		}
	})
}

type presenceFrame struct {
	Type      string `json:"type"` // "presence"
	SessionID string `json:"session_id"`
	MemberID  string `json:"member_id"`
	Online    bool   `json:"online"`
}

// presenceTimeout bounds a presence scatter-gather.
const presenceTimeout = 500 * time.Millisecond

// holders asks every live edge and returns the ids of those holding node.
func (s *Server) holders(ctx context.Context, node string) []string {
	ctx, cancel := context.WithTimeout(ctx, presenceTimeout)
	defer cancel()
	held, err := bus.QueryPresence(ctx, s.nc, s.subj, []string{node}, len(s.registry.Live()))
	if err != nil {
		return nil
	}
	return held[node]
}

// onlineElsewhere reports whether node is connected to another edge.
func (s *Server) onlineElsewhere(ctx context.Context, node string) bool {
	for _, e := range s.holders(ctx, node) {
		if e != s.cfg.ID {
			return true
		}
	}
	return false
}

// announcePresence tells node's sessions that it came online (its first
// connection anywhere) or went offline (its last one).
func (s *Server) announcePresence(node string, online bool, sessions map[string]string) {
	if len(sessions) == 0 && !s.wantsNodeEvents() {
		return
	}
	ticket := s.nodeEventTicket(node, online) // lifecycle events keep this order
	s.spawn(func() {
		elsewhere := s.onlineElsewhere(context.Background(), node)
		s.resolveNodeEvent(ticket, !elsewhere)
		if elsewhere {
			return
		}
		for sid, member := range sessions {
			s.publishPresence(sid, node, member, online)
		}
	})
}

func (s *Server) publishPresence(sid, node, member string, online bool) {
	b, _ := json.Marshal(presenceFrame{Type: "presence", SessionID: sid, MemberID: member, Online: online})
	err := s.nc.PublishMsg(&nats.Msg{Subject: s.subj.SessionLive(sid), Data: b,
		Header: nats.Header{bus.HeaderSrcNode: []string{node}, bus.HeaderPresence: []string{"1"}}})
	if err != nil {
		s.log.Warn("publish presence", "session", sid, "err", err)
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
