package edge_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// Live deliveries held while a replay is under way count against
// SEND_QUEUE_BYTES: a client whose replay is stuck (it stopped reading)
// while live traffic piles up is closed with 4009, and every live message
// it held is answered "-" so its sender stores it.
func TestHeldDeliveriesCountAgainstQueueCap(t *testing.T) {
	c := newCluster(t)
	const queueCap = 512 << 10
	a := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.SendQueueBytes = queueCap
		cfg.WriteTimeout = time.Minute // this test is about the queue cap, not the write deadline
	})
	alice := c.dial(a, "alice", "alice")

	// More stored bytes than the loopback socket buffers hold, so the
	// replay to a client that does not read cannot finish.
	nc := testutil.Connect(t, c.ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	inbox, err := bus.OpenInbox(t.Context(), nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 10000}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("r", 256<<10)
	const stored = 64
	for i := range stored {
		id := fmt.Sprintf("r-%d", i)
		frame := fmt.Sprintf(`{"msg_id":%q,"src_id":"x","dest_id":"bob","payload":%q}`, id, big)
		if err := inbox.Store(t.Context(), "bob", id, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}

	bob, gate := wstest.DialGated(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("bob", "bob"))))
	gate.Pause()
	waitConns(t, a, 2)

	// 100 x 60 kB is over ten times the cap; the old code held them all.
	payload := strings.Repeat("x", 60_000)
	const live = 100
	for i := range live {
		alice.Send(t, map[string]any{"id": fmt.Sprint(i), "dest_id": "bob", "payload": payload})
	}
	testutil.Eventually(t, wait, func() error {
		if a.srv.SlowConsumers() == 0 {
			return fmt.Errorf("no slow-consumer close while %d kB of live messages arrived during a stuck replay", live*60)
		}
		return nil
	})
	gate.Resume()
	if code := bob.WaitClose(t, 30*time.Second); code != 4009 {
		t.Fatalf("close code %d, want 4009", code)
	}

	// Every live message was held or refused, never written: each is
	// stored for bob, and his next connection replays it.
	liveIDs := map[string]bool{}
	for range live {
		s := alice.Until(t, wait, isSent)
		if s.Status != "stored" {
			t.Fatalf("live message answered %s, want stored", s.Raw)
		}
		liveIDs[s.MsgID] = true
	}
	_, frames := c.dialSynced(a, "bob", "bob")
	for _, f := range frames {
		delete(liveIDs, f.MsgID)
	}
	if len(liveIDs) != 0 {
		t.Fatalf("%d live messages missing from the replay after the 4009", len(liveIDs))
	}
}
