package edge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/nats-io/nats.go/jetstream"
)

// Issue 13 #3, the stored-message flood: a client sends 60 KB messages to
// node ids nobody holds. Once the inbox holds ALLSPARK_INBOX_MAX_BYTES the
// sender is told rejected "overloaded" (before disk fills), the undelivered
// events stay within their own cap, and every message answered "stored"
// still reaches its node.
func TestStoredMessageFloodIsBounded(t *testing.T) {
	const inboxCap, eventsCap, size, n = 1 << 20, 256 << 10, 60 << 10, 60
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.InboxMaxBytes, cfg.UndeliveredMaxBytes = inboxCap, eventsCap
		cfg.RateLimit = 0
	})
	flooder := c.dial(e, "flooder", "flooder")
	payload := `"` + strings.Repeat("x", size) + `"`
	for i := range n {
		if err := flooder.Write(map[string]any{"id": fmt.Sprint(i), "dest_id": fmt.Sprintf("ghost-%d", i), "payload": payload[1 : len(payload)-1]}); err != nil {
			t.Fatal(err)
		}
	}
	stored := map[string]string{} // msg_id -> node
	overloaded := 0
	for answered := 0; answered < n; {
		f := flooder.Next(t, 30*time.Second)
		if f.Type != "sent" {
			continue
		}
		answered++
		switch {
		case f.Status == "stored":
			stored[f.MsgID] = "ghost-" + f.ID
		case f.Status == "rejected" && f.Error != nil && f.Error.Code == "overloaded":
			overloaded++
		default:
			t.Fatalf("answer %s, want stored or rejected overloaded", f.Raw)
		}
	}
	t.Logf("%d stored, %d rejected overloaded", len(stored), overloaded)
	if overloaded == 0 || len(stored) == 0 || len(stored) > inboxCap/size {
		t.Fatalf("%d stored and %d overloaded of %d × %d KB with a %d KB inbox", len(stored), overloaded, n, size>>10, inboxCap>>10)
	}

	js, err := jetstream.New(e.nc)
	if err != nil {
		t.Fatal(err)
	}
	for name, limit := range map[string]uint64{"allspark_inbox": inboxCap, "allspark_undelivered": eventsCap} {
		st, err := js.Stream(t.Context(), name)
		if err != nil {
			t.Fatal(err)
		}
		info, err := st.Info(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Bytes > limit {
			t.Errorf("%s holds %d bytes, over its cap of %d", name, info.State.Bytes, limit)
		}
	}

	// Nothing accepted is lost.
	for msgID, node := range stored {
		cl, replayed := c.dialSynced(e, node, node)
		got := false
		for _, f := range replayed {
			got = got || (f.IsMessage() && f.MsgID == msgID)
		}
		cl.Close()
		if !got {
			t.Fatalf("%s was answered stored but %s never received it", msgID, node)
		}
	}
}
