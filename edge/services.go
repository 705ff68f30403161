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
	events   *bus.Events // nil when ALLSPARK_EVENTS=false
	drainer  *bus.ServiceDrainer
	ready    chan struct{} // closed once events stream and drainer are open
	presSub  *nats.Subscription
	drained  prometheus.Counter
	presence *prometheus.CounterVec
	nodeq    shardedMap[[]*nodeTicket]
}

// servicesErrors validates the fields above (0 means the default).
func (c Config) servicesErrors() []error {
	var errs []error
	if c.ServiceDrainWindow < 0 || c.ServiceDrainWindow > 4096 {
		errs = append(errs, fmt.Errorf("ALLSPARK_SERVICE_DRAIN_WINDOW: must be 1..4096, got %d", c.ServiceDrainWindow))
	}
	if c.PresenceMaxInFlight < 0 || c.ServiceMaxDrains < 0 {
		errs = append(errs, fmt.Errorf("ALLSPARK_PRESENCE_MAX_INFLIGHT and ALLSPARK_SERVICE_MAX_DRAINS: must be 0 (default) or positive, got %d and %d", c.PresenceMaxInFlight, c.ServiceMaxDrains))
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

// startServices runs after the router is up. It opens the events stream
// and the drain lease bucket with one short attempt each; what a slow
// JetStream (a cluster still forming) does not open in time is opened in
// the background, retried, so it does not hold up the edge's start. Until
// then events are published but not kept, and backlogs wait for the next
// svcready request.
func (s *Server) startServices(ctx context.Context) error {
	sv := &s.svc
	sv.nodeq.init()
	sv.drained = prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_service_backlog_drained_total",
		Help: "Stored messages for service ids that this edge offered to a replica and the replica acked."})
	sv.presence = prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_presence_queries_total",
		Help: "Backend presence queries answered by this edge, by transport (nats, http)."}, []string{"via"})
	s.m.reg.MustRegister(sv.drained, sv.presence)
	if s.cfg.Events {
		sv.events = bus.NewEvents(s.nc, s.subj, s.cfg.ID, s.now, s.log)
	}
	var err error
	sv.presSub, err = bus.ServePresenceNodes(s.nc, s.subj, bus.PresenceNodesConfig{
		MaxNodes: s.cfg.PresenceMaxNodes, MaxInFlight: s.cfg.PresenceMaxInFlight, Timeout: presenceTimeout,
		Edges: func() int { return len(s.registry.Live()) },
		Spawn: func(f func()) { sv.presence.WithLabelValues("nats").Inc(); s.spawn(f) },
	})
	if err != nil {
		return err
	}
	var later []serviceStore
	for _, st := range s.serviceStores() {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := st.open(actx)
		cancel()
		if err != nil {
			s.log.Warn("JetStream slow; opening in the background", "open", st.what, "err", err)
			later = append(later, st)
		}
	}
	sv.ready = make(chan struct{})
	if len(later) == 0 {
		close(sv.ready)
		return nil
	}
	s.goBackground(func() {
		if s.openLater(later) {
			close(sv.ready)
		}
	})
	return nil
}

// ServicesReady is closed once the events stream and the service drainer
// are open: at Start, or later on a slow JetStream.
func (s *Server) ServicesReady() <-chan struct{} { return s.svc.ready }

type serviceStore struct {
	what string
	open func(context.Context) error
}

func (s *Server) serviceStores() []serviceStore {
	var out []serviceStore
	if s.cfg.Events {
		out = append(out, serviceStore{"events stream", func(ctx context.Context) error {
			_, err := bus.OpenEventsStream(ctx, s.js, s.subj, bus.EventsConfig{Replicas: s.cfg.StreamReplicas,
				MaxAge: s.cfg.EventsTTL, MaxBytes: s.cfg.EventsMaxBytes})
			return err
		}})
	}
	return append(out, serviceStore{"service lease bucket", func(ctx context.Context) (err error) {
		// Written here, read by stopServices after the background group
		// (which may run this) has finished.
		s.svc.drainer, err = bus.OpenServiceDrainer(ctx, s.js, s.nc, s.subj, s.inbox, s.req, bus.ServiceDrainConfig{
			Owner: s.cfg.ID, Replicas: s.cfg.StreamReplicas, Window: s.cfg.ServiceDrainWindow, Retries: 3, MaxActive: s.cfg.ServiceMaxDrains,
		}, func(n int) { s.svc.drained.Add(float64(n)) }, s.log)
		return err
	}})
}

// openLater retries stores until they open or the edge stops. An attempt
// is not cut short by the stop: a create the server is still carrying out
// when its NATS server shuts down would leave the stream's goroutines behind.
func (s *Server) openLater(stores []serviceStore) (opened bool) {
	for _, st := range stores {
		for attempt := 2; ; attempt++ {
			select {
			case <-s.stop:
				return false
			default:
			}
			actx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := st.open(actx)
			cancel()
			if err == nil {
				s.log.Info("opened", "what", st.what, "attempt", attempt)
				break
			}
			s.log.Warn("JetStream not ready; retrying", "open", st.what, "attempt", attempt, "err", err)
			select {
			case <-s.stop:
				return false
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	return true
}

// stopServices runs in Close, after the background group, before the
// requester closes.
func (s *Server) stopServices() {
	if s.svc.presSub != nil {
		_ = s.svc.presSub.Unsubscribe()
	}
	if s.svc.drainer != nil {
		s.svc.drainer.Close()
	}
}

// Node events are decided after a presence scatter-gather, on a goroutine
// per change, so a quick connect and disconnect could decide out of order.
// Each change takes a ticket in announce order (nodeq: node -> its
// undecided or unpublished changes); decisions are published in ticket
// order per node.
type nodeTicket struct {
	node             string
	online           bool
	decided, publish bool // guarded by nodeq's shard lock
}

// nodeEventTicket reserves node's next place in its event order; nil when
// events are off.
func (s *Server) nodeEventTicket(node string, online bool) *nodeTicket {
	if s.svc.events == nil {
		return nil
	}
	t := &nodeTicket{node: node, online: online}
	s.svc.nodeq.update(node, func(q []*nodeTicket, _ bool) ([]*nodeTicket, bool) { return append(q, t), true })
	return t
}

// resolveNodeEvent records whether t's change is the node's first/last
// connection anywhere (publish) and publishes every decided change at the
// head of the node's order.
func (s *Server) resolveNodeEvent(t *nodeTicket, publish bool) {
	if t == nil {
		return
	}
	s.svc.nodeq.update(t.node, func(q []*nodeTicket, _ bool) ([]*nodeTicket, bool) {
		t.decided, t.publish = true, publish
		for len(q) > 0 && q[0].decided {
			if q[0].publish {
				s.svc.events.NodePresence(q[0].node, q[0].online) // a buffered core publish
			}
			q = q[1:]
		}
		return q, len(q) > 0
	})
}

// wantsNodeEvents tells announcePresence to check presence even for a node
// in no session.
func (s *Server) wantsNodeEvents() bool { return s.svc.events != nil }
