package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Config is the push worker's configuration (ALLSPARK_ prefix).
type Config struct {
	APNs APNsConfig
	FCM  FCMConfig
	// Title and Body are text/template sources (see Template).
	Title string `env:"PUSH_TITLE"`
	Body  string `env:"PUSH_BODY"`
	// CollapseWindow: after a push to a node, further messages for it within
	// the window send nothing more (the device already shows one).
	CollapseWindow time.Duration `env:"PUSH_COLLAPSE_WINDOW" envDefault:"30s"`
	// AckWait is how long an event may be in a worker's hands before the
	// queue gives it to another worker (a crashed worker's events come back).
	AckWait    time.Duration `env:"PUSH_ACK_WAIT" envDefault:"60s"`
	MaxRetries int           `env:"PUSH_MAX_RETRIES" envDefault:"8"`
	Batch      int           `env:"PUSH_BATCH" envDefault:"100"`
}

// Enabled reports whether any provider is configured.
func (c Config) Enabled() bool { return c.APNs.Enabled() || c.FCM.Enabled() }

// Deps are the worker's collaborators.
type Deps struct {
	JS        jetstream.JetStream
	Subjects  bus.Subjects
	Tokens    *Tokens
	Providers map[Platform]Provider
	Metrics   prometheus.Registerer // nil: not exported
	Logger    *slog.Logger
	Now       func() time.Time
	Replicas  int
}

// Worker turns undelivered-message events into notifications. Several
// workers may run: the events are a work queue, so each goes to one.
//
// Collapse rule: the events of one fetched batch are grouped by node, and a
// node gets at most one notification per group, counting the messages. A
// node notified within CollapseWindow (by any worker: the mark is a KV key
// with that TTL) gets none. The mark is written after a successful send,
// so a crash can cause a duplicate notification, never a missing one.
type Worker struct {
	cfg      Config
	d        Deps
	tmpl     Template
	collapse jetstream.KeyValue
	cons     jetstream.Consumer
	m        metrics
}

type metrics struct {
	sent      *prometheus.CounterVec
	failed    *prometheus.CounterVec
	removed   prometheus.Counter
	collapsed prometheus.Counter
	lag       prometheus.Gauge
}

// ConsumerName is the durable consumer every worker shares.
const ConsumerName = "allspark-push"

