// Package edge is the websocket and HTTP front of AllSpark: it authenticates
// nodes, holds their connections, hands their messages to the bus router and
// writes the messages the bus delivers to them.
package edge

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/push"
	"github.com/lxzan/gws"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// deleters is how many goroutines remove acked messages from inboxes.
const deleters = 2

// Deps are the collaborators an edge needs; the caller owns their lifetime.
type Deps struct {
	NATS   *nats.Conn
	Keys   *auth.Keys
	Logger *slog.Logger
	Now    func() time.Time // nil: time.Now
	// Metrics is where the edge registers its series (served on /metrics);
	// nil: a private registry from NewRegistry.
	Metrics *prometheus.Registry
}

// Server is one edge. Build it with New, call Start, serve Handler on any
// listener, and end with Shutdown (graceful) or Close (immediate).
type Server struct {
	cfg  Config
	nc   *nats.Conn
	js   jetstream.JetStream
	keys *auth.Keys
	log  *slog.Logger
	now  func() time.Time
	subj bus.Subjects
	hub  *hub
	mux  *http.ServeMux
	ws   *gws.Upgrader

	// Set by Start.
	req        *bus.Requester
	router     *bus.Router
	registry   *bus.Registry
	devices    *bus.Devices
	inbox      *bus.Inbox
	sessions   *bus.Sessions
	history    *bus.History
	pushTokens *push.Tokens
	sendSub    *nats.Subscription
	presSub    *nats.Subscription
	deletes    chan uint64 // acked inbox sequences for the deleters
	tasks      tasks       // short-lived work started by connections and handlers
	stop       chan struct{}
	bg         sync.WaitGroup

	m *metrics
	// reconnectFrame is the last frame a draining edge sends each client.
	reconnectFrame []byte
	started        atomic.Bool
	draining       atomic.Bool
	announceMu     sync.Mutex // serializes announcements with the withdrawal, so no heartbeat re-adds a drained edge
	stopOnce       sync.Once
	slowConsumers  atomic.Int64
	svc            services // issue 14: edge/services.go
}

// New validates cfg and builds an edge. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if deps.NATS == nil || deps.Keys == nil {
		return nil, errors.New("edge: NATS and Keys are required")
	}
	subj, err := bus.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_SUBJECT_PREFIX: %w", err)
	}
	js, err := jetstream.New(deps.NATS)
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	s := &Server{cfg: cfg, nc: deps.NATS, js: js, keys: deps.Keys, log: deps.Logger, now: deps.Now, subj: subj,
		stop: make(chan struct{}), deletes: make(chan uint64, 1<<16),
		reconnectFrame: mustJSON(reconnectFrame{Type: "reconnect", AfterMS: 0})}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("edge", cfg.ID)
	s.hub = newHub(deps.NATS, subj, s.log)
	if deps.Metrics == nil {
		deps.Metrics = NewRegistry()
	}
	s.m = newMetrics(deps.Metrics, deps.NATS, s.hub)
	s.ws = gws.NewUpgrader(wsEvents{}, &gws.ServerOption{
		ReadMaxPayloadSize: cfg.MaxFrameBytes,
		CheckUtf8Enabled:   true,
		HandshakeTimeout:   5 * time.Second,
		Recovery:           gws.Recovery,
	})
	s.routes()
	return s, nil
}

