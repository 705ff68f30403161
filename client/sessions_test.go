package client_test

import (
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

// Sessions: create, anonymous join, presence, members, and the resume:
// messages sent to the session while a member was away reach it after its
// reconnect through the automatic sync.
func TestSessionsAndResume(t *testing.T) {
	c := edgetest.New(t)
	a, b := c.Edge("edge-a"), c.Edge("edge-b")
	alice := dial(t, c, "alice", []*edgetest.Edge{a}, nil)
	aliceRec := newRecorder()
	alice.Close()
	alice = dial(t, c, "alice", []*edgetest.Edge{a}, aliceRec)
	sid, err := alice.CreateSession(t.Context(), "room-1", true)
	if err != nil || sid != "room-1" {
		t.Fatalf("create: %q %v", sid, err)
	}
	bob := newRecorder()
	bobCl := dial(t, c, "bob", []*edgetest.Edge{b, a}, bob)
	member, err := bobCl.JoinSession(t.Context(), sid, true)
	if err != nil || len(member) < 5 || member[:5] != "anon-" {
		t.Fatalf("anonymous join: %q %v", member, err)
	}
	// Presence: alice sees carol, a named member, come online. (Anonymous
	// members such as bob have no presence: see docs/PROTOCOL.md.)
	carolCl := dial(t, c, "carol", []*edgetest.Edge{b}, nil)
	if m, err := carolCl.JoinSession(t.Context(), sid, false); err != nil || m != "carol" {
		t.Fatalf("join: %q %v", m, err)
	}
	carolCl.Close()
	testutil.Eventually(t, 10*time.Second, func() error {
		aliceRec.mu.Lock()
		defer aliceRec.mu.Unlock()
		for _, p := range aliceRec.presence {
			if p.SessionID == sid && p.MemberID == "carol" && !p.Online {
				return nil
			}
		}
		return fmt.Errorf("alice saw presence %v, want carol offline", aliceRec.presence)
	})
	aliceRec.mu.Lock()
	for _, p := range aliceRec.presence {
		if p.MemberID == member {
			t.Errorf("presence for the anonymous member %s: %+v", member, p)
		}
	}
	aliceRec.mu.Unlock()
	info, err := alice.Session(t.Context(), sid)
	if err != nil || len(info.Members) != 3 {
		t.Fatalf("members: %+v %v", info, err)
	}

	out := send(t, alice, client.Outgoing{DestSessionID: sid, Payload: "live"})
	if out.Status != allspark.StatusStored || out.Seq == 0 {
		t.Fatalf("session send: %+v", out)
	}
	bob.waitMessages(t, 1)

	// Bob's edge dies; while he is away alice sends three more.
	b.Kill()
	bob.waitState(t, client.Disconnected, 1)
	for i := range 3 {
		send(t, alice, client.Outgoing{DestSessionID: sid, Payload: i})
	}
	bob.waitState(t, client.Connected, 2)
	got := bob.waitMessages(t, 4)
	for i, m := range got[1:] {
		if string(m.Payload) != fmt.Sprint(i) || m.SrcID != "alice" || m.DestSessionID != sid {
			t.Fatalf("resumed message %d: %+v", i, m.Message)
		}
	}
	bob.mu.Lock()
	for id, n := range bob.count {
		if n != 1 {
			t.Errorf("msg %s handled %d times", id, n)
		}
	}
	bob.mu.Unlock()

	// Explicit sync from the start pages the history again; every message is
	// a duplicate, so the handler sees nothing new.
	last, err := bobCl.Sync(t.Context(), sid, 0, 0)
	if err != nil || last < out.Seq {
		t.Fatalf("sync: %d %v", last, err)
	}
	if n := len(bob.messages()); n != 4 {
		t.Fatalf("after a full sync the handler saw %d messages, want still 4", n)
	}

	// Unjoin: sending is then refused.
	if err := bobCl.UnjoinSession(t.Context(), sid); err != nil {
		t.Fatal(err)
	}
	if out := send(t, bobCl, client.Outgoing{DestSessionID: sid, Payload: "x"}); out.Status != allspark.StatusRejected || out.Error.Code != allspark.CodeNotMember {
		t.Fatalf("send after unjoin: %+v", out)
	}
	// A sync of a session one is not in fails with the edge's code.
	if _, err := bobCl.Sync(t.Context(), sid, 0, 0); !errors.Is(err, &allspark.Error{Code: allspark.CodeNotMember}) {
		var ae *allspark.Error
		if !errors.As(err, &ae) || ae.Code != allspark.CodeNotMember {
			t.Fatalf("sync when not a member: %v", err)
		}
	}
}

func TestPushTokens(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	cl := dial(t, c, "bob", []*edgetest.Edge{e}, nil)
	if err := cl.AddPushToken(t.Context(), "fcm", "token-123"); err != nil {
		t.Fatalf("add: %v", err)
	}
	if err := cl.RemovePushToken(t.Context(), "token-123"); err != nil {
		t.Fatalf("remove: %v", err)
	}
	err := cl.AddPushToken(t.Context(), "carrier-pigeon", "t")
	var he *client.HTTPError
	if !errors.As(err, &he) || he.Status != 400 || he.Err.Code != allspark.CodeBadRequest {
		t.Fatalf("unknown platform: %v, want HTTP 400 bad_request", err)
	}
}

// Presence: a member's join while connected and its disconnection reach
// the other members as events.
func TestPresenceOnlineOffline(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	alice := newRecorder()
	aliceCl := dial(t, c, "alice", []*edgetest.Edge{e}, alice)
	sid, err := aliceCl.CreateSession(t.Context(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	bobCl := dial(t, c, "bob", []*edgetest.Edge{e}, nil)
	if _, err := bobCl.JoinSession(t.Context(), sid, false); err != nil {
		t.Fatal(err)
	}
	want := func(online bool) {
		t.Helper()
		testutil.Eventually(t, 10*time.Second, func() error {
			alice.mu.Lock()
			defer alice.mu.Unlock()
			for _, p := range alice.presence {
				if p == (client.Presence{SessionID: sid, MemberID: "bob", Online: online}) {
					return nil
				}
			}
			return fmt.Errorf("presence events %v, want bob online=%v", alice.presence, online)
		})
	}
	want(true)
	bobCl.Close()
	want(false)
}

// Presence summaries: past the edge's PresenceMaxMembers a session's
// members get the count of named members online instead of per-member
// presence, through OnPresenceSummary.
func TestPresenceSummaryInLargeSession(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a", func(cfg *edge.Config) {
		cfg.PresenceMaxMembers = 2 // three members make the session large
		cfg.PresenceSummaryInterval = 20 * time.Millisecond
		// The edge trusts a member count for this long: bob's join reads 2,
		// and the session must be seen large once carol joined.
		cfg.PresenceSizeTTL = time.Millisecond
	})
	owner := dial(t, c, "alice", []*edgetest.Edge{e}, nil)
	sid, err := owner.CreateSession(t.Context(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	var others []*client.Client
	for _, node := range []string{"bob", "carol"} {
		cl := dial(t, c, node, []*edgetest.Edge{e}, nil)
		if _, err := cl.JoinSession(t.Context(), sid, false); err != nil {
			t.Fatalf("%s joins: %v", node, err)
		}
		others = append(others, cl)
	}
	// Alice connects again, now to a session of three: she is told how
	// many named members are online (her two connections count once: they
	// are on one edge), and again when carol leaves.
	alice := newRecorder()
	aliceCl := dial(t, c, "alice", []*edgetest.Edge{e}, alice)
	owner.Close()
	aliceCl.TrackSession(sid, 0)
	summaryOf := func(online int) {
		t.Helper()
		testutil.Eventually(t, 20*time.Second, func() error {
			alice.mu.Lock()
			defer alice.mu.Unlock()
			for _, s := range alice.summary {
				if s == (client.PresenceSummary{SessionID: sid, Online: online}) {
					return nil
				}
			}
			return fmt.Errorf("summaries %v, want %d online in %s", alice.summary, online, sid)
		})
	}
	summaryOf(3)
	others[1].Close()
	summaryOf(2)
	// The edge's tests prove no per-member frame is sent; this catches a
	// client that would turn summaries into Presence events. Bob's message
	// is a barrier for what alice's connection carried before it.
	send(t, others[0], client.Outgoing{DestSessionID: sid, Payload: "barrier"})
	alice.waitMessages(t, 1)
	alice.mu.Lock()
	defer alice.mu.Unlock()
	for _, p := range alice.presence {
		if p.SessionID == sid {
			t.Errorf("per-member presence in a session past the threshold: %+v", p)
		}
	}
}
