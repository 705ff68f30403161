package client_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/edgetest"
	"github.com/allspark-rt/allspark/internal/testutil"
)

func TestSendDelivered(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	bob := newRecorder()
	dial(t, c, "bob", []*edgetest.Edge{e}, bob)
	alice := dial(t, c, "alice", []*edgetest.Edge{e}, nil)

	out := send(t, alice, client.Outgoing{ID: "c-1", DestID: "bob", Payload: "hi bob"})
	if out.Status != allspark.StatusDelivered || out.ID != "c-1" || out.MsgID == "" {
		t.Fatalf("outcome %+v, want delivered for c-1 with a msg_id", out)
	}
	got := bob.waitMessages(t, 1)[0]
	if got.MsgID != out.MsgID || got.SrcID != "alice" || string(got.Payload) != `"hi bob"` {
		t.Fatalf("bob got %+v, want %s from alice", got.Message, out.MsgID)
	}
}

// An invalid id is rejected with the edge's code, without a round trip:
// the same frames sent raw get the same codes from the edge.
func TestSendRejectsBadIDLocally(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	alice := dial(t, c, "alice", []*edgetest.Edge{e}, nil)
	long := string(make([]byte, allspark.MaxIDLen+1))
	for _, tc := range []struct {
		m    client.Outgoing
		code allspark.Code
	}{
		{client.Outgoing{DestID: "bad\x01id"}, allspark.CodeBadID},
		{client.Outgoing{DestSessionID: long}, allspark.CodeBadID},
		{client.Outgoing{DestID: "a", DestClientID: "b"}, allspark.CodeBadFrame},
		{client.Outgoing{}, allspark.CodeBadFrame},
	} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel() // a round trip would fail on the canceled context
		out, err := alice.Send(ctx, tc.m)
		if err != nil || out.Status != allspark.StatusRejected || out.Error == nil || out.Error.Code != tc.code {
			t.Errorf("Send(%+v) = %+v, %v; want rejected %s", tc.m, out, err, tc.code)
		}
	}
}

// Bob is offline: Alice's message is stored, then replayed when Bob
// connects, before Bob counts as connected.
func TestStoredThenReplayed(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	alice := dial(t, c, "alice", []*edgetest.Edge{e}, nil)
	for i := range 3 {
		if out := send(t, alice, client.Outgoing{DestID: "bob", Payload: i}); out.Status != allspark.StatusStored {
			t.Fatalf("send to offline bob: %+v, want stored", out)
		}
	}
	bob := newRecorder()
	dial(t, c, "bob", []*edgetest.Edge{e}, bob) // Dial returns after sync_done
	got := bob.messages()
	if len(got) != 3 {
		t.Fatalf("bob had %d messages when Dial returned, want the 3 stored", len(got))
	}
	for i, m := range got {
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d payload %s: out of order", i, m.Payload)
		}
	}
	// Auto-acked: a new connection replays nothing.
	bob2 := newRecorder()
	testutil.Eventually(t, 10*time.Second, func() error {
		cl := dial(t, c, "bob", []*edgetest.Edge{e}, bob2)
		defer cl.Close()
		if n := len(bob2.messages()); n != 0 {
			bob2.mu.Lock()
			bob2.msgs = nil
			bob2.mu.Unlock()
			return fmt.Errorf("second connection replayed %d messages", n)
		}
		return nil
	})
}

// The handler is still running when the edge dies, so the ack cannot be
// sent; the sender times out and stores the message; after the reconnect it
// is replayed, and the client drops it (acknowledging it) instead of
// handing it to the application again.
func TestDedupAcrossReconnect(t *testing.T) {
	c := edgetest.New(t)
	a, b := c.Edge("edge-a"), c.Edge("edge-b", func(cfg *edge.Config) { cfg.AckTimeout = 500 * time.Millisecond })
	bob := newRecorder()
	bob.hold = make(chan struct{})
	dial(t, c, "bob", []*edgetest.Edge{b, a}, bob)
	alice := dial(t, c, "alice", []*edgetest.Edge{a}, nil)

	res := make(chan client.Outcome, 1)
	go func() {
		out, _ := alice.Send(context.Background(), client.Outgoing{DestID: "bob", Payload: "once"})
		res <- out
	}()
	first := bob.waitMessages(t, 1)[0]
	b.Kill()
	out := <-res
	if out.Status != allspark.StatusStored {
		t.Fatalf("outcome %+v, want stored (bob never acked)", out)
	}
	bob.mu.Lock()
	close(bob.hold)
	bob.hold = nil
	bob.mu.Unlock()
	bob.waitState(t, client.Connected, 2) // reconnected to A and replayed
	// Barrier: a later message arrives after the replay.
	if out := send(t, alice, client.Outgoing{DestID: "bob", Payload: "barrier"}); out.Status != allspark.StatusDelivered {
		t.Fatalf("barrier %+v", out)
	}
	got := bob.waitMessages(t, 2)
	bob.mu.Lock()
	n := bob.count[first.MsgID]
	bob.mu.Unlock()
	if n != 1 || len(got) != 2 || string(got[1].Payload) != `"barrier"` {
		t.Fatalf("handler saw %s %d times and %d messages in all, want once and 2", first.MsgID, n, len(got))
	}
	// The replayed copy was acked: a fresh connection gets nothing.
	fresh := newRecorder()
	cl := dial(t, c, "bob", []*edgetest.Edge{a}, fresh)
	cl.Close()
	if m := fresh.messages(); len(m) != 0 {
		t.Fatalf("fresh connection replayed %d messages; the duplicate was not acked", len(m))
	}
}