// Start creates the buckets this edge needs, starts routing and announces
// the edge. It returns once the edge can serve.
func (s *Server) Start(ctx context.Context) error {
	if err := s.openStores(ctx); err != nil {
		return err
	}
	var err error
	if s.req, err = bus.NewRequester(s.nc, bus.DeliveryTimeout(s.cfg.AckTimeout), s.now); err != nil {
		return err
	}
	s.router = bus.NewRouter(bus.RouterDeps{NATS: s.nc, Requester: s.req, Subjects: s.subj, Devices: s.devices,
		Store: s.inbox, Sessions: s.sessions, History: s.history, Now: s.now, Log: s.log,
		OnOutcome: s.m.outcome, OnStored: func(n int) { s.m.stored.Add(float64(n)) }})
	if s.presSub, err = bus.ServePresence(s.nc, s.subj, s.cfg.ID, s.hub.holds); err != nil {
		return err
	}
	if s.sendSub, err = s.router.ServeSend(s.cfg.MaxFrameBytes); err != nil {
		return err
	}
	if err := s.startServices(ctx); err != nil {
		return err
	}
	for i := range dispatchers {
		s.goBackground(func() { s.hub.dispatch(i, s.stop) })
	}
	for range deleters {
		s.goBackground(s.deleter)
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	s.goBackground(func() { <-s.stop; cancel() })
	s.goBackground(func() { s.registry.Watch(watchCtx) })
	if err := s.announce(ctx); err != nil {
		return err
	}
	s.goBackground(s.heartbeat)
	select {
	case <-s.registry.Ready():
	case <-ctx.Done():
		return fmt.Errorf("load edge registry: %w", ctx.Err())
	}
	s.started.Store(true)
	s.log.Info("edge started", "ws_url", s.cfg.wsURL())
	return nil
}

// openStores creates or binds every stream and bucket. A JetStream cluster
// that is still forming (edges and NATS started together, as Compose and
// Kubernetes do) can leave a create request hanging, so each is tried with
// a short timeout and retried until ctx ends.
func (s *Server) openStores(ctx context.Context) error {
	steps := []struct {
		what string
		open func(context.Context) error
	}{
		{"devices bucket", func(ctx context.Context) (err error) {
			s.devices, err = bus.OpenDevices(ctx, s.js, s.subj.DevicesBucket(), s.cfg.StreamReplicas, s.cfg.InboxTTL, s.now)
			return err
		}},
		{"edges bucket", func(ctx context.Context) (err error) {
			s.registry, err = bus.OpenRegistry(ctx, s.js, bus.RegistryConfig{
				Bucket: s.subj.EdgesBucket(), StaleAfter: 3 * s.cfg.Heartbeat, Replicas: s.cfg.StreamReplicas,
			}, s.now, s.log)
			return err
		}},
		{"inbox", func(ctx context.Context) (err error) {
			s.inbox, err = bus.OpenInbox(ctx, s.nc, s.subj, bus.InboxConfig{
				Replicas: s.cfg.StreamReplicas, MaxAge: s.cfg.InboxTTL, MaxPerNode: s.cfg.InboxMaxPerNode,
			}, s.log)
			return err
		}},
		{"session buckets", func(ctx context.Context) (err error) {
			s.sessions, err = bus.OpenSessions(ctx, s.js, s.subj, s.cfg.StreamReplicas, s.now)
			return err
		}},
		{"history", func(ctx context.Context) (err error) {
			s.history, err = bus.OpenHistory(ctx, s.nc, s.subj, bus.HistoryConfig{
				Replicas: s.cfg.StreamReplicas, MaxAge: s.cfg.HistoryTTL, MaxPerSession: s.cfg.HistoryMaxPerSession,
			})
			return err
		}},
		{"push tokens bucket", func(ctx context.Context) (err error) {
			s.pushTokens, err = push.OpenTokens(ctx, s.js, s.subj, s.cfg.StreamReplicas, s.now)
			return err
		}},
	}
	for _, st := range steps {
		for attempt := 1; ; attempt++ {
			actx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := st.open(actx)
			cancel()
			if err == nil {
				break
			}
			if ctx.Err() != nil {
				return fmt.Errorf("open %s: %w", st.what, err)
			}
			s.log.Warn("JetStream not ready; retrying", "open", st.what, "attempt", attempt, "err", err)
			select {
			case <-ctx.Done():
				return fmt.Errorf("open %s: %w", st.what, err)
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return nil
}

func (s *Server) goBackground(f func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

func (s *Server) info() bus.EdgeInfo {
	return bus.EdgeInfo{ID: s.cfg.ID, WSURL: s.cfg.wsURL(), ProxyURL: s.cfg.ProxyURL,
		Connections: int(s.hub.count.Load()), Draining: s.draining.Load()}
}

func (s *Server) announce(ctx context.Context) error {
	s.announceMu.Lock()
	defer s.announceMu.Unlock()
	if s.draining.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Heartbeat)
	defer cancel()
	return s.registry.Announce(ctx, s.info())
}

func (s *Server) heartbeat() {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.announce(context.Background()); err != nil && !s.draining.Load() {
				s.log.Warn("edge heartbeat", "err", err)
			}
		}
	}
}

// reply sends a delivery verdict back to the sending edge.
func (s *Server) reply(subject string, verdict []byte) {
	if err := s.nc.Publish(subject, verdict); err != nil {
		s.log.Warn("reply to sender", "err", err)
	}
}

// SlowConsumers counts connections closed with 4009 since start.
func (s *Server) SlowConsumers() int64 { return s.slowConsumers.Load() }

// Connections is the number of open websocket connections.
func (s *Server) Connections() int { return int(s.hub.count.Load()) }

// Shutdown drains the edge: it stops being offered, asks every client to
// reconnect elsewhere, closes them with 1001 once their queues are flushed,
// and waits for them (or ctx) before stopping.
func (s *Server) Shutdown(ctx context.Context) error {
	if !s.started.Load() {
		s.Close()
		return nil
	}
	s.announceMu.Lock()
	s.draining.Store(true)
	rctx, cancel := context.WithTimeout(ctx, time.Second)
	if err := s.registry.Remove(rctx, s.cfg.ID); err != nil {
		s.log.Warn("withdraw from registry", "err", err)
	}
	cancel()
	s.announceMu.Unlock()
	for _, c := range s.hub.all() {
		c.closeAfter(s.reconnectFrame, allspark.CloseGoingAway, "edge shutting down")
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.hub.count.Load() > 0 {
		select {
		case <-ctx.Done():
			s.Close()
			return fmt.Errorf("drain: %d connections left: %w", s.hub.count.Load(), ctx.Err())
		case <-t.C:
		}
	}
	s.Close()
	return nil
}

// Close stops the edge at once: connections are cut without a close frame,
// as if the process died, and background work stops.
func (s *Server) Close() {
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		conns := s.hub.all()
		for _, c := range conns {
			c.cut()
		}
		for _, c := range conns {
			<-c.done
		}
		if s.sendSub != nil {
			_ = s.sendSub.Unsubscribe()
		}
		if s.presSub != nil {
			_ = s.presSub.Unsubscribe()
		}
		close(s.stop)
		s.bg.Wait()
		s.tasks.close() // after the dispatchers, which start some of this work, have stopped
		s.stopServices()
		if s.req != nil {
			s.req.Close()
		}
		if s.router != nil {
			s.router.Close()
		}
	})
}

// tasks runs short-lived goroutines (inbox passes, presence, history
// syncs) and lets Close wait for them. Unlike a bare WaitGroup, it refuses
// new work once closing has begun, so no Add can race the final Wait.
type tasks struct {
	mu     sync.Mutex
	closed bool // guarded by mu
	wg     sync.WaitGroup
}

// spawn runs f on a new goroutine, unless the server is closing.
func (s *Server) spawn(f func()) {
	s.tasks.mu.Lock()
	defer s.tasks.mu.Unlock()
	if s.tasks.closed {
		return
	}
	s.tasks.wg.Add(1)
	go func() {
		defer s.tasks.wg.Done()
		f()
	}()
}

func (t *tasks) close() {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	t.wg.Wait()
}
