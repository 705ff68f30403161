package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// Deps are what a Forwarder works with; the caller owns their lifetime.
type Deps struct {
	JS       jetstream.JetStream
	Subjects bus.Subjects
	HTTP     *http.Client // nil: a client with Config.Timeout
	Logger   *slog.Logger
	Metrics  prometheus.Registerer // nil: not exported
	Now      func() time.Time      // nil: time.Now
}

// Body is what the endpoint receives.
type Body struct {
	Events []Item `json:"events"`
}

// Item is one event: its kind, its sequence in the events stream
// (increasing; a receiver may use it to drop duplicates) and the event as
// published on NATS.
type Item struct {
	Type string          `json:"type"`
	Seq  uint64          `json:"seq"`
	Data json.RawMessage `json:"data"`
}

// Forwarder posts the events stream to the endpoint.
type Forwarder struct {
	cfg  Config
	d    Deps
	hc   *http.Client
	cons jetstream.Consumer
	// metrics
	delivered prometheus.Counter
	dead      prometheus.Counter
	retries   prometheus.Counter
	posts     *prometheus.CounterVec
}

// ackWait is how long a fetched batch stays ours without a sign of life;
// the forwarder reports progress before every attempt.
func (c Config) ackWait() time.Duration { return max(30*time.Second, 2*c.Timeout+c.MaxBackoff) }

// New validates cfg and registers the metrics. It does no I/O.
func New(cfg Config, d Deps) (*Forwarder, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if d.Logger == nil {
		d.Logger = slog.New(slog.DiscardHandler)
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	f := &Forwarder{cfg: cfg, d: d, hc: d.HTTP,
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_webhook_delivered_events_total",
			Help: "Events the webhook endpoint accepted (2xx)."}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_webhook_dead_letter_events_total",
			Help: "Events dropped because the endpoint refused their batch with a 4xx other than 429 (not retried)."}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{Name: "allspark_webhook_retries_total",
			Help: "Batch posts retried after a network error, 429 or 5xx."}),
		posts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "allspark_webhook_posts_total",
			Help: "Webhook requests by outcome (ok, retry, dead_letter)."}, []string{"outcome"}),
	}
	if f.hc == nil {
		f.hc = &http.Client{Timeout: cfg.Timeout}
	}
	if d.Metrics != nil {
		if err := errors.Join(d.Metrics.Register(f.delivered), d.Metrics.Register(f.dead),
			d.Metrics.Register(f.retries), d.Metrics.Register(f.posts)); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return f, nil
}

// bind creates or updates the durable consumer, waiting for the events
// stream (the edges create it) until ctx ends.
func (f *Forwarder) bind(ctx context.Context) error {
	for {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cons, err := f.d.JS.CreateOrUpdateConsumer(cctx, bus.EventsStreamName(f.d.Subjects), jetstream.ConsumerConfig{
			Durable:     f.cfg.Consumer,
			Description: "AllSpark webhook forwarder",
			AckPolicy:   jetstream.AckAllPolicy,
			AckWait:     f.cfg.ackWait(),
			// At most one batch's worth of events in flight across the
			// forwarders sharing the consumer; one forwarder posts its
			// batches in stream order.
			MaxAckPending: f.cfg.BatchSize,
			MaxDeliver:    -1,
		})
		cancel()
		if err == nil {
			f.cons = cons
			return nil
		}
		f.d.Logger.Warn("waiting for the events stream (start an edge with ALLSPARK_EVENTS=true)", "err", err)
		select {
		case <-ctx.Done():
			return fmt.Errorf("bind webhook consumer: %w", err)
		case <-time.After(time.Second):
		}
	}
}

