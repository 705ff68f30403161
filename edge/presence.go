package edge

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// Presence: a node's first connection anywhere announces it online in each
// of its sessions, its last one offline. Edges do not keep a presence
// table; they ask each other (bus.QueryPresence) whether a node is held
// elsewhere before announcing.
//
// Anonymous members have no presence at all. A node's connection changes
// every session it is in at the same instant, so presence for an alias
// would arrive back to back with the node's presence under its own name
// (or its other aliases) elsewhere, and anyone in both sessions could link
// them. Jitter would only blur that: over a few connects the events still
// pair up. So no frame, and no "online" in GET, ever names an alias.
//
// A session with more members than ALLSPARK_PRESENCE_MAX_MEMBERS gets no
// per-member frames at all, only counts (presence_summary.go).

type presenceFrame struct {
	Type      string `json:"type"` // "presence"
	SessionID string `json:"session_id"`
	MemberID  string `json:"member_id"`
	Online    bool   `json:"online"`
}

// presenceTimeout bounds a presence scatter-gather.
const presenceTimeout = 500 * time.Millisecond

// holders asks every edge and returns the ids of those holding node.
// Asks are batched: one scatter-gather at a time per edge, each carrying
// every node asked since the previous one (up to
// ALLSPARK_PRESENCE_MAX_NODES), so a reconnect storm costs a query per
// batch, not per connection; an edge asked while idle queries at once.
// The caller whose ask finds no query running runs them until none is
// left.
func (s *Server) holders(ctx context.Context, node string) []string {
	ask := &holderAsk{node: node, ans: make(chan []string, 1)}
	q := &s.pres.holderq
	q.mu.Lock()
	q.pending = append(q.pending, ask)
	run := !q.running
	q.running = true
	q.mu.Unlock()
	if run {
		s.queryHolders()
	}
	select {
	case h := <-ask.ans:
		return h
	case <-ctx.Done():
		return nil
	}
}

// holderQueue is the asks waiting for the next presence query.
type holderQueue struct {
	mu      sync.Mutex
	pending []*holderAsk // guarded by mu
	running bool         // guarded by mu: some caller is running queries
}

type holderAsk struct {
	node string
	ans  chan []string // capacity 1
}

// queryHolders answers the pending asks, a batch per scatter-gather, until
// there are none.
func (s *Server) queryHolders() {
	q := &s.pres.holderq
	for {
		q.mu.Lock()
		n := min(len(q.pending), s.cfg.PresenceMaxNodes)
		if n == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		batch := slices.Clone(q.pending[:n])
		q.pending = slices.Delete(q.pending, 0, n)
		q.mu.Unlock()
		nodes := make([]string, 0, len(batch))
		seen := make(map[string]bool, len(batch))
		for _, a := range batch {
			if !seen[a.node] {
				seen[a.node] = true
				nodes = append(nodes, a.node)
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), presenceTimeout)
		// Every listed edge answers, full (announced draining) ones too.
		held, _ := bus.QueryPresence(ctx, s.nc, s.subj, nodes, len(s.registry.Listed()))
		cancel()
		for _, a := range batch {
			a.ans <- held[a.node]
		}
	}
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

// anonymous reports whether member, node's member id in a session, is an
// alias.
func anonymous(node, member string) bool { return member != node }

// announcePresence tells node's sessions that it came online (its first
// connection anywhere) or went offline (its last one); sessions where it
// is anonymous are not told.
func (s *Server) announcePresence(node string, online bool, sessions map[string]string) {
	named := 0
	for _, member := range sessions {
		if !anonymous(node, member) {
			named++
		}
	}
	if named == 0 && !s.wantsNodeEvents() {
		return
	}
	ticket := s.nodeEventTicket(node, online) // lifecycle events keep this order
	s.pres.announcing.Add(1)                  // (stays up if spawn refuses: the server is closing)
	s.spawn(func() {
		defer s.pres.announcing.Add(-1)
		elsewhere := s.onlineElsewhere(context.Background(), node)
		s.resolveNodeEvent(ticket, !elsewhere)
		if elsewhere {
			return
		}
		// In session id order: a stable order costs a sort and makes
		// announcements the same on every run.
		sids := make([]string, 0, len(sessions))
		for sid, member := range sessions {
			if !anonymous(node, member) {
				sids = append(sids, sid)
			}
		}
		slices.Sort(sids)
		for _, sid := range sids {
			s.publishPresence(sid, node, sessions[sid], online)
		}
	})
}

// publishPresence announces member of sid, unless sid is large: its
// members get counts instead (presence_summary.go).
func (s *Server) publishPresence(sid, node, member string, online bool) {
	if s.largeSession(context.Background(), sid) {
		return
	}
	b, _ := json.Marshal(presenceFrame{Type: "presence", SessionID: sid, MemberID: member, Online: online})
	err := s.nc.PublishMsg(&nats.Msg{Subject: s.subj.SessionLive(sid), Data: b,
		Header: nats.Header{bus.HeaderSrcNode: []string{node}, bus.HeaderPresence: []string{"1"}}})
	if err != nil {
		s.log.Warn("publish presence", "session", sid, "err", err)
	}
}
