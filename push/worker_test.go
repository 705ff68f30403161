package push_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	tu "github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/push"
	"github.com/allspark-rt/allspark/push/pushtest"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type rig struct {
	t      *testing.T
	js     jetstream.JetStream
	subj   bus.Subjects
	inbox  *bus.Inbox
	tokens *push.Tokens
	apns   *pushtest.APNs
	fcm    *pushtest.FCM
}

func newRig(t *testing.T) *rig {
	t.Helper()
	ns := tu.RunNATS(t)
	nc := tu.Connect(t, ns.ClientURL())
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	inbox, err := bus.OpenInbox(t.Context(), nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 1000}, tu.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := push.OpenTokens(t.Context(), js, subj, 1, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, js: js, subj: subj, inbox: inbox, tokens: tokens, apns: pushtest.NewAPNs(t), fcm: pushtest.NewFCM(t)}
}

// worker builds a worker on the fakes, with cfg adjusted by mod.
func (r *rig) worker(reg prometheus.Registerer, mod func(*push.Config)) *push.Worker {
	r.t.Helper()
	cfg := push.Config{APNs: r.apns.Config, FCM: r.fcm.Config, CollapseWindow: time.Minute, AckWait: 5 * time.Second, MaxRetries: 5, Batch: 100, Concurrency: 100}
	if mod != nil {
		mod(&cfg)
	}
	ap, err := push.NewAPNs(cfg.APNs, r.apns.Client)
	if err != nil {
		r.t.Fatal(err)
	}
	fp, err := push.NewFCM(r.t.Context(), cfg.FCM, r.fcm.Client)
	if err != nil {
		r.t.Fatal(err)
	}
	w, err := push.NewWorker(r.t.Context(), cfg, push.Deps{JS: r.js, Subjects: r.subj, Tokens: r.tokens,
		Providers: map[push.Platform]push.Provider{push.APNs: ap, push.FCM: fp}, Metrics: reg, Logger: tu.Logger(r.t)})
	if err != nil {
		r.t.Fatal(err)
	}
	return w
}

// run runs w until the test ends (or stop is called).
func run(t *testing.T, w *push.Worker) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = w.Run(ctx) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); wg.Wait() }) }
	t.Cleanup(stop)
	return stop
}

