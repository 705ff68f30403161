package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// Batch is the most events one fetch takes.
	Batch int `env:"PUSH_BATCH" envDefault:"100"`
	// Concurrency is how many nodes a worker notifies at once, counting
	// those waiting out a provider's backoff. When all are busy the worker
	// fetches nothing more; the events wait in the queue (for any worker).
	Concurrency int `env:"PUSH_CONCURRENCY" envDefault:"100"`
}

// Validate checks the numbers a worker cannot run without.
func (c Config) Validate() error {
	switch {
	case c.Concurrency < 1:
		return fmt.Errorf("ALLSPARK_PUSH_CONCURRENCY: %d, want at least 1", c.Concurrency)
	case c.Batch < 1:
		return fmt.Errorf("ALLSPARK_PUSH_BATCH: %d, want at least 1", c.Batch)
	case c.AckWait < 2*time.Millisecond:
		// InProgress goes out every AckWait/2.
		return fmt.Errorf("ALLSPARK_PUSH_ACK_WAIT: %s, want at least 2ms", c.AckWait)
	}
	return nil
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
	sent        *prometheus.CounterVec
	failed      *prometheus.CounterVec
	removed     prometheus.Counter
	collapsed   prometheus.Counter
	redelivered prometheus.Counter
	lag         prometheus.Gauge
}

// ConsumerName is the durable consumer every worker shares.
const ConsumerName = "allspark-push"

// NewWorker prepares a worker: it binds the queue and the collapse bucket.
func NewWorker(ctx context.Context, cfg Config, d Deps) (*Worker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
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
		redelivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_push_redelivered_total",
			Help: "Events handed to a worker more than once (a worker died, or held them past AckWait)."}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{Name: "allspark_push_queue_lag", Help: "Undelivered events waiting for a push worker."}),
	}
	if d.Metrics != nil {
		for _, c := range []prometheus.Collector{w.m.sent, w.m.failed, w.m.removed, w.m.collapsed, w.m.redelivered, w.m.lag} {
			if err := d.Metrics.Register(c); err != nil {
				return nil, fmt.Errorf("register push metrics: %w", err)
			}
		}
	}
	return w, nil
}

// Run handles events until ctx ends. Events in hand when ctx ends are not
// acked and return to the queue after AckWait.
//
// Node groups are handled concurrently, at most Concurrency at a time, so
// one node's backoff never holds another node's events past AckWait. A
// group is in flight until its events are acked; events fetched for a node
// whose group is in flight join that group (one notification, and no
// second send to a provider that asked for a pause). The worker fetches no
// more events than it has free slots, so an event never waits in its
// hands for a slot: when every slot is busy, events stay in the queue for
// other workers.
func (w *Worker) Run(ctx context.Context) error {
	inflight := map[string]*group{} // only this goroutine reads or writes it
	// Buffered so a finishing group rarely waits for Run; once ctx ends
	// nobody reads it, so a group then gives up on reporting.
	done := make(chan *group, w.cfg.Concurrency)
	var wg sync.WaitGroup
	defer wg.Wait() // events of groups stopped by ctx stay unacked
	reap := func(g *group) {
		if inflight[g.node] == g {
			delete(inflight, g.node)
		}
	}
	for ctx.Err() == nil {
		for drained := false; !drained; {
			select {
			case g := <-done:
				reap(g)
			default:
				drained = true
			}
		}
		free := w.cfg.Concurrency - len(inflight)
		if free <= 0 {
			select {
			case g := <-done:
				reap(g)
			case <-ctx.Done():
			}
			continue
		}
		order, groups, ok := w.fetch(ctx, min(w.cfg.Batch, free))
		if !ok {
			continue
		}
		for _, node := range order {
			if g := inflight[node]; g != nil && g.join(groups[node]) {
				continue
			}
			g := &group{node: node, msgs: groups[node]}
			inflight[node] = g
			wg.Add(1)
			go func() {
				defer wg.Done()
				w.handle(ctx, g)
				select {
				case done <- g:
				case <-ctx.Done():
				}
			}()
		}
		if info, err := w.cons.Info(ctx); err == nil {
			w.m.lag.Set(float64(info.NumPending + uint64(info.NumAckPending)))
		}
	}
	return nil
}

// fetch takes up to n events and groups them by node, in arrival order.
// ok is false when nothing was fetched because of an error.
func (w *Worker) fetch(ctx context.Context, n int) (order []string, groups map[string][]jetstream.Msg, ok bool) {
	fctx, cancel := context.WithTimeout(ctx, time.Second) // FetchMaxWait and FetchContext exclude each other
	defer cancel()
	batch, err := w.cons.Fetch(n, jetstream.FetchContext(fctx))
	if err != nil {
		if ctx.Err() == nil {
			w.d.Logger.Warn("fetch undelivered events", "err", err)
			sleep(ctx, time.Second)
		}
		return nil, nil, false
	}
	groups = map[string][]jetstream.Msg{}
	for msg := range batch.Messages() {
		if md, err := msg.Metadata(); err == nil && md.NumDelivered > 1 {
			w.m.redelivered.Inc()
		}
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
	return order, groups, true
}

// handle notifies g's node once, then acks its events. Acks happen only
// after a final outcome (sent, collapsed, no tokens, or failed for good).
func (w *Worker) handle(ctx context.Context, g *group) {
	node, msgs := g.node, g.snapshot()
	key := bus.Token(node)
	if _, err := w.collapse.Get(ctx, key); err == nil {
		acked := g.close()
		w.m.collapsed.Add(float64(len(acked)))
		ackAll(acked)
		return
	}
	tokens, err := w.d.Tokens.List(ctx, node)
	if err != nil {
		w.d.Logger.Warn("read push tokens", "node", node, "err", err)
		g.close() // not acked: the events come back after AckWait
		return
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
		err := w.sendWithRetry(ctx, p, n, g)
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
		// Before close: events fetched from now on start a new group,
		// which must find the mark.
		_, _ = w.collapse.Put(ctx, key, []byte("1"))
	}
	acked := g.close()
	// Events that joined after the notification was rendered are covered
	// by it, as a collapse would cover them.
	w.m.collapsed.Add(float64(len(acked) - len(msgs)))
	ackAll(acked)
}

// sendWithRetry retries transient failures with exponential backoff (or
// the provider's Retry-After).
//
// While it waits, it keeps g's events alive with InProgress rather than
// NakWithDelay-ing them: the progress of this notification (which of the
// node's devices already got it) lives only here, so a redelivered event
// would either notify those devices twice or, finding the collapse mark,
// skip the ones still owed; and events arriving for the node meanwhile
// join g instead of being sent at once, against the provider's
// Retry-After. The cost is one of Concurrency slots held for the wait;
// the other groups run in theirs. A worker that dies mid-wait stops
// sending InProgress, and its events come back after AckWait.
func (w *Worker) sendWithRetry(ctx context.Context, p Provider, n Notification, g *group) error {
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
			for _, m := range g.snapshot() {
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
