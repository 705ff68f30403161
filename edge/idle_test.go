package edge_test

import (
	"bytes"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// goroutinesRunning counts the goroutines of this process whose stack
// holds fn.
func goroutinesRunning(fn string) int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte(fn)) {
			count++
		}
	}
	return count
}

const writeLoop = "edge.(*conn).writeLoop"

// waitNoWriters waits until no connection has a writer goroutine.
func waitNoWriters(t *testing.T) {
	t.Helper()
	testutil.Eventually(t, wait, func() error {
		if n := goroutinesRunning(writeLoop); n != 0 {
			return fmt.Errorf("%d writer goroutines still running", n)
		}
		return nil
	})
}

// Issue 12: an idle connection costs the edge one goroutine (its reader);
// its writer runs only while something is queued. The clients here are in
// the same process and cost one goroutine each (their gws reader), so n
// idle connections add exactly 2n goroutines.
func TestIdleConnectionHasOneGoroutine(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.PingInterval = time.Hour })
	waitNoWriters(t)
	before := runtime.NumGoroutine()
	const n = 40
	for i := range n {
		c.dial(a, fmt.Sprintf("idle%02d", i), "idle") // every one was written to: sync_done
	}
	waitConns(t, a, n)
	testutil.Eventually(t, 10*time.Second, func() error {
		perConn := float64(runtime.NumGoroutine()-before) / n
		if perConn != 2 {
			return fmt.Errorf("%.2f goroutines per idle connection (edge and client together; want 2: one reader each), %d of them writers",
				perConn, goroutinesRunning(writeLoop))
		}
		return nil
	})
}

// A connection that went idle (its writer ended) gets what comes later:
// each message starts a writer again, and acks still settle deliveries.
func TestIdleConnectionRestartsWriter(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.PingInterval = time.Hour })
	alice := c.dial(a, "alice", "alice")
	bob := c.dial(a, "bob", "bob")
	for i := range 5 {
		waitNoWriters(t)
		alice.Send(t, map[string]any{"id": fmt.Sprint("c", i), "dest_id": "bob", "payload": i})
		got := bob.Until(t, wait, wstest.Frame.IsMessage)
		if string(got.Payload) != fmt.Sprint(i) {
			t.Fatalf("round %d: bob got %s", i, got.Raw)
		}
		sent := alice.Until(t, wait, isSent)
		if sent.ID != fmt.Sprint("c", i) || sent.Status != "delivered" {
			t.Fatalf("round %d: alice got %s, want delivered", i, sent.Raw)
		}
	}
}

// Pings come from the edge's ping wheel, not from a writer that stays up
// for them: idle connections keep answering pings (and stay open) while
// no writer outlives the ping it wrote.
func TestIdlePingsNeedNoStandingWriter(t *testing.T) {
	const interval = 200 * time.Millisecond
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.PingInterval = interval })
	var clients []*wstest.Client
	for i := range 10 {
		clients = append(clients, c.dial(a, fmt.Sprintf("idle%02d", i), "idle"))
	}
	// Five pings each, a full second: well past the read timeout (1.5
	// intervals), so every client was kept open by its pongs.
	testutil.Eventually(t, wait, func() error {
		for i, cl := range clients {
			if n := cl.Pings(); n < 5 {
				return fmt.Errorf("client %d got %d pings, want 5", i, n)
			}
		}
		return nil
	})
	for i, cl := range clients {
		select {
		case <-cl.Closed():
			t.Fatalf("idle client %d closed with code %d", i, cl.CloseCode())
		default:
		}
	}
	waitNoWriters(t)
	waitConns(t, a, len(clients))
}

// Closing while writers start and stop: a receiver flooded by several
// senders is closed by the edge (replaced, single-connection mode) and by
// its client, round after round. Run with -race; the package's goleak
// check finds any writer left behind, and every connection must go.
func TestCloseRacesWriterStartStop(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.SingleConnection = true
		cfg.RateLimit = 0
		cfg.PingInterval = 300 * time.Millisecond
	})
	senders := []*wstest.Client{c.dial(a, "s1", "s1"), c.dial(a, "s2", "s2")}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for _, s := range senders {
				_ = s.Write(map[string]any{"dest_id": "target", "payload": i})
			}
			time.Sleep(time.Millisecond) // pace, so the writer keeps going idle and waking
		}
	}()
	url := a.wsURL("auth_key=" + c.authKey("target", "target"))
	for round := range 12 {
		t1 := wstest.Dial(t, url)
		t2 := wstest.Dial(t, url) // replaces t1 mid-stream
		// Usually 4011; under -race on a loaded machine the flood can
		// delay a pong past the read timeout instead. Either way it closes.
		t1.WaitClose(t, wait)
		if round%2 == 1 {
			t3 := wstest.Dial(t, url) // replaces t2 too
			t2.WaitClose(t, wait)
			t2 = t3
		}
		t2.Close() // client side, mid-stream
	}
	close(stop)
	<-done
	waitConns(t, a, len(senders))
	waitNoWriters(t)
}
