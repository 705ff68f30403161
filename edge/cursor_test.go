package edge_test

import (
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// Session read-cursor acks are coalesced: 10,000 acks in a burst from one
// connection do not become 10,000 KV writes (and goroutines); the last seq
// acked is the one that stays.
func TestSessionCursorAcksCoalesce(t *testing.T) {
	c := newCluster(t)
	// Cursor acks count against the rate limit (TestCursorAckFloodIsRateLimited);
	// this test is about what gets past it, so it is off.
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.RateLimit = 0 })
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "feed"}, 201)
	c.mustCall(a, "POST", "/v1/sessions/feed/join", "reader", "reader", nil, 200)
	reader := c.dial(a, "reader", "reader")

	const n = 10_000
	for seq := 1; seq <= n; seq++ {
		reader.SendRaw(t, `{"type":"ack","session_id":"feed","seq":`+strconv.Itoa(seq)+`}`)
	}

	js, err := jetstream.New(testutil.Connect(t, c.ns.ClientURL()))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "allspark_cursors")
	if err != nil {
		t.Fatal(err)
	}
	key := bus.Token("feed") + "." + bus.Token("reader")
	var rev uint64
	testutil.Eventually(t, 10*time.Second, func() error {
		e, err := kv.Get(t.Context(), key)
		if err != nil {
			return fmt.Errorf("read cursor: %w", err)
		}
		if string(e.Value()) != strconv.Itoa(n) {
			return fmt.Errorf("cursor %s, want %d (the last ack)", e.Value(), n)
		}
		rev = e.Revision() // the bucket's only key, so its revision counts every write
		return nil
	})
	if rev > n/2 {
		t.Fatalf("%d acks became %d cursor writes; want them coalesced", n, rev)
	}
	t.Logf("%d acks, %d cursor writes", n, rev)
}
