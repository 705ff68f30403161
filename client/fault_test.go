package client_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/internal/edgetest"
	"github.com/allspark-rt/allspark/internal/loadtest"
	"github.com/allspark-rt/allspark/internal/testutil"
)

// The receiver's edge is killed while messages flow: the client
// reconnects to the other edge, and the application sees every message
// answered delivered or stored exactly once.
func TestEdgeKilledMidStream(t *testing.T) {
	c := edgetest.New(t)
	a, b := c.Edge("edge-a"), c.Edge("edge-b")
	bob := newRecorder()
	dial(t, c, "bob", []*edgetest.Edge{b, a}, bob)

	const senders = 10
	perSender := loadtest.Scale(500)
	total := senders * perSender // 5,000 at full scale
	var answered atomic.Int64
	var mu sync.Mutex
	promised := map[string]bool{} // guarded by mu: msg_ids answered delivered or stored
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := range senders {
		cl := dial(t, c, fmt.Sprintf("s%02d", s), []*edgetest.Edge{a}, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perSender {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				out, err := cl.Send(ctx, client.Outgoing{DestID: "bob", Payload: fmt.Sprintf("%d-%d", s, i)})
				cancel()
				if err != nil {
					errs <- fmt.Errorf("sender %d message %d: %w", s, i, err)
					return
				}
				if out.Status == allspark.StatusRejected {
					errs <- fmt.Errorf("sender %d message %d rejected: %v", s, i, out.Error)
					return
				}
				mu.Lock()
				promised[out.MsgID] = true
				mu.Unlock()
				answered.Add(1)
			}
		}()
	}
	killed := make(chan struct{})
	go func() {
		defer close(killed)
		testutil.Eventually(t, 60*time.Second, func() error {
			if n := answered.Load(); n < int64(total/3) {
				return fmt.Errorf("%d answered", n)
			}
			return nil
		})
		b.Kill()
	}()
	wg.Wait()
	<-killed
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	testutil.Eventually(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		bob.mu.Lock()
		defer bob.mu.Unlock()
		var lost []string
		for id := range promised {
			if bob.count[id] == 0 {
				lost = append(lost, id)
			}
		}
		if len(lost) > 0 {
			return fmt.Errorf("%d of %d promised messages not received yet, e.g. %s", len(lost), len(promised), lost[0])
		}
		return nil
	})
	bob.mu.Lock()
	defer bob.mu.Unlock()
	dups := 0
	for _, n := range bob.count {
		if n > 1 {
			dups++
		}
	}
	if dups > 0 || len(bob.count) != total {
		t.Fatalf("%d duplicates; %d distinct messages received, want %d", dups, len(bob.count), total)
	}
	if bob.countStateLocked(client.Connected) < 2 {
		t.Fatal("bob never reconnected: the kill came too late to test anything")
	}
	t.Logf("%d messages, 0 lost, 0 duplicates, %d connections", total, bob.countStateLocked(client.Connected))
}
