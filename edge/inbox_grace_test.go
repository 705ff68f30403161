package edge_test

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The inbox outage in these tests is real: the inbox stream is deleted, so
// every read of it fails at the server ("stream not found"), as reads fail
// while a replicated stream has no leader, and then created again.

func deleteInboxStream(t *testing.T, nc *nats.Conn) {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := js.DeleteStream(t.Context(), "allspark_inbox"); err != nil {
		t.Fatalf("delete inbox stream: %v", err)
	}
}

func openInbox(t *testing.T, nc *nats.Conn) *bus.Inbox {
	t.Helper()
	subj, _ := bus.NewSubjects("allspark")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	inbox, err := bus.OpenInbox(ctx, nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 10000}, testutil.Logger(t))
	if err != nil {
		t.Fatalf("open inbox stream: %v", err)
	}
	return inbox
}

const retryLog = "read inbox failed; retrying"

// An inbox outage shorter than INBOX_READ_GRACE costs the client a delay:
// the replay is retried and ends with sync_done, and the connection stays.
func TestInboxOutageWithinGraceKeepsConnection(t *testing.T) {
	c := newCluster(t)
	logs := recordLogs(c)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.InboxReadGrace = time.Minute })
	alice := c.dial(a, "alice", "alice")
	nc := testutil.Connect(t, c.ns.ClientURL())
	deleteInboxStream(t, nc)

	bob := wstest.Dial(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("bob", "bob"))))
	testutil.Eventually(t, wait, func() error { return logs.has(slog.LevelDebug, retryLog) })
	openInbox(t, nc)
	select {
	case <-bob.Closed():
		t.Fatalf("closed with %d during an outage shorter than the grace", bob.CloseCode())
	case f := <-bob.Frames():
		if f.Type != "sync_done" || f.Pending != 0 {
			t.Fatalf("got %s, want sync_done with nothing pending", f.Raw)
		}
	case <-time.After(wait):
		t.Fatalf("no sync_done within %s of the inbox coming back", wait)
	}
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": "after"})
	if f := bob.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"after"` {
		t.Fatalf("bob got %s", f.Raw)
	}
}

// An inbox outage longer than INBOX_READ_GRACE closes the connection with
// 1013 (try again later), before any sync_done.
func TestInboxOutageBeyondGraceCloses1013(t *testing.T) {
	c := newCluster(t)
	logs := recordLogs(c)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.InboxReadGrace = 300 * time.Millisecond })
	deleteInboxStream(t, testutil.Connect(t, c.ns.ClientURL()))

	bob := wstest.Dial(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("bob", "bob"))))
	if code := bob.WaitClose(t, wait); code != 1013 {
		t.Fatalf("close code %d, want 1013", code)
	}
	for len(bob.Frames()) > 0 {
		if f := <-bob.Frames(); f.Type == "sync_done" {
			t.Fatalf("got sync_done before the 1013 close")
		}
	}
	if logs.count(slog.LevelDebug, retryLog) == 0 {
		t.Fatal("closed without retrying the inbox read")
	}
}

// A message delivered on two connections of its node and acked on both is
// removed once; the second removal finds it gone, which is not a warning.
func TestDoubleAckIsNotAWarning(t *testing.T) {
	c := newCluster(t)
	logs := recordLogs(c)
	a := c.edge("edge-a")
	bob1, bob2 := c.dial(a, "bob", "bob1"), c.dial(a, "bob", "bob2")
	bob1.SetAutoAck(false)
	bob2.SetAutoAck(false)
	nc := testutil.Connect(t, c.ns.ClientURL())
	if err := openInbox(t, nc).Store(t.Context(), "bob", "m-twice", []byte(`{"msg_id":"m-twice","src_id":"x","dest_id":"bob","payload":1}`)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*wstest.Client{bob1, bob2} {
		if f := cl.Until(t, wait, wstest.Frame.IsMessage); f.MsgID != "m-twice" {
			t.Fatalf("got %s", f.Raw)
		}
	}
	bob1.Ack(t, "m-twice")
	bob2.Ack(t, "m-twice")
	waitInbox(t, nc, "bob", 0)
	testutil.Eventually(t, wait, func() error {
		if n := logs.count(slog.LevelWarn, "remove acked message"); n > 0 {
			return fmt.Errorf("%d warnings for removing a message already removed", n)
		}
		return logs.has(slog.LevelDebug, "acked message already removed")
	})
}
