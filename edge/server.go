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
	// pings asks every connection for its keepalive ping (see pingWheel);
	// bufs holds batchConn's write buffers between batches.
	pings *pingWheel
	bufs  sync.Pool

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
	deletes    chan inboxDelete // acked inbox messages for the deleters
	tasks      tasks            // short-lived work started by connections and handlers
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
	svc            services   // issue 14: edge/services.go
	renudge        renudger   // edge/reconnect.go
	sizes          *sizeCache // session member counts (presence_size.go)
	pres           *summaries // presence summaries (presence_summary.go)
}

// New validates cfg and builds an edge. It does no I/O.
func New(cfg Config, deps Deps) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
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
		stop: make(chan struct{}), deletes: make(chan inboxDelete, 1<<16),
		reconnectFrame: mustJSON(reconnectFrame{Type: "reconnect", AfterMS: 0}),
		pings:          newPingWheel(cfg.PingInterval)}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("edge", cfg.ID)
	s.hub = newHub(deps.NATS, subj, s.log, hubLimits{maxConns: cfg.MaxConns, perNode: cfg.MaxConnsPerNode,
		single: cfg.SingleConnection, inboxReads: cfg.MaxInboxReads})
	if deps.Metrics == nil {
		deps.Metrics = NewRegistry()
	}
	s.sizes = newSizeCache(cfg.PresenceSizeTTL, cfg.PresenceSizeCache)
	s.pres = newSummaries(s)
	s.hub.sum = s.pres
	s.m = newMetrics(deps.Metrics, deps.NATS, s.hub)
	s.ws = gws.NewUpgrader(wsEvents{}, &gws.ServerOption{
		ReadMaxPayloadSize: cfg.MaxFrameBytes,
		ReadBufferSize:     wsReadBuffer,
		NewSession:         func() gws.SessionStorage { return &connSlot{} },
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
		StoreTimeout: s.cfg.StoreTimeout, StoreQueue: s.cfg.StoreQueue, StoreQueueBytes: s.cfg.StoreQueueBytes,
		BackendQueue: s.cfg.BackendQueue, Route: s.hub.route,
		OnOutcome: s.m.outcome, OnStored: func(n int) { s.m.stored.Add(float64(n)) }})
	if s.presSub, err = bus.ServePresence(s.nc, s.subj, s.cfg.ID, s.hub.holds); err != nil {
		return err
	}
	if s.sendSub, err = s.router.ServeSend(s.cfg.MaxFrameBytes, s.cfg.MaxJSONDepth); err != nil {
		return err
	}
	if err := s.startServices(ctx); err != nil {
		return err
	}
	for i := range dispatchers {
		s.goBackground(func() { s.hub.dispatch(i, s.stop) })
	}
	s.goBackground(func() { s.hub.acks.run(s.stop) })
	for range deleters {
		s.goBackground(s.deleter)
	}
	s.watchNATS()
	s.goBackground(func() { s.pings.run(s.stop) })
	watchCtx, cancel := context.WithCancel(context.Background())
	s.goBackground(func() { <-s.stop; cancel() })
	s.goBackground(func() { s.registry.Watch(watchCtx) })
	s.goBackground(func() { s.pres.run(s.stop) })
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

// openStores creates or binds every stream and bucket. Edges and NATS are
// often started together (Compose, Kubernetes), so the JetStream cluster may
// still be forming: it first waits for the cluster's meta leader (until
// there is one every creation would hang to its timeout), then creates
// everything concurrently, each retried with a short timeout until ctx
// ends. An answer no retry can change (replicas the servers cannot hold)
// fails at once, naming the setting.
func (s *Server) openStores(ctx context.Context) error {
	if err := bus.WaitJetStream(ctx, s.js, time.Second); err != nil {
		return s.storeSetupError("JetStream", err)
	}
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
				AttemptTimeout: s.cfg.StoreAttemptTimeout, MaxInFlight: s.cfg.StoreQueue, MaxBytes: s.cfg.InboxMaxBytes,
				EventsMaxAge: s.cfg.UndeliveredTTL, EventsMaxBytes: s.cfg.UndeliveredMaxBytes, NoEvents: !s.cfg.UndeliveredEvents,
			}, s.log)
			return err
		}},
		{"session buckets", func(ctx context.Context) (err error) {
			s.sessions, err = bus.OpenSessions(ctx, s.js, s.subj, bus.SessionsConfig{
				Replicas: s.cfg.StreamReplicas, MaxMembers: s.cfg.SessionMaxMembers, MaxNodeSessions: s.cfg.NodeMaxSessions,
			}, s.now)
			return err
		}},
		{"history", func(ctx context.Context) (err error) {
			s.history, err = bus.OpenHistory(ctx, s.nc, s.subj, bus.HistoryConfig{
				Replicas: s.cfg.StreamReplicas, MaxAge: s.cfg.HistoryTTL, MaxPerSession: s.cfg.HistoryMaxPerSession,
				AttemptTimeout: s.cfg.StoreAttemptTimeout, MaxInFlight: s.cfg.StoreQueue,
			})
			return err
		}},
		{"push tokens bucket", func(ctx context.Context) (err error) {
			s.pushTokens, err = push.OpenTokens(ctx, s.js, s.subj, s.cfg.StreamReplicas, s.now)
			return err
		}},
	}
	// On the first failure the others stop too: the edge cannot start anyway.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var first error
	var once sync.Once
	opens := make([]func(context.Context) error, len(steps))
	for i, st := range steps {
		opens[i] = func(ctx context.Context) error {
			err := s.openStore(ctx, st.what, st.open)
			if err != nil {
				once.Do(func() { first = err; cancel() })
			}
			return err
		}
	}
	if bus.Concurrently(ctx, opens...) != nil {
		return first // not the cancellations it caused
	}
	return nil
}

