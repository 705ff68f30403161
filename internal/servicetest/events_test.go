package servicetest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/allspark-rt/allspark/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

const hookSecret = "webhook-secret-0123456789"

// eventLog collects events per node, deduplicated by event id.
type eventLog struct {
	mu     sync.Mutex
	seen   map[string]bool
	byNode map[string][]string // node -> kinds in arrival order
	kinds  map[string]int
}

func newEventLog() *eventLog {
	return &eventLog{seen: map[string]bool{}, byNode: map[string][]string{}, kinds: map[string]int{}}
}

func (l *eventLog) add(kind string, data []byte) {
	var ev struct {
		ID     string `json:"id"`
		NodeID string `json:"node_id"`
		MsgID  string `json:"msg_id"`
	}
	_ = json.Unmarshal(data, &ev)
	key := kind + "/" + ev.ID + "/" + ev.MsgID
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seen[key] {
		return
	}
	l.seen[key] = true
	l.byNode[ev.NodeID] = append(l.byNode[ev.NodeID], kind)
	l.kinds[kind]++
}

func (l *eventLog) count(kind string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.kinds[kind]
}

func (l *eventLog) node(n string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.byNode[n]...)
}

// receiver is a webhook endpoint that verifies signatures and can be down.
type receiver struct {
	t        *testing.T
	log      *eventLog
	down     atomic.Bool
	status   atomic.Int32 // answer while down
	requests atomic.Int64
	badSig   atomic.Int64
	srv      *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{t: t, log: newEventLog()}
	r.status.Store(http.StatusServiceUnavailable)
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.requests.Add(1)
		body, _ := io.ReadAll(req.Body)
		if err := webhook.Verify(hookSecret, req.Header.Get(webhook.HeaderTimestamp), req.Header.Get(webhook.HeaderSignature),
			body, time.Now(), 5*time.Minute); err != nil {
			r.badSig.Add(1)
			http.Error(w, err.Error(), http.StatusUnauthorized)
			return
		}
		if r.down.Load() {
			w.WriteHeader(int(r.status.Load()))
			return
		}
		var b webhook.Body
		if err := json.Unmarshal(body, &b); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		for _, it := range b.Events {
			r.log.add(it.Type, it.Data)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (c *cluster) forwarder(t *testing.T, url string, reg prometheus.Registerer) {
	t.Helper()
	nc, err := bus.Connect(bus.NATSUser{Name: svcUser, Password: svcPass}.URL(c.ns.ClientURL()), "webhook", testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	f, err := webhook.New(webhook.Config{URL: url, Secret: hookSecret, BatchSize: 100, BatchWait: 50 * time.Millisecond,
		Timeout: 5 * time.Second, MinBackoff: 20 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Consumer: "webhook"},
		webhook.Deps{JS: js, Subjects: subj, Logger: testutil.Logger(t), Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = f.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done; nc.Close() })
}

// post makes an authenticated session call and fails on a non-2xx answer.
func (c *cluster) post(t *testing.T, e *testEdge, node, path string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base()+path, bytes.NewReader(nil))
	req.Header.Set("Authorization", "Bearer "+c.authKey(node))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("POST %s as %s: %d %s", path, node, resp.StatusCode, b)
	}
}

func waitCount(t *testing.T, what string, l *eventLog, kind string, n int) {
	t.Helper()
	testutil.Eventually(t, 60*time.Second, func() error {
		if got := l.count(kind); got < n {
			l.mu.Lock()
			defer l.mu.Unlock()
			return fmt.Errorf("%s: %d %s events, want %d (have %v)", what, got, kind, n, l.kinds)
		}
		return nil
	})
}

// alternates checks that kinds alternate a, b, a, b ... n times each.
func alternates(t *testing.T, where, node string, kinds []string, a, b string, n int) {
	t.Helper()
	var got []string
	for _, k := range kinds {
		if k == a || k == b {
			got = append(got, k)
		}
	}
	if len(got) != 2*n {
		t.Errorf("%s: node %s has %d %s/%s events, want %d: %v", where, node, len(got), a, b, 2*n, got)
		return
	}
	for i, k := range got {
		want := a
		if i%2 == 1 {
			want = b
		}
		if k != want {
			t.Errorf("%s: node %s event %d is %s, want %s (%v)", where, node, i, k, want, got)
			return
		}
	}
}

// Issue 14, acceptance 3: node online/offline and session join/unjoin
// events arrive in order per node at a NATS subscriber (the backend user)
// and at a webhook receiver that verifies the signature, also after the
// receiver was down for the duration of 1,000 events; stored messages
// produce message.stored.
func TestLifecycleEventsReachNATSAndWebhookInOrder(t *testing.T) {
	c := newCluster(t)
	e := c.edge("e1")
	be := c.backend()
	natsLog := newEventLog()
	// The backend role reads node and session events; message.stored (it
	// carries the message) reaches it through the webhook only, and a
	// service-role subscriber (the edge's own kind) sees it on NATS.
	sub, err := c.service().Subscribe("allspark.events.>", func(m *nats.Msg) {
		natsLog.add(strings.TrimPrefix(m.Subject, "allspark.events."), m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	// The backend role gets the node events itself.
	beLog := newEventLog()
	if _, err := be.Subscribe("allspark.events.node.*", func(m *nats.Msg) {
		beLog.add(strings.TrimPrefix(m.Subject, "allspark.events."), m.Data)
	}); err != nil {
		t.Fatal(err)
	}
	if err := be.Flush(); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	reg := prometheus.NewRegistry()
	c.forwarder(t, rcv.srv.URL, reg)

	// Online / offline, three times, each waited for (presence decides
	// after a scatter-gather).
	const cycles = 3
	for i := range cycles {
		cl := c.dial(e, "walker")
		waitCount(t, "nats", natsLog, bus.EventNodeOnline, i+1)
		cl.Close()
		waitCount(t, "nats", natsLog, bus.EventNodeOffline, i+1)
		waitCount(t, "backend", beLog, bus.EventNodeOffline, i+1)
	}
	c.post(t, e, "host", "/v1/sessions?session_id=room")
	waitCount(t, "webhook", rcv.log, bus.EventSessionCreated, 1)

	// Endpoint down while 1,000 join/unjoin events happen.
	rcv.down.Store(true)
	const nodes, pairs = 5, 100
	var wg sync.WaitGroup
	for n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("member-%d", n)
			for range pairs {
				c.post(t, e, node, "/v1/sessions/room/join")
				c.post(t, e, node, "/v1/sessions/room/unjoin")
			}
		}()
	}
	wg.Wait()
	waitCount(t, "nats", natsLog, bus.EventSessionUnjoined, nodes*pairs)
	if rcv.log.count(bus.EventSessionJoined) != 0 {
		t.Fatal("the endpoint was down but took events")
	}
	// A message for an offline node: message.stored.
	cl := c.dial(e, "sender")
	cl.Send(t, map[string]any{"id": "m", "dest_id": "walker", "payload": 1})
	if f := cl.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" }); f.Status != "stored" {
		t.Fatalf("message to an offline node: %s", f.Raw)
	}
	waitCount(t, "nats", natsLog, bus.EventMessageStored, 1)
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := rcv.requests.Load(); n < 3 {
			return fmt.Errorf("forwarder has tried %d times while down", n)
		}
		return nil
	})
	rcv.down.Store(false)
	waitCount(t, "webhook", rcv.log, bus.EventSessionUnjoined, nodes*pairs)
	waitCount(t, "webhook", rcv.log, bus.EventMessageStored, 1)
	waitCount(t, "webhook", rcv.log, bus.EventNodeOffline, cycles)

	for where, l := range map[string]*eventLog{"nats": natsLog, "webhook": rcv.log} {
		alternates(t, where, "walker", l.node("walker"), bus.EventNodeOnline, bus.EventNodeOffline, cycles)
		for n := range nodes {
			node := fmt.Sprintf("member-%d", n)
			alternates(t, where, node, l.node(node), bus.EventSessionJoined, bus.EventSessionUnjoined, pairs)
		}
	}
	if n := rcv.badSig.Load(); n != 0 {
		t.Fatalf("%d webhook requests failed signature verification", n)
	}
	if n := testutil.CounterValue(t, reg, "allspark_webhook_retries_total"); n < 3 {
		t.Fatalf("retries counted: %v", n)
	}
	if n := testutil.CounterValue(t, reg, "allspark_webhook_dead_letter_events_total"); n != 0 {
		t.Fatalf("dead letters: %v", n)
	}
}

