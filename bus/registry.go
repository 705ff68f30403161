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
// every heartbeat; an edge whose last announcement is older than StaleAfter
// is considered dead. A KV bucket's max-age expiry emits no delete event to
// watchers, so staleness is judged from entry timestamps, and the bucket TTL
// only reaps what dead edges left behind.
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
	seen time.Time
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
	for {
		select {
		case <-ctx.Done():
			return nil
		case e, ok := <-w.Updates():
			if !ok {
				return errors.New("watcher closed")
			}
			if e == nil {
				r.markReady()
				continue
			}
			r.apply(e)
		}
	}
}

func (r *Registry) markReady() {
	select {
	case <-r.ready:
	default:
		close(r.ready)
	}
}

func (r *Registry) apply(e jetstream.KeyValueEntry) {
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
	r.edges[info.ID] = registryEntry{info: info, seen: e.Created()}
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