// NewWorker prepares a worker: it binds the queue and the collapse bucket.
func NewWorker(ctx context.Context, cfg Config, d Deps) (*Worker, error) {
	tmpl, err := ParseTemplate(cfg.Title, cfg.Body)
	if err != nil {
		return nil, err
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Worker{cfg: cfg, d: d, tmpl: tmpl}
	w.collapse, err = d.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: d.Subjects.Prefix() + "_push_collapse", Description: "AllSpark push collapse marks",
		TTL: max(cfg.CollapseWindow, time.Second), Storage: jetstream.MemoryStorage, Replicas: max(d.Replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open push collapse bucket: %w", err)
	}
	w.cons, err = d.JS.CreateOrUpdateConsumer(ctx, bus.UndeliveredStreamName(d.Subjects), jetstream.ConsumerConfig{
		Durable: ConsumerName, AckPolicy: jetstream.AckExplicitPolicy, AckWait: cfg.AckWait, MaxAckPending: 10_000,
	})
	if err != nil {
		return nil, fmt.Errorf("bind undelivered queue: %w", err)
	}
	w.m = metrics{
		sent:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_push_sent_total", Help: "Notifications accepted by a provider."}, []string{"platform"}),
		failed:    prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_push_failed_total", Help: "Notifications that failed for good, by reason."}, []string{"platform", "reason"}),
		removed:   prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_push_invalid_tokens_removed_total", Help: "Device tokens removed because the provider called them invalid."}),
		collapsed: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_push_collapsed_total", Help: "Events that sent no notification because one was sent recently."}),
		lag:       prometheus.NewGauge(prometheus.GaugeOpts{Name: "allspark_push_queue_lag", Help: "Undelivered events waiting for a push worker."}),
	}
	if d.Metrics != nil {
		for _, c := range []prometheus.Collector{w.m.sent, w.m.failed, w.m.removed, w.m.collapsed, w.m.lag} {
			if err := d.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("register push metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Run handles events until ctx ends. Events in hand when ctx ends are not
// acked and return to the queue after AckWait.
func (w *Worker) Run(ctx context.Context) error {
	for ctx.Err() == nil {
		fctx, cancel := context.WithTimeout(ctx, time.Second) // FetchMaxWait and FetchContext exclude each other
		batch, err := w.cons.Fetch(w.cfg.Batch, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			w.d.Logger.Warn("fetch undelivered events", "err", err)
			sleep(ctx, time.Second)
			continue
		}
		groups := map[string][]jetstream.Msg{}
		var order []string
		for msg := range batch.Messages() {
			var ev bus.UndeliveredEvent
			if err := json.Unmarshal(msg.Data(), &ev); err != nil || ev.NodeID == "" {
				w.d.Logger.Warn("dropping malformed undelivered event", "err", err)
				_ = msg.Term()
				continue
			}
			if _, ok := groups[ev.NodeID]; !ok {
				order = append(order, ev.NodeID)
			}
			groups[ev.NodeID] = append(groups[ev.NodeID], msg)
		}
		cancel()
		for _, node := range order {
			if ctx.Err() != nil {
				return nil
			}
			w.handle(ctx, node, groups[node])
		}
		if info, err := w.cons.Info(ctx); err == nil {
			w.m.lag.Set(float64(info.NumPending + uint64(info.NumAckPending)))
		}
	}
	return nil
}

// handle notifies node once for msgs, then acks them. Acks happen only
// after a final outcome (sent, collapsed, no tokens, or failed for good).
func (w *Worker) handle(ctx context.Context, node string, msgs []jetstream.Msg) {
	key := bus.Token(node)
	if _, err := w.collapse.Get(ctx, key); err == nil {
		w.m.collapsed.Add(float64(len(msgs)))
		ackAll(msgs)
		return
	}
	tokens, err := w.d.Tokens.List(ctx, node)
	if err != nil {
		w.d.Logger.Warn("read push tokens", "node", node, "err", err)
		return // not acked: the events come back after AckWait
	}
	var ev bus.UndeliveredEvent
	_ = json.Unmarshal(msgs[0].Data(), &ev)
	title, body := w.tmpl.render(ev.Message, len(msgs))
	n := Notification{Title: title, Body: body, CollapseKey: key,
		Data: map[string]string{"msg_id": ev.MsgID, "count": fmt.Sprint(len(msgs))}}
	sent := false
	for _, t := range tokens {
		p := w.d.Providers[t.Platform]
		if p == nil {
			continue // platform not configured on this worker
		}
		n.Token = t.Token
		err := w.sendWithRetry(ctx, p, n, msgs)
		if ctx.Err() != nil {
			return // stopping: leave the events to be redelivered
		}
		switch {
		case err == nil:
			sent = true
			w.m.sent.WithLabelValues(string(t.Platform)).Inc()
		case errors.Is(err, ErrInvalidToken):
			w.m.failed.WithLabelValues(string(t.Platform), failureReason(err)).Inc()
			if rerr := w.d.Tokens.Remove(ctx, node, t.Token); rerr == nil {
				w.m.removed.Inc()
			}
		default:
			w.m.failed.WithLabelValues(string(t.Platform), failureReason(err)).Inc()
			w.d.Logger.Warn("push failed", "node", node, "platform", t.Platform, "err", err)
		}
	}
	if sent {
		_, _ = w.collapse.Put(ctx, key, []byte("1"))
	}
	ackAll(msgs)
}

// sendWithRetry retries transient failures with exponential backoff (or
// the provider's Retry-After), keeping the events from being redelivered
// meanwhile.
func (w *Worker) sendWithRetry(ctx context.Context, p Provider, n Notification, msgs []jetstream.Msg) error {
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := p.Send(ctx, n)
		var re *RetryError
		if err == nil || !errors.As(err, &re) || attempt >= w.cfg.MaxRetries {
			return err
		}
		wait := backoff
		if re.After > 0 {
			wait = min(re.After, 5*time.Minute)
		}
		backoff = min(2*backoff, 30*time.Second)
		// Wait in steps shorter than AckWait, telling the queue the events
		// are still being worked on, so no other worker takes them meanwhile.
		for wait > 0 {
			for _, m := range msgs {
				_ = m.InProgress()
			}
			step := min(wait, w.cfg.AckWait/2)
			if !sleep(ctx, step) {
				return ctx.Err()
			}
			wait -= step
		}
	}
}

func ackAll(msgs []jetstream.Msg) {
	for _, m := range msgs {
		_ = m.Ack()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
