package edge_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// flood writes frames (pings and messages to dest, alternately) every 30
// ms until stop closes or the connection fails; message ids are m0, m1, ...
// in send order. That is over a rate limit of 20/s, and under the 40/s an
// edge reads from a client over its rate (see conn.pauseReader), so the
// client's acks are not queued behind a backlog of its own frames.
func flood(cl *wstest.Client, dest string, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(30 * time.Millisecond)
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			var err error
			if i%2 == 0 {
				err = cl.Write(map[string]any{"type": "ping"})
			} else {
				err = cl.Write(map[string]any{"id": fmt.Sprint("m", i/2), "dest_id": dest, "payload": i})
			}
			if err != nil {
				return
			}
		}
	}()
}

// Acceptance (issue 13, #8): a client sending over ALLSPARK_RATE_LIMIT gets
// its frames answered rate_limited (a message as a rejected sent, in send
// order with its other answers; a ping as an error frame), its acks still
// count, and once it has been over the rate for ALLSPARK_RATE_LIMIT_GRACE
// it is closed with 4008. Meanwhile other clients' messages are delivered.
func TestRateLimitFlood(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-rate", func(cfg *edge.Config) {
		cfg.RateLimit, cfg.RateBurst, cfg.RateLimitGrace = 20, 10, 3*time.Second
	})
	mallory := c.dial(e, "mallory", "mallory")
	bob, carol := c.dial(e, "bob", "bob"), c.dial(e, "carol", "carol")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	flood(mallory, "carol", stop, &wg)

	var limitedPing, limitedMsg, answered int
	lastAnswer := -1
	bobSent := false
	deadline := time.After(30 * time.Second)
	for done := false; !done; {
		select {
		case f := <-mallory.Frames():
			switch {
			case f.Type == "error" && f.Code == "rate_limited":
				limitedPing++
			case f.Type == "sent":
				n, err := strconv.Atoi(strings.TrimPrefix(f.ID, "m"))
				if err != nil || n <= lastAnswer {
					t.Fatalf("answer %s after the answer to m%d: answers out of send order", f.Raw, lastAnswer)
				}
				lastAnswer = n
				answered++
				if f.Status == "rejected" && f.Error != nil && f.Error.Code == "rate_limited" {
					limitedMsg++
				} else if f.Status != "delivered" {
					t.Fatalf("flooder got %s, want delivered or rejected rate_limited", f.Raw)
				}
			case f.IsMessage():
				// bob's message, acked by the client while it floods
			case f.Type == "pong":
			default:
				t.Fatalf("flooder got %s", f.Raw)
			}
			if limitedMsg > 0 && limitedPing > 0 && !bobSent {
				// Over the rate now. Its acks are never limited: bob's
				// message to it is delivered, not stored.
				bobSent = true
				bob.Send(t, map[string]any{"id": "b1", "dest_id": "mallory", "payload": "are you there"})
				if s := bob.Until(t, wait, isSent); s.Status != "delivered" {
					t.Fatalf("bob -> flooder: %s, want delivered (acks are not rate limited)", s.Raw)
				}
				// Another client's round trip still works.
				carol.Send(t, map[string]any{"id": "c1", "dest_id": "bob", "payload": "hi"})
				if f := bob.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"hi"` {
					t.Fatalf("bob got %s", f.Raw)
				}
				if s := carol.Until(t, wait, isSent); s.Status != "delivered" {
					t.Fatalf("carol -> bob: %s, want delivered", s.Raw)
				}
			}
		case <-mallory.Closed():
			done = true
		case <-deadline:
			t.Fatalf("flooder still open after 30 s (%d pings and %d messages rate limited)", limitedPing, limitedMsg)
		}
	}
	if code := mallory.CloseCode(); code != 4008 || mallory.CloseReason() != "rate limit exceeded" {
		t.Fatalf("flooder closed %d %q, want 4008 %q", code, mallory.CloseReason(), "rate limit exceeded")
	}
	if !bobSent {
		t.Fatalf("flooder closed before being answered rate_limited (%d pings, %d messages)", limitedPing, limitedMsg)
	}
	t.Logf("flooder: %d pings and %d of %d messages answered rate_limited before 4008", limitedPing, limitedMsg, answered)
}

// RATE_LIMIT=0 turns the limit off: a burst far over the default bucket is
// answered in full.
func TestRateLimitOff(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-norate", func(cfg *edge.Config) { cfg.RateLimit, cfg.RateBurst = 0, 5 })
	cl := c.dial(e, "alice", "alice")
	const n = 200
	for range n {
		cl.Send(t, map[string]any{"type": "ping"})
	}
	for i := range n {
		if f := cl.Next(t, wait); f.Type != "pong" {
			t.Fatalf("frame %d: %s, want pong", i, f.Raw)
		}
	}
}

// Session read-cursor acks are KV writes: a flood of them counts against
// ALLSPARK_RATE_LIMIT like any frame (answered rate_limited, then 4008),
// while acks of msg_ids stay free.
func TestCursorAckFloodIsRateLimited(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-cursor", func(cfg *edge.Config) {
		cfg.RateLimit, cfg.RateBurst, cfg.RateLimitGrace = 20, 10, time.Second
	})
	c.mustCall(e, "POST", "/v1/sessions", "mallory", "mallory", map[string]any{"session_id": "cursor-room"}, 201)
	mallory := c.dial(e, "mallory", "mallory")
	limited := false
	for i := 1; ; i++ {
		if mallory.Write(map[string]any{"type": "ack", "session_id": "cursor-room", "seq": i}) != nil {
			break
		}
		select {
		case f := <-mallory.Frames():
			limited = limited || (f.Type == "error" && f.Code == "rate_limited")
		case <-mallory.Closed():
		default:
		}
		if i > 100_000 {
			t.Fatal("100,000 cursor acks and the connection is still open")
		}
	}
	if code := mallory.WaitClose(t, 30*time.Second); code != 4008 {
		t.Fatalf("close code %d, want 4008", code)
	}
	for drained := false; !drained; {
		select {
		case f := <-mallory.Frames():
			limited = limited || (f.Type == "error" && f.Code == "rate_limited")
		default:
			drained = true
		}
	}
	if !limited {
		t.Fatal("no rate_limited answer before the 4008 close")
	}
}
