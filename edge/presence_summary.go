package edge

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// Presence summaries. Per-member presence costs O(n²) frames to bring n
// members of a session online (each of the n announcements reaches the
// members already there). Past ALLSPARK_PRESENCE_MAX_MEMBERS members a
// session gets no per-member frames; its members get instead
//
//	{"type":"presence_summary","session_id":"...","online":N}
//
// at most once per ALLSPARK_PRESENCE_SUMMARY_INTERVAL and only when N
// changed (and once when they connect or join), which costs O(n) frames
// per interval whatever the churn.
//
// N is counted, not queried: each edge counts the distinct named members
// of the session it holds (the session index does, as connections join
// and leave it), publishes its count on the session's live subject when
// it changed (throttled like the frames), and keeps the latest count of
// every other edge. N is the sum. An edge no longer listed in the edge
// registry (killed: not heard from for 3 heartbeats) is forgotten; one
// that stops holding the session publishes 0 first.
//
// N is approximate: a node connected to two edges is counted on both, and
// an edge that died still counts until the registry drops it. Counting it
// once would need the edges to exchange node ids, which is the O(n)-per-
// change traffic summaries exist to avoid. Anonymous members are not
// counted (they have no presence; see presence.go), so no count changes
// when an alias connects.
//
// State is bounded: per edge, one entry per session held here that is
// large (or whose size is being read), holding one number per other edge
// counting it.

// presenceSummaryFrame is the frame members of a large session get.
type presenceSummaryFrame struct {
	Type      string `json:"type"` // "presence_summary"
	SessionID string `json:"session_id"`
	Online    int    `json:"online"`
}

// summaries counts the online members of large sessions and sends them
// their totals. One goroutine (run) does the publishing and sending; the
// session index and the NATS dispatchers only mark sessions dirty.
type summaries struct {
	s        *Server
	max      int
	interval time.Duration
	sweep    time.Duration // how often dead edges are looked for at the latest
	states   shardedMap[*sumState]
	kick     chan struct{} // capacity 1: "a session changed"
	reads    chan struct{} // slots for member count reads in flight
	// announcing counts presence announcements in flight, busy the passes
	// and size reads: tests wait until nothing is pending (settled).
	announcing atomic.Int64
	busy       atomic.Int64
	holderq    holderQueue // presence.go: batched presence queries
}

// sumState is one session's counting on this edge. Guarded by its states
// shard's mu.
type sumState struct {
	local     int            // named members online here, as the index last said
	alive     bool           // the session is in the index here
	dirty     bool           // something changed since the last pass acted
	sizing    bool           // a member count read is in flight
	known     bool           // large has been decided
	large     bool           // last known: more members than max
	pub       int            // the count this edge last published (0: none or retracted)
	hello     bool           // counting began and nothing is published yet
	republish bool           // another edge began counting: publish again
	remote    map[string]int // other edge id -> its last count (non-zero only)
	sent      int            // the total last sent to the members here; -1: none
	fresh     []*conn        // joined since the last send: get the current total
	last      time.Time      // when this edge last published or sent for the session
}

func newSummaries(s *Server) *summaries {
	p := &summaries{s: s, max: s.cfg.PresenceMaxMembers, interval: s.cfg.PresenceSummaryInterval,
		sweep: min(s.cfg.PresenceSummaryInterval, s.cfg.Heartbeat),
		kick:  make(chan struct{}, 1), reads: make(chan struct{}, s.cfg.PresenceSizeReads)}
	p.states.init()
	return p
}

func (p *summaries) wake() {
	select {
	case p.kick <- struct{}{}:
	default:
	}
}

// knownSmall reports whether sid's size is fresh in the cache and not
// large: such a session needs no counting.
func (p *summaries) knownSmall(sid string) bool {
	n, fresh, ok := p.s.sizes.get(sid, p.s.now())
	return ok && fresh && n <= p.max
}

// large reports whether sid is known to be large, without reading.
func (p *summaries) large(sid string) bool {
	if p == nil {
		return false
	}
	n, _, ok := p.s.sizes.get(sid, p.s.now())
	return ok && n > p.max
}

// joined is called by the index, under its shard lock, when c joined sid
// (named members here: before, then after).
func (p *summaries) joined(sid string, c *conn, before, after int) {
	if p != nil {
		p.touch(sid, after, true, c, before != after)
	}
}

// left is called by the index, under its shard lock, when a connection
// left sid; alive is false when it was the last one here.
func (p *summaries) left(sid string, before, after int, alive bool) {
	if p != nil && (before != after || !alive) {
		p.touch(sid, after, alive, nil, true)
	}
}

