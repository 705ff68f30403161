package edge_test

import (
	"encoding/json"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/wstest"
)

const wait = 5 * time.Second

func isSent(f wstest.Frame) bool { return f.Type == "sent" }

// Acceptance 1: alice on edge A sends to bob on edge B.
func TestOneToOneAcrossEdges(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	alice := c.dial(a, "alice", "acme-user-7")
	bob := c.dial(b, "bob", "bob")

	alice.Send(t, map[string]any{"id": "c-17", "dest_id": "bob", "payload": "hi", "payload1": map[string]int{"n": 1}, "payload2": []int{1, 2}})

	got := bob.Until(t, wait, wstest.Frame.IsMessage)
	if got.SrcID != "alice" || got.SrcClientID != "acme-user-7" || got.DestID != "bob" || got.MsgID == "" || got.TS == 0 {
		t.Fatalf("bob got %s", got.Raw)
	}
	for name, pair := range map[string][2]string{
		"payload": {string(got.Payload), `"hi"`}, "payload1": {string(got.Payload1), `{"n":1}`}, "payload2": {string(got.Payload2), `[1,2]`},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %s, want %s", name, pair[0], pair[1])
		}
	}
	sent := alice.Until(t, wait, isSent)
	if sent.ID != "c-17" || sent.Status != "delivered" || sent.MsgID != got.MsgID {
		t.Fatalf("alice got %s, want delivered for %s", sent.Raw, got.MsgID)
	}
}

// Ids with subject-significant characters must route as opaque strings.
func TestOddIDsRoute(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	ids := []string{"a.b.c", "*", ">", "with space", "ünïcødé ✓", "x.*.>", "/slash/", "==", "-"}
	clients := map[string]*wstest.Client{}
	for i, id := range ids {
		e := a
		if i%2 == 1 {
			e = b
		}
		clients[id] = c.dial(e, id, id)
	}
	for i, from := range ids {
		to := ids[(i+1)%len(ids)]
		clients[from].Send(t, map[string]any{"dest_id": to, "payload": from})
		got := clients[to].Until(t, wait, wstest.Frame.IsMessage)
		if got.SrcID != from || got.DestID != to || string(got.Payload) != mustQuote(from) {
			t.Fatalf("%q -> %q: got %s", from, to, got.Raw)
		}
		if s := clients[from].Until(t, wait, isSent); s.Status != "delivered" {
			t.Fatalf("%q -> %q: %s", from, to, s.Raw)
		}
	}
	// A node with a similar-looking id must receive nothing.
	for id, cl := range clients {
		select {
		case f := <-cl.Frames():
			t.Fatalf("%q got extra frame %s", id, f.Raw)
		default:
		}
	}
}

func mustQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// Acceptance 2: one copy to each of a client's three nodes on two edges.
func TestClientFanOutAcrossEdges(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	phone := c.dial(a, "carol-phone", "carol")
	laptop := c.dial(b, "carol-laptop", "carol")
	tablet := c.dial(b, "carol-tablet", "carol")
	dave := c.dial(a, "dave", "dave")

	dave.Send(t, map[string]any{"id": "m1", "dest_client_id": "carol", "payload": "hello all"})
	var got []string
	for _, cl := range []*wstest.Client{phone, laptop, tablet} {
		f := cl.Until(t, wait, wstest.Frame.IsMessage)
		if f.DestClientID != "carol" || f.SrcID != "dave" {
			t.Fatalf("got %s", f.Raw)
		}
		got = append(got, f.MsgID)
	}
	if got[0] != got[1] || got[1] != got[2] {
		t.Fatalf("msg ids differ: %v", got)
	}
	if s := dave.Until(t, wait, isSent); s.Status != "delivered" || s.ID != "m1" {
		t.Fatalf("dave got %s", s.Raw)
	}
	for i, cl := range []*wstest.Client{phone, laptop, tablet} {
		cl.Quiet(t, 100*time.Millisecond) // exactly one copy each
		_ = i
	}
}

// A client's other devices get the message; the sending device does not.
func TestClientFanOutSkipsSender(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	phone := c.dial(a, "erin-phone", "erin")
	laptop := c.dial(a, "erin-laptop", "erin")
	phone.Send(t, map[string]any{"dest_client_id": "erin", "payload": "note to self"})
	if f := laptop.Until(t, wait, wstest.Frame.IsMessage); f.SrcID != "erin-phone" {
		t.Fatalf("laptop got %s", f.Raw)
	}
	if s := phone.Next(t, wait); s.Type != "sent" || s.Status != "delivered" {
		t.Fatalf("phone got %s, want only its sent", s.Raw)
	}
}

// Per-sender order holds across edges.
func TestOrderPerSender(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	alice := c.dial(a, "alice", "alice")
	bob := c.dial(b, "bob", "bob")
	const n = 500
	for i := range n {
		alice.Send(t, map[string]any{"dest_id": "bob", "payload": i})
	}
	for i := range n {
		f := bob.Until(t, wait, wstest.Frame.IsMessage)
		if string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("message %d has payload %s", i, f.Payload)
		}
	}
	var statuses []string
	for range n {
		statuses = append(statuses, alice.Until(t, wait, isSent).Status)
	}
	sort.Strings(statuses)
	if statuses[0] != "delivered" || statuses[n-1] != "delivered" {
		t.Fatalf("statuses: first %s last %s", statuses[0], statuses[n-1])
	}
}
