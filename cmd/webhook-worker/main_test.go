package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func envOf(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestConfigErrorsNameTheVariable(t *testing.T) {
	for want, env := range map[string]map[string]string{
		"ALLSPARK_NATS_URL":       {"ALLSPARK_WEBHOOK_URL": "http://127.0.0.1:1/", "ALLSPARK_WEBHOOK_SECRET": "0123456789abcdef"},
		"ALLSPARK_WEBHOOK_URL":    {"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_WEBHOOK_SECRET": "0123456789abcdef"},
		"ALLSPARK_WEBHOOK_SECRET": {"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_WEBHOOK_URL": "http://127.0.0.1:1/", "ALLSPARK_WEBHOOK_SECRET": "short"},
		"ALLSPARK_WEBHOOK_BATCH_SIZE": {"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_WEBHOOK_URL": "http://127.0.0.1:1/",
			"ALLSPARK_WEBHOOK_SECRET": "0123456789abcdef", "ALLSPARK_WEBHOOK_BATCH_SIZE": "0"},
	} {
		err := run(context.Background(), nil, envOf(env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("want an error naming %s, got %v", want, err)
		}
	}
}

// The worker forwards an event published by an edge to the endpoint.
func TestForwardsEvents(t *testing.T) {
	ns := testutil.RunNATS(t)
	got := make(chan webhook.Body, 4)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		if err := webhook.Verify("0123456789abcdef", r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), b, time.Now(), time.Minute); err != nil {
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		var body webhook.Body
		_ = json.Unmarshal(b, &body)
		got <- body
	}))
	defer hook.Close()
	nc := testutil.Connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	if _, err := bus.OpenEventsStream(t.Context(), js, subj, bus.EventsConfig{MaxAge: time.Hour}); err != nil {
		t.Fatal(err)
	}
	bus.NewEvents(nc, subj, "e1", time.Now, testutil.Logger(t)).NodePresence("alice", true)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, nil, envOf(map[string]string{"ALLSPARK_NATS_URL": ns.ClientURL(), "ALLSPARK_WEBHOOK_URL": hook.URL,
			"ALLSPARK_WEBHOOK_SECRET": "0123456789abcdef", "ALLSPARK_METRICS_LISTEN": "127.0.0.1:0", "ALLSPARK_WEBHOOK_BATCH_WAIT": "20ms"}), io.Discard)
	}()
	select {
	case b := <-got:
		if len(b.Events) != 1 || b.Events[0].Type != "node.online" || !strings.Contains(string(b.Events[0].Data), `"alice"`) {
			t.Fatalf("got %+v", b)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("no webhook request within 30s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