// touch records the index's news. Lock order: index shard, then states
// shard (the pass never holds a states shard while it calls the index).
func (p *summaries) touch(sid string, local int, alive bool, c *conn, changed bool) {
	keep := false
	p.states.update(sid, func(st *sumState, ok bool) (*sumState, bool) {
		if !ok {
			if !alive || p.knownSmall(sid) {
				return nil, false
			}
			st = &sumState{sent: -1, hello: true}
		}
		st.local, st.alive = local, alive
		st.dirty = st.dirty || changed || c != nil
		if c != nil {
			st.fresh = append(st.fresh, c)
		}
		keep = true
		return st, true
	})
	if keep {
		p.wake()
	}
}

// received records another edge's count for sid (a live message with
// HeaderPresenceCount).
func (p *summaries) received(sid string, m *nats.Msg) {
	if p == nil {
		return
	}
	from := m.Header.Get(bus.HeaderPresenceCount)
	n, err := strconv.Atoi(string(m.Data))
	if from == p.s.cfg.ID || err != nil || n < 0 || p.knownSmall(sid) {
		return
	}
	hello := m.Header.Get(bus.HeaderPresenceHello) != ""
	local, alive := p.s.hub.sess.named(sid) // before the states lock: see touch
	p.states.update(sid, func(st *sumState, ok bool) (*sumState, bool) {
		if !ok {
			if !alive {
				return nil, false
			}
			st = &sumState{local: local, alive: true, sent: -1, hello: true}
		}
		if n == 0 {
			delete(st.remote, from)
		} else {
			if st.remote == nil {
				st.remote = map[string]int{}
			}
			st.remote[from] = n
		}
		st.republish = st.republish || hello
		st.dirty = true
		return st, true
	})
	p.wake()
}

// run makes passes until stop closes: when woken, when a throttled session
// falls due, and every sweep to forget dead edges.
func (p *summaries) run(stop <-chan struct{}) {
	t := time.NewTimer(p.sweep)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-p.kick:
		case <-t.C:
		}
		wait := p.pass()
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(min(wait, p.sweep))
	}
}

// sumAct is what a pass does for one session once its lock is released.
type sumAct struct {
	sid     string
	publish int  // count to publish; -1: none
	hello   bool // with HeaderPresenceHello
	all     bool // send total to every member here
	to      []*conn
	total   int
	read    bool // read the session's member count
}

// pass acts on every session due and returns how long until the next
// throttled one falls due.
func (p *summaries) pass() time.Duration {
	p.busy.Add(1)
	defer p.busy.Add(-1)
	now := p.s.now()
	listed := p.s.registry.Listed()
	var sids []string
	p.states.each(func(sid string, _ *sumState) { sids = append(sids, sid) })
	wait := p.sweep
	var acts []sumAct
	for _, sid := range sids {
		p.states.update(sid, func(st *sumState, ok bool) (*sumState, bool) {
			if !ok {
				return nil, false
			}
			a, keep, due := p.decide(sid, st, now, listed)
			if due > 0 {
				wait = min(wait, due)
			}
			if a.read || a.publish >= 0 || a.all || len(a.to) > 0 {
				acts = append(acts, a)
			}
			return st, keep
		})
	}
	for _, a := range acts {
		p.act(a)
	}
	return wait
}

// decide updates st for a pass at now and says what to do. due > 0 is how
// long until st, throttled, may act.
func (p *summaries) decide(sid string, st *sumState, now time.Time, listed map[string]bool) (a sumAct, keep bool, due time.Duration) {
	a = sumAct{sid: sid, publish: -1}
	size, fresh, ok := p.s.sizes.get(sid, now)
	if ok {
		st.known, st.large = true, size > p.max
	}
	if !fresh && !st.sizing && (st.dirty || !ok) {
		select {
		case p.reads <- struct{}{}:
			st.sizing, a.read = true, true
		default: // all read slots busy: try again next pass
		}
	}
	switch {
	case !st.known:
		return a, st.alive || st.pub != 0 || st.sizing, 0
	case !st.large:
		if st.pub != 0 { // it was large here: retract our count
			a.publish, st.pub = 0, 0
		}
		return a, st.sizing, 0
	}
	for e := range st.remote {
		if !listed[e] {
			delete(st.remote, e)
			st.dirty = true
		}
	}
	if !st.alive {
		st.local = 0
	}
	wait := st.last.Add(p.interval).Sub(now)
	if st.dirty && wait <= 0 {
		st.dirty, st.last = false, now
		if st.local != st.pub || st.republish || (st.hello && st.alive) {
			a.publish, a.hello = st.local, st.hello
			st.pub, st.hello, st.republish = st.local, false, false
		}
		if !st.alive {
			return a, st.sizing, 0
		}
		total := st.local
		for _, n := range st.remote {
			total += n
		}
		if total != st.sent {
			a.all, a.total, st.sent, st.fresh = true, total, total, nil
		}
	}
	if len(st.fresh) > 0 && st.sent >= 0 { // new members get the total at once
		a.to, a.total, st.fresh = st.fresh, st.sent, nil
	}
	if st.dirty {
		return a, true, max(wait, time.Millisecond)
	}
	return a, true, 0
}

