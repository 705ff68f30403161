package edge

import (
	"net/http"

	"github.com/allspark-rt/allspark"
	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the edge's Prometheus series, served on GET /metrics.
type metrics struct {
	reg        *prometheus.Registry
	in         *prometheus.CounterVec // frames from clients, by kind
	out        *prometheus.CounterVec // live messages to clients, by kind (replays are in replayed)
	sent       *prometheus.CounterVec // send outcomes, by status
	ackLatency prometheus.Histogram
	stored     prometheus.Counter // copies stored in inboxes
	replayed   prometheus.Counter // messages replayed from inboxes
	slow       prometheus.Counter
	renudged   *prometheus.CounterVec // inbox passes the edge ran itself, by reason (see reconnect.go)

	// Resolved once: these are counted on every frame, and WithLabelValues
	// hashes its labels on each call.
	inByKind  [kindSync + 1]prometheus.Counter // index 0: bad frames
	outDirect prometheus.Counter
	outSess   prometheus.Counter
	sentBy    map[allspark.Status]prometheus.Counter
	renudgeBy map[string]prometheus.Counter // by reason, every reason present from the start
}

func newMetrics(reg *prometheus.Registry, nc *nats.Conn, h *hub) *metrics {
	m := &metrics{
		reg: reg,
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_frames_in_total",
			Help: "Frames received from clients, by kind (message, ack, ping, sync, bad)."}, []string{"kind"}),
		out: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_frames_out_total",
			Help: "Live messages written towards clients, by kind (direct, session); inbox replays are counted in allspark_inbox_replayed_total."}, []string{"kind"}),
		sent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_sent_total",
			Help: "Answers to sends, by status (delivered, stored, rejected)."}, []string{"status"}),
		ackLatency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "allspark_ack_latency_seconds",
			Help: "Time from handing a live message to a connection to the client's ack.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}),
		stored: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_inbox_stored_total",
			Help: "Message copies stored in inboxes by this edge."}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_inbox_replayed_total",
			Help: "Messages replayed from inboxes to connections on this edge."}),
		slow: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_slow_consumer_disconnects_total",
			Help: "Connections closed with 4009 because their send queue filled."}),
		renudged: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_inbox_renudge_passes_total",
			Help: "Inbox passes the edge ran for a held node because a nudge may have been lost, by reason (reconnect: the edge's NATS connection came back; dropped: the node's subscription dropped deliveries; retry: an earlier one failed)."}, []string{"reason"}),
	}
	for k := range m.inByKind {
		m.inByKind[k] = m.in.WithLabelValues(frameKind(k).String())
	}
	m.outDirect, m.outSess = m.out.WithLabelValues("direct"), m.out.WithLabelValues("session")
	m.sentBy = map[allspark.Status]prometheus.Counter{}
	for _, st := range []allspark.Status{allspark.StatusDelivered, allspark.StatusStored, allspark.StatusRejected} {
		m.sentBy[st] = m.sent.WithLabelValues(string(st))
	}
	m.renudgeBy = map[string]prometheus.Counter{}
	for _, r := range []string{renudgeReconnect, renudgeDropped, renudgeRetry} {
		m.renudgeBy[r] = m.renudged.WithLabelValues(r)
	}
	reg.MustRegister(m.in, m.out, m.sent, m.ackLatency, m.stored, m.replayed, m.slow, m.renudged,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "allspark_connections", Help: "Open websocket connections."},
			func() float64 { return float64(h.count.Load()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "allspark_nats_reconnects_total", Help: "Reconnections of this edge's NATS connection."},
			func() float64 { return float64(nc.Stats().Reconnects) }),
	)
	return m
}

// outcome counts an answer to a send.
func (m *metrics) outcome(s allspark.Sent) { m.sentBy[s.Status].Inc() }

// frameIn counts a frame from a client; kind 0 is a frame that was refused.
func (m *metrics) frameIn(k frameKind) { m.inByKind[k].Inc() }

// delivered counts a message written towards a client: a direct one
// (tracked for acks by msg_id) or a session one.
func (m *metrics) delivered(msgID string) {
	if msgID != "" {
		m.outDirect.Inc()
	} else {
		m.outSess.Inc()
	}
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// NewRegistry returns a registry with the Go runtime and process
// collectors, for Deps.Metrics.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