// Issue 14, bad input: a 4xx other than 429 is not retried and the batch
// is counted as dead letters; a 429 is retried.
func TestWebhookRefusedBatchIsDeadLettered(t *testing.T) {
	c := newCluster(t)
	e := c.edge("e1")
	rcv := newReceiver(t)
	reg := prometheus.NewRegistry()
	rcv.status.Store(http.StatusTooManyRequests)
	rcv.down.Store(true)
	c.forwarder(t, rcv.srv.URL, reg)

	c.post(t, e, "host", "/v1/sessions?session_id=first")
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := rcv.requests.Load(); n < 2 {
			return fmt.Errorf("429: %d attempts, want a retry", n)
		}
		return nil
	})
	rcv.status.Store(http.StatusBadRequest)
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := testutil.CounterValue(t, reg, "allspark_webhook_dead_letter_events_total"); n != 1 {
			return fmt.Errorf("%v dead-letter events, want 1", n)
		}
		return nil
	})
	attempts := rcv.requests.Load()
	// Barrier: the next event arrives only after the refused batch was
	// acked; had it been retried, requests would have grown before.
	rcv.down.Store(false)
	c.post(t, e, "host", "/v1/sessions?session_id=second")
	waitCount(t, "webhook", rcv.log, bus.EventSessionCreated, 1)
	if n := rcv.requests.Load(); n != attempts+1 {
		t.Fatalf("%d requests after the 400, want exactly one more (the next batch): the refused batch was retried", n-attempts)
	}
}

