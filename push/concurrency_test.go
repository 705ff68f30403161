package push_test

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	tu "github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/push"
	"github.com/allspark-rt/allspark/push/pushtest"
	"github.com/prometheus/client_golang/prometheus"
)

// perToken counts the notifications the fake accepted, by device token.
func perToken(reqs []pushtest.Request) map[string]int {
	n := map[string]int{}
	for _, q := range reqs {
		n[q.Token]++
	}
	return n
}

// Issue 11: one node whose provider answers 429 with a Retry-After longer
// than AckWait must neither delay nor duplicate the other nodes of its
// batch, and is itself notified once, after its backoff.
func TestOneNodesBackoffDoesNotHoldItsBatch(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	const others = 10
	// The slow node's event is stored first: a worker that handles the
	// batch's nodes in order meets its backoff before anyone else.
	if err := r.tokens.Add(ctx, "slow", push.FCM, "tok-slow"); err != nil {
		t.Fatal(err)
	}
	r.store("slow", 0)
	for i := range others {
		node := fmt.Sprintf("n%02d", i)
		if err := r.tokens.Add(ctx, node, push.FCM, "tok-"+node); err != nil {
			t.Fatal(err)
		}
		r.store(node, 0)
	}
	othersNotified := func() int {
		got := perToken(r.fcm.Requests())
		n := 0
		for i := range others {
			if got[fmt.Sprintf("tok-n%02d", i)] > 0 {
				n++
			}
		}
		return n
	}
	// Retry-After (6 s) is twice AckWait (3 s): the slow node's events stay
	// in the worker's hands past AckWait.
	r.fcm.ScriptToken("tok-slow", pushtest.Reply{Status: 429, Body: `{"error":{"status":"RESOURCE_EXHAUSTED"}}`, RetryAfter: "6"})
	var mu sync.Mutex
	seenAtRetry := -1 // guarded by mu: other nodes notified when the slow node's retry arrived
	r.fcm.OnTokenTry(func(tok string, n int) {
		if tok != "tok-slow" || n != 2 {
			return
		}
		// Hold the retry until the other nodes are notified (an ordering
		// check, not a timing one): a worker that handles nodes one after
		// another waits for this answer first, so it never gets there.
		deadline := time.Now().Add(20 * time.Second)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for othersNotified() < others && time.Now().Before(deadline) {
			<-tick.C
		}
		mu.Lock()
		seenAtRetry = othersNotified()
		mu.Unlock()
	})
	reg := prometheus.NewRegistry()
	run(t, r.worker(reg, func(c *push.Config) { c.AckWait = 3 * time.Second }))

	tu.Eventually(t, 40*time.Second, func() error {
		if n := perToken(r.fcm.Requests())["tok-slow"]; n != 1 {
			return fmt.Errorf("slow node notified %d times", n)
		}
		return r.queueEmpty()
	})
	// Every event is acked and gone from the queue, so nothing more can be
	// redelivered: the counts below are final.
	mu.Lock()
	defer mu.Unlock()
	if seenAtRetry != others {
		t.Errorf("the slow node's retry came when %d of %d other nodes were notified: its backoff held them", seenAtRetry, others)
	}
	got := perToken(r.fcm.Requests())
	for i := range others {
		if tok := fmt.Sprintf("tok-n%02d", i); got[tok] != 1 {
			t.Errorf("%s notified %d times, want 1", tok, got[tok])
		}
	}
	if n := r.fcm.Tries(); n != others+2 {
		t.Errorf("%d sends, want %d (one per node, one retry)", n, others+2)
	}
	if n := tu.CounterValue(t, reg, "allspark_push_redelivered_total"); n != 0 {
		t.Errorf("%v events handed to a worker twice: AckWait passed on events in hand", n)
	}
}

// ALLSPARK_PUSH_CONCURRENCY: with every slot busy the worker notifies no
// more nodes and fetches no more events; they wait in the queue.
func TestConcurrencyBoundsNodesInHand(t *testing.T) {
	r := newRig(t)
	const nodes, limit = 5, 2
	for i := range nodes {
		node := fmt.Sprintf("n%02d", i)
		if err := r.tokens.Add(t.Context(), node, push.APNs, "tok-"+node); err != nil {
			t.Fatal(err)
		}
		r.store(node, 0)
	}
	var mu sync.Mutex
	active, most := 0, 0 // guarded by mu: sends being answered, and their peak
	release := make(chan struct{})
	releaseAll := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseAll) // a failed test must not leave sends held
	r.apns.OnTry(func(int) {
		mu.Lock()
		active++
		most = max(most, active)
		mu.Unlock()
		select { // held until the test has looked; bounded so a failure cannot hang
		case <-release:
		case <-time.After(30 * time.Second):
		}
		mu.Lock()
		active--
		mu.Unlock()
	})
	run(t, r.worker(nil, func(c *push.Config) { c.Concurrency = limit }))
	tu.Eventually(t, 20*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if active != limit {
			return fmt.Errorf("%d sends in flight, want %d", active, limit)
		}
		return nil
	})
	// The worker holds exactly its slots' events; the rest are still queued.
	cons, err := r.js.Consumer(t.Context(), bus.UndeliveredStreamName(r.subj), push.ConsumerName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := cons.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != limit || info.NumPending != nodes-limit {
		t.Errorf("with %d slots busy: %d events in hand, %d queued; want %d and %d",
			limit, info.NumAckPending, info.NumPending, limit, nodes-limit)
	}
	releaseAll()
	tu.Eventually(t, 20*time.Second, func() error {
		if got := len(perToken(r.apns.Requests())); got != nodes {
			return fmt.Errorf("%d of %d nodes notified", got, nodes)
		}
		return r.queueEmpty()
	})
	mu.Lock()
	defer mu.Unlock()
	if most != limit {
		t.Errorf("at most %d sends at once, want %d", most, limit)
	}
}

func TestConfigRejectsZeroConcurrency(t *testing.T) {
	err := push.Config{Batch: 100, AckWait: time.Minute}.Validate()
	if err == nil || !strings.Contains(err.Error(), "ALLSPARK_PUSH_CONCURRENCY") {
		t.Fatalf("err = %v, want one naming ALLSPARK_PUSH_CONCURRENCY", err)
	}
}