func (p *summaries) act(a sumAct) {
	if a.read {
		p.busy.Add(1)
		p.s.spawn(func() {
			defer p.busy.Add(-1)
			defer func() { <-p.reads }()
			_, err := p.s.sessionSize(context.Background(), a.sid)
			if err != nil {
				// Not dirty: the next sweep reads again, not a busy loop.
				p.s.log.Warn("read session size", "session", a.sid, "err", err)
			}
			p.states.update(a.sid, func(st *sumState, ok bool) (*sumState, bool) {
				if ok {
					st.sizing, st.dirty = false, st.dirty || err == nil
				}
				return st, ok
			})
			p.wake()
		})
	}
	if a.publish >= 0 {
		h := nats.Header{bus.HeaderPresenceCount: []string{p.s.cfg.ID}}
		if a.hello {
			h.Set(bus.HeaderPresenceHello, "1")
		}
		err := p.s.nc.PublishMsg(&nats.Msg{Subject: p.s.subj.SessionLive(a.sid), Data: strconv.AppendInt(nil, int64(a.publish), 10), Header: h})
		if err != nil {
			p.s.log.Warn("publish presence count", "session", a.sid, "err", err)
		}
	}
	if !a.all && len(a.to) == 0 {
		return
	}
	b, _ := json.Marshal(presenceSummaryFrame{Type: "presence_summary", SessionID: a.sid, Online: a.total})
	to := a.to
	if a.all {
		to = p.s.hub.sess.members(a.sid)
	}
	for _, c := range to {
		c.deliver(b, "", nil)
	}
}

// settled reports whether no presence work is pending: no announcement,
// pass or read in flight, and no session due to act (one throttled until
// later is not pending now).
func (p *summaries) settled() bool {
	if p.announcing.Load() != 0 || p.busy.Load() != 0 || len(p.kick) != 0 {
		return false
	}
	now := p.s.now()
	idle := true
	p.states.each(func(_ string, st *sumState) {
		if st.sizing || len(st.fresh) > 0 && st.sent >= 0 || st.dirty && !now.Before(st.last.Add(p.interval)) {
			idle = false
		}
	})
	return idle
}

// Presence limits (0 means the default).
const (
	defaultPresenceMaxMembers = 100
	defaultSummaryInterval    = time.Second
	defaultPresenceSizeTTL    = 30 * time.Second
	defaultPresenceSizeCache  = 10_000
	defaultPresenceSizeReads  = 16
)

func (c Config) presenceDefaults() Config {
	if c.PresenceMaxMembers == 0 {
		c.PresenceMaxMembers = defaultPresenceMaxMembers
	}
	if c.PresenceSummaryInterval == 0 {
		c.PresenceSummaryInterval = defaultSummaryInterval
	}
	if c.PresenceSizeTTL == 0 {
		c.PresenceSizeTTL = defaultPresenceSizeTTL
	}
	if c.PresenceSizeCache == 0 {
		c.PresenceSizeCache = defaultPresenceSizeCache
	}
	if c.PresenceSizeReads == 0 {
		c.PresenceSizeReads = defaultPresenceSizeReads
	}
	return c
}

func (c Config) presenceErrors() []error {
	var errs []error
	if c.PresenceMaxMembers < 0 || c.PresenceMaxMembers > 100_000 {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_MAX_MEMBERS: must be 0 (default) to 100000, got %d", c.PresenceMaxMembers))
	}
	if c.PresenceSummaryInterval < 0 || (c.PresenceSummaryInterval > 0 && c.PresenceSummaryInterval < 10*time.Millisecond) {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_SUMMARY_INTERVAL: must be 0 (default) or at least 10ms, got %s", c.PresenceSummaryInterval))
	}
	if c.PresenceSizeTTL < 0 {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_SIZE_TTL: must be 0 (default) or positive, got %s", c.PresenceSizeTTL))
	}
	if c.PresenceSizeCache < 0 || c.PresenceSizeCache > 10_000_000 {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_SIZE_CACHE: must be 0 (default) to 10000000, got %d", c.PresenceSizeCache))
	}
	if c.PresenceSizeReads < 0 || c.PresenceSizeReads > 10_000 {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_SIZE_READS: must be 0 (default) to 10000, got %d", c.PresenceSizeReads))
	}
	return errs
}
