package webhook_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// ALLSPARK_WEBHOOK_TIMEOUT: a request the endpoint does not answer within
// it counts as failed and is retried; the retry (answered at once)
// delivers the same batch.
func TestWebhookTimeoutRetries(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	if _, err := bus.OpenEventsStream(t.Context(), js, subj, bus.EventsConfig{Replicas: 1, MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	var deliveries []string // guarded by mu: the delivery header of every request
	cut := make(chan struct{}, 1)
	release := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		deliveries = append(deliveries, r.Header.Get(webhook.HeaderDelivery))
		first := len(deliveries) == 1
		mu.Unlock()
		if first {
			// Never answered: only the client's timeout ends it. The body
			// is read first, so the server notices the client hanging up.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
				cut <- struct{}{}
			case <-release:
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(hook.Close)
	t.Cleanup(func() { close(release) }) // runs before hook.Close

	reg := prometheus.NewRegistry()
	f, err := webhook.New(webhook.Config{URL: hook.URL, Secret: "webhook-test-secret-0123", BatchSize: 10, BatchWait: 20 * time.Millisecond,
		Timeout: 300 * time.Millisecond, MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Consumer: "webhook"},
		webhook.Deps{JS: js, Subjects: subj, Logger: testutil.Logger(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })

	if _, err := js.Publish(t.Context(), subj.Event("node.online"), []byte(`{"node_id":"bob"}`)); err != nil {
		t.Fatal(err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := testutil.CounterValue(t, reg, "allspark_webhook_delivered_events_total"); got != 1 {
			return fmt.Errorf("%v events delivered, want 1 after the unanswered request timed out", got)
		}
		return nil
	})
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the unanswered request was not cut by the client")
	}
	if got := testutil.CounterValue(t, reg, "allspark_webhook_retries_total"); got != 1 {
		t.Fatalf("%v retries, want 1 (the timed-out request)", got)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(deliveries) != 2 || deliveries[0] != deliveries[1] {
		t.Fatalf("deliveries %v, want the same batch twice", deliveries)
	}
}
