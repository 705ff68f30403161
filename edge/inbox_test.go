package edge_test

import (
	"context"
	"encoding/json"
	"fmt"
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

// inboxCount is how many messages wait in node's inbox.
func inboxCount(t *testing.T, nc *nats.Conn, node string) uint64 {
	t.Helper()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "allspark_inbox")
	if err != nil {
		t.Fatal(err)
	}
	subj := "allspark.inbox." + bus.Token(node)
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(subj))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[subj]
}

func waitInbox(t *testing.T, nc *nats.Conn, node string, n uint64) {
	t.Helper()
	testutil.Eventually(t, 10*time.Second, func() error {
		if got := inboxCount(t, nc, node); got != n {
			return fmt.Errorf("inbox of %s holds %d, want %d", node, got, n)
		}
		return nil
	})
}

// Acceptance 1: offline bob gets 100 stored messages in order, then
// sync_done{pending:100}; once acked they are gone.
func TestOfflineMessagesReplayInOrder(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	alice := c.dial(a, "alice", "alice")
	const n = 100
	for i := range n {
		alice.Send(t, map[string]any{"id": fmt.Sprint(i), "dest_id": "bob", "payload": i})
	}
	sentIDs := map[string]string{}
	for range n {
		s := alice.Until(t, wait, isSent)
		if s.Status != "stored" {
			t.Fatalf("got %s, want stored", s.Raw)
		}
		sentIDs[s.ID] = s.MsgID
	}

	bob, frames := c.dialSynced(b, "bob", "bob")
	if len(frames) != n+1 {
		t.Fatalf("got %d frames before sync_done, want %d", len(frames)-1, n)
	}
	for i, f := range frames[:n] {
		if string(f.Payload) != fmt.Sprint(i) || f.MsgID != sentIDs[fmt.Sprint(i)] || f.SrcID != "alice" {
			t.Fatalf("replayed #%d: %s (want msg_id %s)", i, f.Raw, sentIDs[fmt.Sprint(i)])
		}
	}
	if done := frames[n]; done.Pending != n {
		t.Fatalf("sync_done %s, want pending %d", done.Raw, n)
	}
	waitInbox(t, testutil.Connect(t, c.ns.ClientURL()), "bob", 0)
	bob.Close()

	_, frames = c.dialSynced(a, "bob", "bob")
	if len(frames) != 1 || frames[0].Pending != 0 {
		t.Fatalf("after acking, reconnect got %d frames: %s", len(frames), frames[0].Raw)
	}
}

// Acceptance 2: a connected bob that never acks: alice hears stored after
// the ack timeout, and bob gets the same msg_ids again on reconnect.
func TestUnackedMessagesAreStoredAndRedelivered(t *testing.T) {
	c := newCluster(t)
	short := func(cfg *edge.Config) { cfg.AckTimeout = 300 * time.Millisecond }
	a, b := c.edge("edge-a", short), c.edge("edge-b", short)
	alice := c.dial(a, "alice", "alice")
	bob := c.dial(b, "bob", "bob")
	bob.SetAutoAck(false)

	const n = 5
	first := map[string]bool{}
	for i := range n {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
		first[bob.Until(t, wait, wstest.Frame.IsMessage).MsgID] = true
	}
	for range n {
		if s := alice.Until(t, wait, isSent); s.Status != "stored" || !first[s.MsgID] {
			t.Fatalf("got %s, want stored for a delivered msg_id", s.Raw)
		}
	}
	bob.Close()
	_, frames := c.dialSynced(a, "bob", "bob")
	if len(frames) != n+1 || frames[n].Pending != n {
		t.Fatalf("replay: %d frames", len(frames))
	}
	for i, f := range frames[:n] {
		if !first[f.MsgID] || string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("replayed %s, not one of the first deliveries in order", f.Raw)
		}
	}
}