// ManualAck: an unacked message comes again at the next connection; once
// acked, it does not.
func TestManualAck(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	alice := dial(t, c, "alice", []*edgetest.Edge{e}, nil)
	send(t, alice, client.Outgoing{DestID: "bob", Payload: "p"})
	manual := func(cfg *client.Config) { cfg.ManualAck = true }

	r1 := newRecorder()
	cl := dial(t, c, "bob", []*edgetest.Edge{e}, r1, manual)
	if len(r1.messages()) != 1 {
		t.Fatalf("first connection: %d messages, want 1", len(r1.messages()))
	}
	cl.Close()

	r2 := newRecorder()
	cl = dial(t, c, "bob", []*edgetest.Edge{e}, r2, manual, func(cfg *client.Config) {
		onMessage := cfg.OnMessage
		cfg.OnMessage = func(ctx context.Context, m *client.Message) {
			onMessage(ctx, m)
			if string(m.Payload) == `"barrier"` {
				_ = m.Ack(ctx)
			}
		}
	})
	m := r2.messages()
	if len(m) != 1 {
		t.Fatalf("unacked message not replayed: %d messages", len(m))
	}
	if err := m[0].Ack(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Barrier: delivered means bob's ack of it, sent after the first ack on
	// the same connection, reached the edge.
	if out := send(t, alice, client.Outgoing{DestID: "bob", Payload: "barrier"}); out.Status != allspark.StatusDelivered {
		t.Fatalf("barrier %+v", out)
	}
	cl.Close()

	testutil.Eventually(t, 10*time.Second, func() error {
		r3 := newRecorder()
		cl := dial(t, c, "bob", []*edgetest.Edge{e}, r3, manual)
		cl.Close()
		if n := len(r3.messages()); n != 0 {
			return fmt.Errorf("acked messages replayed again: %d", n)
		}
		return nil
	})
}

// 4001: the edge closes when the auth_key expires; the client asks
// RefreshKey and reconnects with the new key. Without RefreshKey it stays
// down until SetAuthKey.
func TestAuthExpiredRefreshKey(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	r := newRecorder()
	refreshed := make(chan struct{}, 10)
	dial(t, c, "bob", []*edgetest.Edge{e}, r, func(cfg *client.Config) {
		cfg.AuthKey = c.AuthKey("bob", "bob", 2*time.Second)
		cfg.RefreshKey = func(context.Context) (string, error) {
			refreshed <- struct{}{}
			return c.AuthKey("bob", "bob", time.Hour), nil
		}
	})
	r.waitState(t, client.Connected, 2)
	if len(refreshed) != 1 {
		t.Fatalf("RefreshKey called %d times, want 1", len(refreshed))
	}
	r.mu.Lock()
	var code int
	for _, s := range r.states {
		if s.State == client.Disconnected {
			code = s.CloseCode
		}
	}
	r.mu.Unlock()
	if code != allspark.CloseAuthExpired {
		t.Fatalf("disconnected with code %d, want 4001", code)
	}
}

func TestAuthRefusedWithoutRefreshKey(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	r := newRecorder()
	cfg := client.Config{URL: e.URL(), AuthKey: c.AuthKey("bob", "bob", 2*time.Second), MinBackoff: time.Millisecond}
	r.config(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	testutil.Eventually(t, 20*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, s := range r.states {
			if errors.Is(s.Err, client.ErrUnauthorized) {
				return nil
			}
		}
		return fmt.Errorf("no Disconnected with ErrUnauthorized in %v", r.states)
	})
	if n := r.countState(client.Connected); n != 1 {
		t.Fatalf("connected %d times, want 1: no reconnect without a new key", n)
	}
	cl.SetAuthKey(c.AuthKey("bob", "bob", time.Hour))
	r.waitState(t, client.Connected, 2)

	// A refused key at the first Dial fails Dial.
	bad := client.Config{URL: e.URL(), AuthKey: "not-a-key"}
	if _, err := client.Dial(ctx, bad); !errors.Is(err, client.ErrUnauthorized) {
		t.Fatalf("Dial with a bad key: %v, want ErrUnauthorized", err)
	}
}

// Drain: the edge sends reconnect and closes with 1001; the client
// reconnects to the other edge at once, and nothing is lost.
func TestDrainReconnects(t *testing.T) {
	c := edgetest.New(t)
	a, b := c.Edge("edge-a"), c.Edge("edge-b")
	bob := newRecorder()
	dial(t, c, "bob", []*edgetest.Edge{b, a}, bob, func(cfg *client.Config) {
		cfg.MinBackoff, cfg.MaxBackoff = time.Hour, time.Hour // only an immediate reconnect can pass
	})
	alice := dial(t, c, "alice", []*edgetest.Edge{a}, nil)
	if err := b.Srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	bob.waitState(t, client.Connected, 2)
	bob.mu.Lock()
	var code int
	for _, s := range bob.states {
		if s.State == client.Disconnected {
			code = s.CloseCode
		}
	}
	bob.mu.Unlock()
	if code != allspark.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	if out := send(t, alice, client.Outgoing{DestID: "bob", Payload: json.RawMessage(`{"k":1}`)}); out.Status != allspark.StatusDelivered {
		t.Fatalf("after drain: %+v", out)
	}
	if m := bob.waitMessages(t, 1)[0]; string(m.Payload) != `{"k":1}` {
		t.Fatalf("payload %s", m.Payload)
	}
}

// The smallest queues and dedup memory still deliver everything once:
// a full event queue stops the reader instead of dropping.
func TestTinyQueues(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	alice := dial(t, c, "alice", []*edgetest.Edge{e}, nil, func(cfg *client.Config) { cfg.SendQueue = 1 })
	const n = 50
	for i := range n {
		send(t, alice, client.Outgoing{DestID: "bob", Payload: i})
	}
	bob := newRecorder()
	dial(t, c, "bob", []*edgetest.Edge{e}, bob, func(cfg *client.Config) {
		cfg.EventQueue, cfg.SendQueue, cfg.DedupSize = 1, 1, 2
	})
	got := bob.waitMessages(t, n)
	for i, m := range got {
		if string(m.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d has payload %s", i, m.Payload)
		}
	}
}

// Close 4011 (replaced, in single-connection mode) ends the client: it does
// not reconnect and take the node back, which would make two instances of
// one node replace each other for ever.
func TestReplacedDoesNotReconnect(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a", func(cfg *edge.Config) { cfg.SingleConnection = true })
	first, second := newRecorder(), newRecorder()
	firstCl := dial(t, c, "bob", []*edgetest.Edge{e}, first)
	dial(t, c, "bob", []*edgetest.Edge{e}, second)
	select {
	case <-firstCl.Done(): // it stopped connecting: it cannot come back
	case <-time.After(20 * time.Second):
		t.Fatal("the replaced client is still connecting after 20s")
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		first.mu.Lock()
		defer first.mu.Unlock()
		for _, s := range first.states {
			if s.State == client.Disconnected && errors.Is(s.Err, client.ErrReplaced) {
				return nil
			}
		}
		return fmt.Errorf("first connection's states %v, want disconnected with ErrReplaced", first.states)
	})
	// A barrier through the node: the second connection still holds it, so
	// the first did not come back and replace it.
	alice := dial(t, c, "alice", []*edgetest.Edge{e}, nil)
	if out := send(t, alice, client.Outgoing{DestID: "bob", Payload: "barrier"}); out.Status != allspark.StatusDelivered {
		t.Fatalf("barrier %+v", out)
	}
	second.waitMessages(t, 1)
	if n := second.countState(client.Disconnected); n != 0 {
		t.Fatalf("the second connection was disconnected %d times: the first came back", n)
	}
	if n := first.countState(client.Connected); n != 1 {
		t.Fatalf("the first client connected %d times, want 1", n)
	}
}
