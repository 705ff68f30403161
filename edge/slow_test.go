package edge_test

import (
	"github.com/allspark-rt/allspark/edge"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// A client that stops reading is closed with 4009 once its queue is full,
// and the sender and other receivers carry on unaffected.
func TestSlowConsumerClosedWith4009(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.SendQueueBytes = 256 << 10
		cfg.WriteTimeout = time.Minute // this test is about the queue cap, not the write deadline
	})
	alice := c.dial(a, "alice", "alice")
	carol := c.dial(a, "carol", "carol")
	slow, gate := wstest.DialGated(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("slow", "slow"))))
	waitConns(t, a, 3)
	gate.Pause()

	payload := strings.Repeat("x", 60_000)
	deadline := time.Now().Add(20 * time.Second)
	for sent := 0; a.srv.SlowConsumers() == 0; sent++ {
		if time.Now().After(deadline) {
			t.Fatalf("no slow-consumer close after %d messages", sent)
		}
		alice.Send(t, map[string]any{"dest_id": "slow", "payload": payload})
		if sent%50 == 0 {
			// Others are still served while the slow client backs up.
			alice.Send(t, map[string]any{"dest_id": "carol", "payload": sent})
			carol.Until(t, wait, wstest.Frame.IsMessage)
		}
	}
	// The slow client's socket is full, so it can only see the close frame
	// once it reads again: it drains what was sent, then gets 4009.
	gate.Resume()
	if code := slow.WaitClose(t, 30*time.Second); code != 4009 { // it drains megabytes first
		t.Fatalf("close code %d, want 4009", code)
	}
	waitConns(t, a, 2)
	alice.Send(t, map[string]any{"dest_id": "carol", "payload": "after"})
	testutil.Eventually(t, wait, func() error {
		f := carol.Until(t, wait, wstest.Frame.IsMessage)
		if string(f.Payload) != `"after"` {
			return errString("carol got " + f.Raw)
		}
		return nil
	})
}

type errString string

func (e errString) Error() string { return string(e) }