// Run forwards events until ctx ends. A batch being retried when ctx ends
// is not acked, so the next forwarder sends it again.
func (f *Forwarder) Run(ctx context.Context) error {
	if err := f.bind(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	for ctx.Err() == nil {
		// A batch fills for at most BatchWait; ending ctx ends the wait.
		fctx, cancel := context.WithTimeout(ctx, f.cfg.BatchWait)
		batch, err := f.cons.Fetch(f.cfg.BatchSize, jetstream.FetchContext(fctx))
		if err != nil {
			cancel()
			if ctx.Err() != nil {
				return nil
			}
			f.d.Logger.Warn("fetch events", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
			if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrConsumerDeleted) {
				// The stream was recreated: bind again.
				if err := f.bind(ctx); err != nil && ctx.Err() == nil {
					return err
				}
			}
			continue
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if err := batch.Error(); err != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
			f.d.Logger.Debug("fetch ended", "err", err)
		}
		cancel()
		if len(msgs) > 0 {
			f.forward(ctx, msgs)
		}
	}
	return nil
}

// forward posts msgs until the endpoint takes or refuses them, then acks.
func (f *Forwarder) forward(ctx context.Context, msgs []jetstream.Msg) {
	body := Body{Events: make([]Item, 0, len(msgs))}
	var first, last uint64
	for i, m := range msgs {
		md, err := m.Metadata()
		seq := uint64(0)
		if err == nil {
			seq = md.Sequence.Stream
		}
		if i == 0 {
			first = seq
		}
		last = seq
		kind := strings.TrimPrefix(m.Subject(), f.d.Subjects.Prefix()+".events.")
		data := json.RawMessage(m.Data())
		if !json.Valid(data) {
			data, _ = json.Marshal(string(m.Data()))
		}
		body.Events = append(body.Events, Item{Type: kind, Seq: seq, Data: data})
	}
	b, _ := json.Marshal(body)
	delivery := strconv.FormatUint(first, 10) + "-" + strconv.FormatUint(last, 10)
	backoff := f.cfg.MinBackoff
	for {
		for _, m := range msgs {
			_ = m.InProgress() // still ours: do not redeliver while we retry
		}
		status, retryAfter, err := f.post(ctx, b, delivery)
		switch {
		case ctx.Err() != nil:
			return
		case err == nil && status/100 == 2:
			f.posts.WithLabelValues("ok").Inc()
			f.delivered.Add(float64(len(msgs)))
			f.ack(msgs)
			return
		case err == nil && status/100 == 4 && status != http.StatusTooManyRequests:
			f.posts.WithLabelValues("dead_letter").Inc()
			f.dead.Add(float64(len(msgs)))
			f.d.Logger.Error("webhook endpoint refused a batch; dropping it", "status", status, "events", len(msgs), "delivery", delivery)
			f.ack(msgs)
			return
		}
		f.posts.WithLabelValues("retry").Inc()
		f.retries.Inc()
		wait := backoff
		if retryAfter > wait && retryAfter <= f.cfg.MaxBackoff {
			wait = retryAfter
		}
		f.d.Logger.Warn("webhook post failed; retrying", "status", status, "err", err, "in", wait, "delivery", delivery)
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		backoff = min(2*backoff, f.cfg.MaxBackoff)
	}
}

// ack acknowledges the batch: with AckAll, its last message covers all.
func (f *Forwarder) ack(msgs []jetstream.Msg) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := msgs[len(msgs)-1].DoubleAck(ctx); err != nil {
		f.d.Logger.Warn("ack webhook batch", "err", err)
	}
}

// post sends one signed request and returns its status and Retry-After.
func (f *Forwarder) post(ctx context.Context, body []byte, delivery string) (int, time.Duration, error) {
	ts := f.d.Now().Unix()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, f.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("build webhook request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "allspark-webhook/1")
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	req.Header.Set(HeaderSignature, Sign(f.cfg.Secret, ts, body))
	req.Header.Set(HeaderDelivery, delivery)
	resp, err := f.hc.Do(req)
	if err != nil {
		return 0, 0, fmt.Errorf("post webhook: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	var ra time.Duration
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
		ra = time.Duration(s) * time.Second
	}
	return resp.StatusCode, ra, nil
}
