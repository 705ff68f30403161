package edge_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// storeFor has alice send n messages to offline node (payloads "0".."n-1",
// each padded by pad bytes) and waits until every one is stored.
func storeFor(t *testing.T, alice *wstest.Client, node string, n, pad int) {
	t.Helper()
	for i := range n {
		alice.Send(t, map[string]any{"dest_id": node, "payload": fmt.Sprint(i) + strings.Repeat(" ", pad)})
	}
	for range n {
		if s := alice.Until(t, wait, isSent); s.Status != "stored" {
			t.Fatalf("got %s, want stored", s.Raw)
		}
	}
}

// checkReplayed fails unless frames are n messages with payloads 0..n-1 in
// order, then sync_done{pending: n}.
func checkReplayed(t *testing.T, frames []wstest.Frame, n int) {
	t.Helper()
	if len(frames) != n+1 {
		t.Fatalf("got %d frames before sync_done, want %d", len(frames)-1, n)
	}
	for i, f := range frames[:n] {
		var p string
		if err := json.Unmarshal(f.Payload, &p); err != nil || strings.TrimSpace(p) != fmt.Sprint(i) {
			t.Fatalf("replayed #%d: payload %q (%v), want %d", i, p, err, i)
		}
	}
	if done := frames[n]; done.Pending != n {
		t.Fatalf("sync_done %s, want pending %d", done.Raw, n)
	}
}

// A replay of many pages (ALLSPARK_INBOX_PAGE=3, 3 pages ahead of each
// other) comes complete and in order across every page boundary, and
// takes one read per page (not one per message).
func TestReplayAcrossPageBoundaries(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.InboxPage = 3 })
	alice := c.dial(a, "alice", "alice")
	const n = 20
	storeFor(t, alice, "bob", n, 0)
	before := a.srv.InboxReads()
	_, frames := c.dialSynced(a, "bob", "bob")
	checkReplayed(t, frames, n)
	// 7 pages (the last one ends the inbox); a read ahead may add one more.
	if reads := a.srv.InboxReads() - before; reads < 7 || reads > 9 {
		t.Fatalf("%d inbox reads for %d messages in pages of 3, want 7 to 9", reads, n)
	}
	waitInbox(t, testutil.Connect(t, c.ns.ClientURL()), "bob", 0)
}

// A backlog several times the send queue (ALLSPARK_SEND_QUEUE_BYTES=4096,
// messages of ~1.5 KB: a page holds 2 of them, half the queue) is
// replayed complete and in order at the client's pace, with no 4009.
func TestReplayBacklogBiggerThanSendQueue(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.MaxFrameBytes, cfg.SendQueueBytes, cfg.InboxPage = 4096, 4096, 100
	})
	alice := c.dial(a, "alice", "alice")
	const n = 30 // ~45 KB
	storeFor(t, alice, "bob", n, 1500)
	_, frames := c.dialSynced(a, "bob", "bob")
	checkReplayed(t, frames, n)
	waitInbox(t, testutil.Connect(t, c.ns.ClientURL()), "bob", 0)
}

// Acknowledging 4, then 1 and 2, of 5 replayed messages removes exactly
// those (1 and 2 by a purge of the acked prefix, 4 alone): 3 and 5 come
// back at the next connection, in order, and nothing else does.
func TestAckedPrefixRemovalKeepsUnacked(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	const n = 5
	storeFor(t, alice, "bob", n, 0)

	bob := wstest.DialNoAck(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("bob", "bob"))))
	var ids []string
	for range n {
		ids = append(ids, bob.Until(t, wait, wstest.Frame.IsMessage).MsgID)
	}
	if f := bob.Next(t, wait); f.Type != "sync_done" {
		t.Fatalf("got %s, want sync_done", f.Raw)
	}
	nc := testutil.Connect(t, c.ns.ClientURL())
	bob.Ack(t, ids[3])
	waitInbox(t, nc, "bob", n-1)
	bob.Ack(t, ids[0])
	bob.Ack(t, ids[1])
	waitInbox(t, nc, "bob", n-3)
	bob.Close()

	_, frames := c.dialSynced(a, "bob", "bob")
	if len(frames) != 3 || frames[0].MsgID != ids[2] || frames[1].MsgID != ids[4] || frames[2].Pending != 2 {
		var got []string
		for _, f := range frames {
			got = append(got, string(f.Raw))
		}
		t.Fatalf("after acking 1, 2 and 4 of 5, reconnect got %v; want %s, %s, sync_done{pending:2}", got, ids[2], ids[4])
	}
	waitInbox(t, nc, "bob", 0)
}
