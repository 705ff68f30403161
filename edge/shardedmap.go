package edge

import (
	"hash/maphash"
	"sync"
)

// mapShards is the number of shards of a shardedMap.
const mapShards = 64

// shardedMap maps string keys to V in shards, each behind its own lock, so
// the connects and disconnects of many clients do not contend on one
// mutex. The hub (node -> its connections here) and the session index
// (session -> its members' connections here) are both one. Call init
// before use.
type shardedMap[V any] struct {
	seed   maphash.Seed
	shards [mapShards]mapShard[V]
}

type mapShard[V any] struct {
	mu sync.RWMutex
	m  map[string]V // guarded by mu
}

func (m *shardedMap[V]) init() {
	m.seed = maphash.MakeSeed()
	for i := range m.shards {
		m.shards[i].m = map[string]V{}
	}
}

// hash is key's hash; callers also use it to pick a dispatcher.
func (m *shardedMap[V]) hash(key string) uint64 { return maphash.String(m.seed, key) }

func (m *shardedMap[V]) shard(key string) *mapShard[V] {
	return &m.shards[m.hash(key)%mapShards]
}

// update runs f on key's entry (ok is false if there is none) under the
// shard's write lock. f returns the entry to keep, or keep=false to delete
// key. Whatever the entry guards is guarded by the same lock, so f may
// change it in place.
func (m *shardedMap[V]) update(key string, f func(v V, ok bool) (next V, keep bool)) {
	sh := m.shard(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	v, ok := sh.m[key]
	next, keep := f(v, ok)
	if keep {
		sh.m[key] = next
	} else if ok {
		delete(sh.m, key)
	}
}

// view runs f on key's entry under the shard's read lock; f must not keep
// references to what the lock guards (copy it instead).
func (m *shardedMap[V]) view(key string, f func(v V, ok bool)) {
	sh := m.shard(key)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	v, ok := sh.m[key]
	f(v, ok)
}

// each runs f on every entry, one shard at a time under its read lock.
func (m *shardedMap[V]) each(f func(key string, v V)) {
	for i := range m.shards {
		sh := &m.shards[i]
		sh.mu.RLock()
		for k, v := range sh.m {
			f(k, v)
		}
		sh.mu.RUnlock()
	}
}