// openStore runs open until it succeeds, ctx ends or it fails for good.
// The first tries are short: when several edges create the same stream at
// once on a new meta leader, some requests are never answered, and a
// retry (creation is idempotent) is answered at once. Later tries get
// longer, for a cluster that is merely slow.
func (s *Server) openStore(ctx context.Context, what string, open func(context.Context) error) error {
	timeout := time.Second
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, timeout)
		err := open(actx)
		cancel()
		timeout = min(2*timeout, 5*time.Second)
		switch {
		case err == nil:
			return nil
		case bus.IsFinalSetupError(err):
			return s.storeSetupError(what, err)
		case ctx.Err() != nil:
			return fmt.Errorf("open %s: %w", what, err)
		}
		s.log.Warn("JetStream not ready; retrying", "open", what, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("open %s: %w", what, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// storeSetupError explains a setup failure retrying cannot fix by the
// setting behind it.
func (s *Server) storeSetupError(what string, err error) error {
	if bus.IsFinalSetupError(err) {
		return fmt.Errorf("open %s: ALLSPARK_STREAM_REPLICAS=%d cannot be met by the NATS servers "+
			"(more than 1 replica needs a JetStream cluster of at least that many servers, with room to store): %w",
			what, s.cfg.StreamReplicas, err)
	}
	return fmt.Errorf("open %s: %w", what, err)
}

func (s *Server) goBackground(f func()) {
	s.bg.Add(1)
	go func() {
		defer s.bg.Done()
		f()
	}()
}

// info is what the edge announces. A full edge (ALLSPARK_MAX_CONNS) is
// announced as draining, so /v1/connect offers only edges that take
// connections; it is announced normally again once it has room.
func (s *Server) info() bus.EdgeInfo {
	return bus.EdgeInfo{ID: s.cfg.ID, WSURL: s.cfg.wsURL(), ProxyURL: s.cfg.ProxyURL,
		Connections: int(s.hub.count.Load()), Draining: s.draining.Load() || s.hub.full()}
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
	if s.sendSub != nil {
		// Backends' requests go to the other edges of the queue group now.
		_ = s.sendSub.Unsubscribe()
	}
	conns := s.hub.all()
	for _, c := range conns {
		c.beginDrain(s.reconnectFrame)
	}
	s.awaitAnswers(ctx, conns)
	cutErr := s.cutStores(ctx)
	for _, c := range s.hub.all() {
		c.requestClose(allspark.CloseGoingAway, "edge shutting down")
	}
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for s.hub.count.Load() > 0 {
		select {
		case <-ctx.Done():
			left := s.hub.count.Load()
			_ = s.stopWithin(ctx, true)
			return errors.Join(cutErr, fmt.Errorf("drain: %d connections left: %w", left, ctx.Err()))
		case <-t.C:
		}
	}
	if err := s.stopWithin(ctx, true); err != nil {
		return errors.Join(cutErr, fmt.Errorf("drain: work still pending: %w", err))
	}
	if cutErr != nil {
		return fmt.Errorf("drain: %w", cutErr)
	}
	return nil
}

// Close stops the edge at once: connections are cut without a close frame,
// as if the process died, and background work stops. Stores still pending
// are answered "unavailable" at once (their copies may still become durable).
func (s *Server) Close() {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_ = s.stopWithin(ctx, false)
}

// stopWithin cuts what is left and stops background work; the stores in
// flight may finish until ctx ends, then they are cancelled and answered.
// With bounded set (a drain), it also stops waiting for background work
// once ctx ends, so a drain never outlasts its budget whatever NATS does
// (every such goroutine ends on its own, on its own I/O timeout); Close
// waits for all of it, so nothing outlives it. It returns ctx's error if
// anything had to be cut short.
func (s *Server) stopWithin(ctx context.Context, bounded bool) error {
	var errs []error
	wait := func(what string, f func()) {
		if !bounded {
			f()
			return
		}
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-ctx.Done():
			errs = append(errs, fmt.Errorf("stop %s: %w", what, ctx.Err()))
		}
	}
	s.stopOnce.Do(func() {
		s.draining.Store(true)
		conns := s.hub.all()
		for _, c := range conns {
			c.abort()
		}
		wait("connections", func() {
			for _, c := range conns {
				<-c.done
			}
		})
		if s.sendSub != nil {
			_ = s.sendSub.Unsubscribe()
		}
		if s.presSub != nil {
			_ = s.presSub.Unsubscribe()
		}
		close(s.stop)
		wait("background work", func() {
			s.bg.Wait()
			s.tasks.close() // after the dispatchers, which start some of this work, have stopped
			s.stopServices()
		})
		if s.req != nil {
			s.req.Close()
		}
		if s.router != nil {
			if err := s.router.Shutdown(ctx); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
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
