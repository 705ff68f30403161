package client_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/internal/edgetest"
	"github.com/allspark-rt/allspark/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder keeps every event a client's handlers saw.
type recorder struct {
	mu       sync.Mutex
	msgs     []*client.Message        // guarded by mu
	count    map[string]int           // guarded by mu: handler calls per msg_id
	presence []client.Presence        // guarded by mu
	summary  []client.PresenceSummary // guarded by mu
	states   []client.StateChange     // guarded by mu
	errs     []error                  // guarded by mu
	hold     chan struct{}            // when set, OnMessage waits for it to close
}

func newRecorder() *recorder { return &recorder{count: map[string]int{}} }

func (r *recorder) config(cfg *client.Config) {
	cfg.OnMessage = func(_ context.Context, m *client.Message) {
		r.mu.Lock()
		r.msgs = append(r.msgs, m)
		r.count[m.MsgID]++
		hold := r.hold
		r.mu.Unlock()
		if hold != nil {
			<-hold
		}
	}
	cfg.OnPresence = func(p client.Presence) { r.mu.Lock(); r.presence = append(r.presence, p); r.mu.Unlock() }
	cfg.OnPresenceSummary = func(p client.PresenceSummary) { r.mu.Lock(); r.summary = append(r.summary, p); r.mu.Unlock() }
	cfg.OnState = func(s client.StateChange) { r.mu.Lock(); r.states = append(r.states, s); r.mu.Unlock() }
	cfg.OnError = func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() }
}

func (r *recorder) messages() []*client.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*client.Message(nil), r.msgs...)
}

// waitMessages waits until n messages reached the handler.
func (r *recorder) waitMessages(t *testing.T, n int) []*client.Message {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := len(r.messages()); got < n {
			return fmt.Errorf("handler saw %d messages, want %d", got, n)
		}
		return nil
	})
	return r.messages()
}

// countState is how many times the handler saw state s.
func (r *recorder) countState(s client.State) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.countStateLocked(s)
}

func (r *recorder) countStateLocked(s client.State) int {
	n := 0
	for _, st := range r.states {
		if st.State == s {
			n++
		}
	}
	return n
}

func (r *recorder) waitState(t *testing.T, s client.State, n int) {
	t.Helper()
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := r.countState(s); got < n {
			return fmt.Errorf("state %s seen %d times, want %d", s, got, n)
		}
		return nil
	})
}

// dial connects node to the edges (the first is the main URL) directly.
func dial(t *testing.T, c *edgetest.Cluster, node string, edges []*edgetest.Edge, r *recorder, mods ...func(*client.Config)) *client.Client {
	t.Helper()
	cfg := client.Config{URL: edges[0].URL(), AuthKey: c.AuthKey(node, node, time.Hour), Direct: true,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond, Logger: testutil.Logger(t)}
	for _, e := range edges[1:] {
		cfg.Fallbacks = append(cfg.Fallbacks, e.URL())
	}
	if r != nil {
		r.config(&cfg)
	}
	for _, m := range mods {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", node, err)
	}
	t.Cleanup(cl.Close)
	return cl
}

func send(t *testing.T, cl *client.Client, m client.Outgoing) client.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := cl.Send(ctx, m)
	if err != nil {
		t.Fatalf("send %+v: %v", m, err)
	}
	return out
}