// A receiver with another secret refuses every request (401): the
// signature covers the body and timestamp.
func TestWebhookSignature(t *testing.T) {
	body := []byte(`{"events":[]}`)
	now := time.Unix(1_800_000_000, 0)
	sig := webhook.Sign(hookSecret, now.Unix(), body)
	ts := fmt.Sprint(now.Unix())
	if err := webhook.Verify(hookSecret, ts, sig, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other secret":  webhook.Verify("another-secret-0123456789", ts, sig, body, now, time.Minute),
		"other body":    webhook.Verify(hookSecret, ts, sig, []byte(`{"events":[1]}`), now, time.Minute),
		"replayed late": webhook.Verify(hookSecret, ts, sig, body, now.Add(2*time.Minute), time.Minute),
		"other ts":      webhook.Verify(hookSecret, fmt.Sprint(now.Unix()+1), sig, body, now, time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: verified", name)
		}
	}
}

// Node events are decided after a presence scatter-gather each; a node
// that connects and disconnects quickly still gets its online/offline
// events in the order it did so.
func TestNodeEventsKeepOrderUnderChurn(t *testing.T) {
	c := newCluster(t)
	e := c.edge("e1")
	l := newEventLog()
	be := c.backend()
	sub, err := be.Subscribe("allspark.events.node.*", func(m *nats.Msg) {
		l.add(strings.TrimPrefix(m.Subject, "allspark.events."), m.Data)
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := be.Flush(); err != nil {
		t.Fatal(err)
	}
	const cycles = 20
	for range cycles {
		cl := c.dial(e, "churner")
		cl.Close()
		// The next connection must be the node's first again.
		testutil.Eventually(t, 10*time.Second, func() error {
			if n := e.srv.Connections(); n != 0 {
				return fmt.Errorf("edge still holds %d connections", n)
			}
			return nil
		})
	}
	waitCount(t, "nats", l, bus.EventNodeOffline, cycles)
	alternates(t, "nats", "churner", l.node("churner"), bus.EventNodeOnline, bus.EventNodeOffline, cycles)
}
