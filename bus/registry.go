package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// EdgeInfo is what an edge announces about itself.
type EdgeInfo struct {
	ID          string `json:"id"`
	WSURL       string `json:"ws_url"`
	ProxyURL    string `json:"proxy_url,omitempty"`
	Connections int    `json:"connections"`
	Draining    bool   `json:"draining,omitempty"`
}

// Registry is the cluster's list of live edges. Each edge Announces itself
// every heartbeat; an edge not heard from for StaleAfter is considered dead.
// A KV bucket's max-age expiry emits no delete event to watchers, so
// staleness is judged here, and the bucket TTL only reaps what dead edges
// left behind.
//
// Staleness is measured on one clock only, the local one: an announcement
// is stamped with the local time the watcher received it, never compared
// with the NATS server's timestamp (a skew beyond StaleAfter between the
// two would make every edge look dead, or none). Only the initial state,
// replayed at once when the watcher starts, uses server timestamps, and
// only relative to each other: an entry is as old, locally, as it is
// older than the newest entry.
type Registry struct {
	kv         jetstream.KeyValue
	staleAfter time.Duration
	now        func() time.Time
	log        *slog.Logger

	mu    sync.Mutex
	edges map[string]registryEntry // guarded by mu
	ready chan struct{}            // closed once the initial state is loaded
}

type registryEntry struct {
	info EdgeInfo
	seen time.Time // local receive time
}

// RegistryConfig configures OpenRegistry.
type RegistryConfig struct {
	Bucket     string
	StaleAfter time.Duration // an edge silent this long is dead
	Replicas   int
}

// OpenRegistry creates or binds the edges bucket.
func OpenRegistry(ctx context.Context, js jetstream.JetStream, cfg RegistryConfig, now func() time.Time, log *slog.Logger) (*Registry, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "AllSpark live edges",
		History:     1,
		TTL:         max(3*cfg.StaleAfter, time.Minute),
		Storage:     jetstream.MemoryStorage,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open edges bucket: %w", err)
	}
	return &Registry{kv: kv, staleAfter: cfg.StaleAfter, now: now, log: log,
		edges: map[string]registryEntry{}, ready: make(chan struct{})}, nil
}

// Announce publishes info. Call it every heartbeat.
func (r *Registry) Announce(ctx context.Context, info EdgeInfo) error {
	b, err := json.Marshal(info)
	if err != nil {
		return fmt.Errorf("encode edge info: %w", err)
	}
	if _, err := r.kv.Put(ctx, Token(info.ID), b); err != nil {
		return fmt.Errorf("announce edge %s: %w", info.ID, err)
	}
	return nil
}

// Remove withdraws an edge at once (graceful shutdown).
func (r *Registry) Remove(ctx context.Context, id string) error {
	if err := r.kv.Delete(ctx, Token(id)); err != nil {
		return fmt.Errorf("withdraw edge %s: %w", id, err)
	}
	return nil
}

// Watch keeps the local view current until ctx ends. It restarts its watcher
// if NATS drops it.
func (r *Registry) Watch(ctx context.Context) {
	for ctx.Err() == nil {
		err := r.watchOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		r.log.Warn("edge registry watch ended; retrying", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (r *Registry) watchOnce(ctx context.Context) error {
	w, err := r.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch edges: %w", err)
	}
	defer func() { _ = w.Stop() }()
	var initial []jetstream.KeyValueEntry // the replayed state, until the nil marker
	loaded := false
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			switch {
			case e == nil:
				r.load(initial)
				initial, loaded = nil, true
				r.markReady()
			case !loaded:
				initial = append(initial, e)
			default:
				r.apply(e, r.now())
			}
		}
	}
}

// load applies the initial state. Its entries arrive together, so their
// receive time says nothing about their age; the age of each is taken as
// its distance from the newest by the server's timestamps, which needs no
// agreement between the server's clock and ours.
func (r *Registry) load(entries []jetstream.KeyValueEntry) {
	now := r.now()
	var newest time.Time
	for _, e := range entries {
		if e.Created().After(newest) {
			newest = e.Created()
		}
	}
	for _, e := range entries {
		r.apply(e, now.Add(-newest.Sub(e.Created())))
	}
}

func (r *Registry) markReady() {
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
}

// apply records e, received (or dated) at seen on the local clock.
func (r *Registry) apply(e jetstream.KeyValueEntry, seen time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		id, err := ParseToken(e.Key())
		if err == nil {
			delete(r.edges, id)
		}
		return
	}
	var info EdgeInfo
	if err := json.Unmarshal(e.Value(), &info); err != nil || info.ID == "" {
		r.log.Warn("ignoring bad edge announcement", "key", e.Key(), "err", err)
		return
	}
	r.edges[info.ID] = registryEntry{info: info, seen: seen}
}

// Ready is closed once the watcher has loaded the initial state.
func (r *Registry) Ready() <-chan struct{} { return r.ready }

// Live returns the live, non-draining edges, least loaded first (ties by id).
func (r *Registry) Live() []EdgeInfo {
	now := r.now()
	r.mu.Lock()
	out := make([]EdgeInfo, 0, len(r.edges))
	for id, e := range r.edges {
		if now.Sub(e.seen) > r.staleAfter {
			delete(r.edges, id)
			continue
		}
		if !e.info.Draining {
			out = append(out, e.info)
		}
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].Connections != out[j].Connections {
			return out[i].Connections < out[j].Connections
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// Listed returns the ids of the edges heard from within StaleAfter,
// draining ones included: a full edge announces itself draining, and it
// still holds its connections.
func (r *Registry) Listed() map[string]bool {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]bool, len(r.edges))
	for id, e := range r.edges {
		if now.Sub(e.seen) <= r.staleAfter {
			out[id] = true
		}
	}
	return out
}
