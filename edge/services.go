package edge

import (
	"context"
	"fmt"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
)

// services is what an edge runs for backends (issue 14): the drainer of
// service backlogs, the lifecycle event publisher and the presence query
// responder. Everything here is started by startServices and stopped by
// stopServices, so the rest of the edge needs one call each.
type services struct {
	drainer  *bus.ServiceDrainer
	events   *bus.Events // nil when ALLSPARK_EVENTS=false
	presSub  *nats.Subscription
	drained  prometheus.Counter
	presence *prometheus.CounterVec
}

// Defaults for edge.Config fields a zero Config (tests, embedders) leaves
// unset; cmd/edge sets them from the environment.
const (
	defaultServiceDrainWindow = 64
	defaultEventsTTL          = 24 * time.Hour
	defaultPresenceMaxNodes   = 1000
)

func (c Config) serviceDrainWindow() int {
	return orDefault(c.ServiceDrainWindow, defaultServiceDrainWindow)
}
func (c Config) presenceMaxNodes() int { return orDefault(c.PresenceMaxNodes, defaultPresenceMaxNodes) }
func (c Config) eventsTTL() time.Duration {
	if c.EventsTTL <= 0 {
		return defaultEventsTTL
	}
	return c.EventsTTL
}

func orDefault(v, d int) int {
	if v <= 0 {
		return d
	}
	return v
}

// servicesErrors validates the fields above (0 means the default).
func (c Config) servicesErrors() []error {
	var errs []error
	if c.ServiceDrainWindow < 0 || c.ServiceDrainWindow > 4096 {
		errs = append(errs, fmt.Errorf("ALLSPARK_SERVICE_DRAIN_WINDOW: must be 1..4096, got %d", c.ServiceDrainWindow))
	}
	if c.PresenceMaxNodes < 0 || c.PresenceMaxNodes > 100000 {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_MAX_NODES: must be 1..100000, got %d", c.PresenceMaxNodes))
	}
	if c.EventsTTL < 0 {
		errs = append(errs, fmt.Errorf("ALLSPARK_EVENTS_TTL: must be a positive duration, got %s", c.EventsTTL))
	}
	if c.EventsMaxBytes < 0 {
		errs = append(errs, fmt.Errorf("ALLSPARK_EVENTS_MAX_BYTES: must be 0 (no limit) or positive, got %d", c.EventsMaxBytes))
	}
	return errs
}

// startServices runs after the router is up.
func (s *Server) startServices(ctx context.Context) error {
	sv := &s.svc
	sv.drained = prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_service_backlog_drained_total",
		Help: "Stored messages for service ids that this edge offered to a replica and the replica acked."})
	sv.presence = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_presence_queries_total",
		Help: "Backend presence queries answered by this edge, by transport (nats, http)."}, []string{"via"})
	s.m.reg.MustRegister(sv.drained, sv.presence)
	var err error
	sv.drainer, err = bus.OpenServiceDrainer(ctx, s.js, s.nc, s.subj, s.inbox, s.req, bus.ServiceDrainConfig{
		Owner: s.cfg.ID, Replicas: s.cfg.StreamReplicas, Window: s.cfg.serviceDrainWindow(), Retries: 3,
	}, func(n int) { sv.drained.Add(float64(n)) }, s.log)
	if err != nil {
		return err
	}
	if s.cfg.Events {
		if _, err := bus.OpenEventsStream(ctx, s.js, s.subj, bus.EventsConfig{Replicas: s.cfg.StreamReplicas,
			MaxAge: s.cfg.eventsTTL(), MaxBytes: s.cfg.EventsMaxBytes}); err != nil {
			return err
		}
		sv.events = bus.NewEvents(s.nc, s.subj, s.cfg.ID, s.now, s.log)
	}
	sv.presSub, err = bus.ServePresenceNodes(s.nc, s.subj, bus.PresenceNodesConfig{
		MaxNodes: s.cfg.presenceMaxNodes(), Timeout: presenceTimeout,
		Edges: func() int { return len(s.registry.Live()) },
		Spawn: func(f func()) { sv.presence.WithLabelValues("nats").Inc(); s.spawn(f) },
	})
	return err
}

// stopServices runs in Close before the requester closes.
func (s *Server) stopServices() {
	if s.svc.presSub != nil {
		_ = s.svc.presSub.Unsubscribe()
	}
	if s.svc.drainer != nil {
		s.svc.drainer.Close()
	}
}

// nodeEvent publishes node.online / node.offline once presence has decided
// this was the node's first or last connection anywhere.
func (s *Server) nodeEvent(node string, online bool) {
	if s.svc.events != nil {
		s.svc.events.NodePresence(node, online)
	}
}

// wantsNodeEvents tells announcePresence to check presence even for a node
// in no session.
func (s *Server) wantsNodeEvents() bool { return s.svc.events != nil }
