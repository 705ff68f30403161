package edge_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go/jetstream"
)

// Acceptance 2 (issue 11): JetStream cannot store (the inbox stream's R3
// group lost two of its three servers, so it has no leader), and 50
// connections send 20,000 messages to offline nodes. The edge keeps doing
// its other work: a 1:1 delivery between two online clients is answered
// "delivered" (so its ack came back within the ack timeout), and every one
// of the 20,000 sends is answered, none "stored".
func TestStoreOutageDoesNotStallEdge(t *testing.T) {
	servers := testutil.RunCluster(t, 3)
	c := newClusterOn(t, servers[0]) // the edge stays connected to the surviving server
	e := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.StreamReplicas = 3
		// The property is "within the ack timeout"; 5 s leaves a -race
		// build on a shared 2-core machine room to process 20,000 sends.
		cfg.AckTimeout = 5 * time.Second
		cfg.StoreTimeout = 3 * time.Second
		cfg.StoreAttemptTimeout = 500 * time.Millisecond
		cfg.StoreQueue = 5000
	})
	amy, ben := c.dial(e, "amy", "amy"), c.dial(e, "ben", "ben")
	const conns, perConn = 50, 400
	senders := make([]*wstest.Client, conns)
	for i := range senders {
		senders[i] = c.dial(e, fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i))
	}
	for _, s := range servers[1:] {
		s.Shutdown()
		s.WaitForShutdown()
	}

	var written, answered sync.WaitGroup
	// A stalled edge stops reading, so writes block: cut the senders at
	// the end so every goroutine of this test returns.
	stop := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		for _, s := range senders {
			s.Close()
		}
		answered.Wait()
	})
	statuses := make([]map[string]int, conns)
	for i, s := range senders {
		written.Add(1)
		answered.Add(1)
		go func() {
			defer answered.Done()
			for j := range perConn {
				if err := s.Write(map[string]any{"id": fmt.Sprint(j), "dest_id": fmt.Sprintf("off-%d-%d", i, j%7), "payload": "x"}); err != nil {
					select {
					case <-stop:
					default:
						t.Errorf("sender %d: write %d: %v", i, j, err)
					}
					written.Done()
					return
				}
			}
			written.Done()
			statuses[i] = map[string]int{}
			next := 0
			for next < perConn {
				select {
				case f := <-s.Frames():
					if f.Type != "sent" {
						continue
					}
					if f.ID != fmt.Sprint(next) {
						t.Errorf("sender %d: answer for %s, want %d (send order)", i, f.ID, next)
						return
					}
					code := ""
					if f.Error != nil {
						code = f.Error.Code
					}
					statuses[i][f.Status+" "+code]++
					next++
				case <-time.After(60 * time.Second):
					t.Errorf("sender %d: %d of %d answered, then nothing for 60s", i, next, perConn)
					return
				case <-stop:
					return
				}
			}
		}()
	}
	allWritten := make(chan struct{})
	go func() { written.Wait(); close(allWritten) }()
	select {
	case <-allWritten:
	case <-time.After(60 * time.Second):
		t.Fatal("senders could not write their messages within 60s: the edge stopped reading them")
	}
	start := time.Now()
	amy.Send(t, map[string]any{"id": "hello", "dest_id": "ben", "payload": "hi"})
	if m := ben.Until(t, 30*time.Second, wstest.Frame.IsMessage); m.SrcID != "amy" {
		t.Fatalf("ben got %s", m.Raw)
	}
	if f := amy.Until(t, 30*time.Second, isSent); f.Status != "delivered" {
		t.Fatalf("amy's 1:1 message during the outage: got %s, want delivered", f.Raw)
	}
	t.Logf("1:1 answered delivered %s after it was sent, during the outage", time.Since(start))
	answered.Wait()
	total := map[string]int{}
	for _, st := range statuses {
		for k, n := range st {
			total[k] += n
		}
	}
	t.Logf("answers to %d sends during the outage: %v", conns*perConn, total)
	for k := range total {
		if k != "rejected unavailable" && k != "rejected overloaded" {
			t.Errorf("unexpected answer %q while JetStream cannot store", k)
		}
	}
}

// Acceptance (issue 11 #9): the edge drains within its context even when
// every store in flight waits for PubAcks that never come (the inbox
// stream stores without acknowledging, as when its leader dies after
// storing): Shutdown returns once ctx ends, not after the stores' own
// timeout, and the sender is answered.
func TestShutdownBoundedWhileStoresHang(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.StoreTimeout = time.Minute
		cfg.StoreAttemptTimeout = 200 * time.Millisecond
	})
	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := js.Stream(t.Context(), "allspark_inbox")
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.NoAck = true
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
	alice := c.dial(e, "alice", "alice")
	const n = 5
	for i := range n {
		alice.Send(t, map[string]any{"id": fmt.Sprint(i), "dest_id": "offline", "payload": "x"})
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		info, err := st.Info(t.Context())
		if err != nil || info.State.Msgs < n {
			return fmt.Errorf("inbox holds %v messages (%v), want %d stored but unacknowledged", info, err, n)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "stores cancelled") {
			t.Errorf("Shutdown: got %v, want the drain context's deadline with stores pending", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown still running 20s after its 1s context ended")
	}
	// Every send was answered before the connection closed: the stores cut
	// short are "unavailable" (the client resends; dedup keeps one copy).
	answered := 0
	for answered < n {
		f := alice.Next(t, 10*time.Second)
		if f.Type == "sent" {
			if f.Status != "rejected" || f.Error == nil || f.Error.Code != "unavailable" {
				t.Fatalf("answer %s, want rejected unavailable", f.Raw)
			}
			answered++
		}
	}
	if code := alice.WaitClose(t, 10*time.Second); code != 1001 {
		t.Fatalf("close code %d after the answers, want 1001", code)
	}
}