// A message stored while its node is connected (its sender gave up on a
// silent edge) reaches the node without a reconnect, via the inbox nudge.
func TestStoredWhileConnectedArrivesWithoutReconnect(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	bob := c.dial(a, "bob", "bob")
	nc := testutil.Connect(t, c.ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	inbox, err := bus.OpenInbox(t.Context(), nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 10000}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := inbox.Store(t.Context(), "bob", "m-late", []byte(`{"msg_id":"m-late","src_id":"x","dest_id":"bob","payload":1}`)); err != nil {
		t.Fatal(err)
	}
	if f := bob.Until(t, wait, wstest.Frame.IsMessage); f.MsgID != "m-late" {
		t.Fatalf("got %s", f.Raw)
	}
	waitInbox(t, testutil.Connect(t, c.ns.ClientURL()), "bob", 0)
}

// Live messages that arrive during a replay come after it, in order.
func TestLiveMessagesDuringReplayKeepOrder(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	alice := c.dial(a, "alice", "alice")
	const stored, live = 300, 100
	for i := range stored {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
	}
	for range stored {
		if s := alice.Until(t, wait, isSent); s.Status != "stored" {
			t.Fatalf("got %s", s.Raw)
		}
	}
	bob := wstest.Dial(t, b.wsURL("auth_key="+url.QueryEscape(c.authKey("bob", "bob"))))
	for i := stored; i < stored+live; i++ {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
	}
	next, synced := 0, false
	for next < stored+live {
		f := bob.Next(t, wait)
		switch {
		case f.Type == "sync_done":
			synced = true
		case f.IsMessage():
			if string(f.Payload) != fmt.Sprint(next) {
				t.Fatalf("got payload %s, want %d", f.Payload, next)
			}
			next++
		}
	}
	if !synced {
		t.Fatal("no sync_done")
	}
}

// Acceptance 5: a NATS restart on the same store keeps stored messages.
func TestStoredMessagesSurviveNATSRestart(t *testing.T) {
	dir := t.TempDir()
	ns := testutil.RunNATSAt(t, dir, "127.0.0.1:0")
	addr := ns.Addr().String()
	c := newClusterOn(t, ns)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	for i := range 10 {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
	}
	for range 10 {
		if s := alice.Until(t, wait, isSent); s.Status != "stored" {
			t.Fatalf("got %s", s.Raw)
		}
	}
	ns.Shutdown()
	ns.WaitForShutdown()
	c.ns = testutil.RunNATSAt(t, dir, addr)
	c.url = c.ns.ClientURL()
	b := c.edge("edge-b")
	_, frames := c.dialSynced(b, "bob", "bob")
	if len(frames) != 11 || frames[10].Pending != 10 {
		t.Fatalf("after restart: %d frames", len(frames))
	}
}

// Acceptance 6: every stored message yields an undelivered event.
func TestUndeliveredEventPerStoredMessage(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	alice := c.dial(a, "alice", "alice")
	c.dial(a, "dana-phone", "dana")
	c.dial(a, "dana-laptop", "dana").Close()
	waitConns(t, a, 2)

	stored := map[string]bool{} // msg_id + node
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": "to offline bob"})
	alice.Send(t, map[string]any{"dest_client_id": "dana", "payload": "phone online, laptop offline"})
	for range 2 {
		s := alice.Until(t, wait, isSent)
		if s.Status != "stored" {
			t.Fatalf("got %s", s.Raw)
		}
		stored[s.MsgID] = true
	}

	nc := testutil.Connect(t, c.ns.ClientURL())
	js, _ := jetstream.New(nc)
	cons, err := js.CreateOrUpdateConsumer(t.Context(), "allspark_undelivered", jetstream.ConsumerConfig{Durable: "test", AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	testutil.Eventually(t, wait, func() error {
		batch, err := cons.FetchNoWait(10)
		if err != nil {
			return err
		}
		for m := range batch.Messages() {
			var ev bus.UndeliveredEvent
			if err := json.Unmarshal(m.Data(), &ev); err != nil {
				t.Fatal(err)
			}
			var frame wstest.Frame
			_ = json.Unmarshal(ev.Message, &frame)
			if frame.MsgID != ev.MsgID || !stored[ev.MsgID] {
				t.Fatalf("event %s does not match a stored message", m.Data())
			}
			got[ev.NodeID] = ev.MsgID
			_ = m.Ack()
		}
		if len(got) != 2 {
			return fmt.Errorf("events for %v", got)
		}
		return nil
	})
	if _, ok := got["bob"]; !ok {
		t.Fatalf("no event for bob: %v", got)
	}
	if _, ok := got["dana-laptop"]; !ok {
		t.Fatalf("no event for dana-laptop: %v", got)
	}
}

// A full inbox refuses new messages with inbox_full; what it holds is kept.
func TestFullInboxRejectsNewMessages(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.InboxMaxPerNode = 3 })
	alice := c.dial(a, "alice", "alice")
	for i := range 5 {
		alice.Send(t, map[string]any{"id": fmt.Sprint(i), "dest_id": "bob", "payload": i})
	}
	for i := range 5 {
		s := alice.Until(t, wait, isSent)
		want := "stored"
		if i >= 3 {
			want = "rejected"
		}
		if s.ID != fmt.Sprint(i) || s.Status != want || (want == "rejected" && (s.Error == nil || s.Error.Code != "inbox_full")) {
			t.Fatalf("answer %d: %s, want %s", i, s.Raw, want)
		}
	}
	_, frames := c.dialSynced(a, "bob", "bob")
	if len(frames) != 4 || frames[3].Pending != 3 {
		t.Fatalf("bob got %d frames", len(frames))
	}
}
