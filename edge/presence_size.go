package edge

import (
	"context"
	"fmt"
	"hash/maphash"
	"sync"
	"time"
)

// Whether a session is large (more members than
// ALLSPARK_PRESENCE_MAX_MEMBERS, so it gets presence summaries instead of
// per-member frames) is decided on its member count, read from the session
// store and remembered per edge for ALLSPARK_PRESENCE_SIZE_TTL: a node in
// 1,000 sessions does not cost 1,000 reads on each connect, only on the
// first one in a TTL. A count older than the TTL is still used while it is
// read again (stale beats nothing: a read that fails keeps the old answer).
// So a session crossing the threshold changes mode on an edge within a TTL
// of its crossing, not at once.

// sizeCache remembers member counts by session id, at most
// ALLSPARK_PRESENCE_SIZE_CACHE of them (evicting expired entries first,
// else any), in shards like the hub's maps.
type sizeCache struct {
	ttl      time.Duration
	perShard int
	seed     maphash.Seed
	shards   [mapShards]sizeShard
}

type sizeShard struct {
	mu sync.Mutex
	m  map[string]sizeEntry // guarded by mu
}

type sizeEntry struct {
	size int
	at   time.Time
}

func newSizeCache(ttl time.Duration, entries int) *sizeCache {
	c := &sizeCache{ttl: ttl, perShard: max(1, (entries+mapShards-1)/mapShards), seed: maphash.MakeSeed()}
	for i := range c.shards {
		c.shards[i].m = map[string]sizeEntry{}
	}
	return c
}

func (c *sizeCache) shard(sid string) *sizeShard {
	return &c.shards[maphash.String(c.seed, sid)%mapShards]
}

// get returns sid's remembered member count; fresh is false once it is
// older than the TTL, ok false if there is none.
func (c *sizeCache) get(sid string, now time.Time) (size int, fresh, ok bool) {
	sh := c.shard(sid)
	sh.mu.Lock()
	e, ok := sh.m[sid]
	sh.mu.Unlock()
	return e.size, ok && now.Sub(e.at) < c.ttl, ok
}

func (c *sizeCache) put(sid string, size int, now time.Time) {
	sh := c.shard(sid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.m[sid]; !ok && len(sh.m) >= c.perShard {
		victim := ""
		for k, e := range sh.m { // random order: any entry will do if none expired
			victim = k
			if now.Sub(e.at) >= c.ttl {
				break
			}
		}
		delete(sh.m, victim)
	}
	sh.m[sid] = sizeEntry{size: size, at: now}
}

// sizeReadTimeout bounds one member count read.
const sizeReadTimeout = 2 * time.Second

// sessionSize is sid's member count, from the cache or the session store.
// An unknown session has 0 members.
func (s *Server) sessionSize(ctx context.Context, sid string) (int, error) {
	n, fresh, ok := s.sizes.get(sid, s.now())
	if fresh {
		return n, nil
	}
	ctx, cancel := context.WithTimeout(ctx, sizeReadTimeout)
	defer cancel()
	count, err := s.sessions.Count(ctx, sid) // one read of the session's counter
	switch {
	case err != nil && ok:
		return n, nil // the stale count beats none
	case err != nil:
		return 0, fmt.Errorf("read session size: %w", err)
	}
	s.sizes.put(sid, count, s.now())
	return count, nil
}

// largeSession reports whether sid has more members than
// ALLSPARK_PRESENCE_MAX_MEMBERS, reading its size if it must. A session
// whose size cannot be read counts as small: its members get per-member
// frames, as before summaries existed.
func (s *Server) largeSession(ctx context.Context, sid string) bool {
	n, err := s.sessionSize(ctx, sid)
	return err == nil && n > s.cfg.PresenceMaxMembers
}