func (r *rig) store(node string, i int) {
	r.t.Helper()
	frame := fmt.Sprintf(`{"msg_id":"m-%s-%d","src_id":"alice","dest_id":%q,"payload":{"text":"hello %d"}}`, node, i, node, i)
	if err := r.inbox.Store(r.t.Context(), node, fmt.Sprintf("m-%s-%d", node, i), []byte(frame)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) queueEmpty() error {
	st, err := r.js.Stream(context.Background(), bus.UndeliveredStreamName(r.subj))
	if err != nil {
		return err
	}
	info, err := st.Info(context.Background())
	if err != nil {
		return err
	}
	if info.State.Msgs != 0 {
		return fmt.Errorf("%d events still queued", info.State.Msgs)
	}
	return nil
}

// Acceptance 2: a token the provider calls invalid is removed.
func TestInvalidTokensAreRemoved(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	if err := r.tokens.Add(ctx, "bob", push.APNs, "apns-gone"); err != nil {
		t.Fatal(err)
	}
	if err := r.tokens.Add(ctx, "bob", push.FCM, "fcm-gone"); err != nil {
		t.Fatal(err)
	}
	r.apns.Script(pushtest.Reply{Status: 410, Body: `{"reason":"Unregistered"}`})
	r.fcm.Script(pushtest.Reply{Status: 404, Body: pushtest.Unregistered})
	reg := prometheus.NewRegistry()
	run(t, r.worker(reg, nil))
	r.store("bob", 1)
	tu.Eventually(t, 10*time.Second, func() error {
		ts, err := r.tokens.List(ctx, "bob")
		if err != nil || len(ts) != 0 {
			return fmt.Errorf("tokens left: %v %v", ts, err)
		}
		return r.queueEmpty()
	})
	if n := tu.CounterValue(t, reg, "allspark_push_invalid_tokens_removed_total"); n != 2 {
		t.Fatalf("invalid tokens removed = %v", n)
	}
}

// Acceptance 2: 503 then 200 is delivered once, after a backoff; FCM's
// Retry-After is respected.
func TestTransientFailureIsRetried(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	_ = r.tokens.Add(ctx, "bob", push.APNs, "apns-bob")
	_ = r.tokens.Add(ctx, "bob", push.FCM, "fcm-bob")
	r.apns.Script(pushtest.Reply{Status: 503, Body: `{"reason":"ServiceUnavailable"}`})
	r.fcm.Script(pushtest.Reply{Status: 429, Body: `{"error":{"status":"RESOURCE_EXHAUSTED"}}`, RetryAfter: "1"})
	var fcmTries []time.Time
	var mu sync.Mutex
	r.fcm.OnTry(func(int) { mu.Lock(); fcmTries = append(fcmTries, time.Now()); mu.Unlock() })
	run(t, r.worker(nil, nil))
	r.store("bob", 1)
	tu.Eventually(t, 15*time.Second, func() error {
		if len(r.apns.Requests()) != 1 || len(r.fcm.Requests()) != 1 {
			return fmt.Errorf("delivered apns %d fcm %d", len(r.apns.Requests()), len(r.fcm.Requests()))
		}
		return r.queueEmpty()
	})
	if r.apns.Tries() != 2 || r.fcm.Tries() != 2 {
		t.Fatalf("tries apns %d fcm %d, want 2 each", r.apns.Tries(), r.fcm.Tries())
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := fcmTries[1].Sub(fcmTries[0]); gap < 900*time.Millisecond {
		t.Fatalf("FCM retried after %s despite Retry-After: 1", gap)
	}
}

// A burst of messages for one node sends one notification, with the count.
func TestBurstCollapsesToOneNotification(t *testing.T) {
	r := newRig(t)
	_ = r.tokens.Add(t.Context(), "bob", push.APNs, "apns-bob")
	for i := range 100 {
		r.store("bob", i)
	}
	run(t, r.worker(nil, nil))
	tu.Eventually(t, 10*time.Second, r.queueEmpty)
	reqs := r.apns.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d notifications for a burst of 100", len(reqs))
	}
	if body := fmt.Sprint(reqs[0].Body); !strings.Contains(body, "100 new messages from alice") || !strings.Contains(body, "count:100") {
		t.Fatalf("notification %v", body)
	}
}

// Acceptance 2: a worker killed mid-batch and a new one started: every
// event is handled, none lost.
func TestWorkerKilledMidBatchLosesNothing(t *testing.T) {
	r := newRig(t)
	const nodes = 20
	for i := range nodes {
		_ = r.tokens.Add(t.Context(), fmt.Sprintf("n%02d", i), push.APNs, fmt.Sprintf("tok-%02d", i))
		r.store(fmt.Sprintf("n%02d", i), 0)
	}
	short := func(c *push.Config) { c.AckWait = time.Second }
	first := r.worker(nil, short)
	ctx, kill := context.WithCancel(context.Background())
	defer kill()
	r.apns.OnTry(func(n int) {
		if n == 5 {
			kill()
		}
	})
	stopped := make(chan struct{})
	go func() { defer close(stopped); _ = first.Run(ctx) }()
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("worker never reached the 5th notification")
	}
	r.apns.OnTry(nil)
	handledBefore := len(r.apns.Requests())
	run(t, r.worker(nil, short))
	tu.Eventually(t, 15*time.Second, func() error {
		got := map[string]bool{}
		for _, q := range r.apns.Requests() {
			got[q.Token] = true
		}
		if len(got) != nodes {
			return fmt.Errorf("%d of %d nodes notified", len(got), nodes)
		}
		return r.queueEmpty()
	})
	t.Logf("killed after %d notifications; all %d nodes notified, %d notifications in all", handledBefore, nodes, len(r.apns.Requests()))
}
