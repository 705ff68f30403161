package bus_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

type sessionsRig struct {
	t           *testing.T
	nc          *nats.Conn
	s           *bus.Sessions
	memberships jetstream.KeyValue // raw view of the node index
}

func openSessions(t *testing.T, cfg bus.SessionsConfig) *sessionsRig {
	t.Helper()
	nc := testutil.Connect(t, testutil.RunNATS(t).ClientURL())
	s := openSessionsOn(t, nc, cfg)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(t.Context(), "allspark_memberships")
	if err != nil {
		t.Fatal(err)
	}
	return &sessionsRig{t: t, nc: nc, s: s, memberships: kv}
}

// openSessionsOn opens a Sessions on nc: another one on the same
// connection's server stands for another edge.
func openSessionsOn(t *testing.T, nc *nats.Conn, cfg bus.SessionsConfig) *bus.Sessions {
	t.Helper()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := bus.NewSubjects("allspark")
	if err != nil {
		t.Fatal(err)
	}
	s, err := bus.OpenSessions(t.Context(), js, subj, cfg, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// rawEntries is node's index as stored, entries of every state.
func (r *sessionsRig) rawEntries(node string) map[string]map[string]any {
	r.t.Helper()
	e, err := r.memberships.Get(context.Background(), bus.Token(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		r.t.Fatal(err)
	}
	var v struct {
		Sessions map[string]map[string]any `json:"sessions"`
	}
	if err := json.Unmarshal(e.Value(), &v); err != nil {
		r.t.Fatalf("memberships of %s: %v (%s)", node, err, e.Value())
	}
	return v.Sessions
}

// noReservation fails if node's index holds anything but tombstones for sid.
func (r *sessionsRig) noSlot(node, sid string) {
	r.t.Helper()
	if e, ok := r.rawEntries(node)[sid]; ok && e["state"] != "gone" {
		r.t.Fatalf("%s's index holds %v for %s, want no slot", node, e, sid)
	}
}

// members reads every member of sid, page by page (small pages, so the
// paging is exercised too).
func (r *sessionsRig) members(sid string) map[string]bus.Member {
	r.t.Helper()
	out := map[string]bus.Member{}
	var from uint64
	for {
		page, err := r.s.Page(context.Background(), sid, from, 7)
		if err != nil {
			r.t.Fatalf("page %s from %d: %v", sid, from, err)
		}
		for _, m := range page.Members {
			if _, dup := out[m.Node]; dup {
				r.t.Fatalf("%s listed twice in %s", m.Node, sid)
			}
			out[m.Node] = m.Member
		}
		if page.Next == 0 {
			return out
		}
		from = page.Next
	}
}

func TestSessionsCreateJoinUnjoin(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	ctx := t.Context()
	if err := r.s.Create(ctx, "room", "alice", false); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Create(ctx, "room", "bob", false); !errors.Is(err, bus.ErrSessionExists) {
		t.Fatalf("second create: %v, want ErrSessionExists", err)
	}
	r.noSlot("bob", "room") // the refused create gave its reservation back
	if _, _, err := r.s.Join(ctx, "nowhere", "bob", false); !errors.Is(err, bus.ErrSessionNotFound) {
		t.Fatalf("join unknown: %v", err)
	}

	member, joined, err := r.s.Join(ctx, "room", "bob", false)
	if err != nil || member != "bob" || !joined {
		t.Fatalf("join: %q %v %v", member, joined, err)
	}
	member, joined, err = r.s.Join(ctx, "room", "bob", false)
	if err != nil || member != "bob" || joined {
		t.Fatalf("repeated join: %q joined=%v %v, want bob joined=false", member, joined, err)
	}
	if m := r.members("room"); len(m) != 2 || m["alice"].MemberID != "alice" || m["bob"].MemberID != "bob" {
		t.Fatalf("members %v", m)
	}
	for _, node := range []string{"alice", "bob"} {
		got, err := r.s.NodeSessions(ctx, node)
		if err != nil || got["room"] != node || len(got) != 1 {
			t.Fatalf("sessions of %s: %v %v", node, got, err)
		}
	}

	if err := r.s.Unjoin(ctx, "room", "bob"); err != nil {
		t.Fatal(err)
	}
	if err := r.s.Unjoin(ctx, "room", "bob"); err != nil {
		t.Fatalf("repeated unjoin: %v", err)
	}
	if _, ok := r.members("room")["bob"]; ok {
		t.Fatal("bob still a member after unjoin")
	}
	if got, err := r.s.NodeSessions(ctx, "bob"); err != nil || len(got) != 0 {
		t.Fatalf("bob's sessions after unjoin: %v %v", got, err)
	}
	if err := r.s.Unjoin(ctx, "nowhere", "bob"); !errors.Is(err, bus.ErrSessionNotFound) {
		t.Fatalf("unjoin unknown: %v", err)
	}
}

func TestSessionsAnonymousAliases(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	ctx := t.Context()
	if err := r.s.Create(ctx, "closed", "owner", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.s.Join(ctx, "closed", "ghost", true); !errors.Is(err, bus.ErrAnonymousNotAllowed) {
		t.Fatalf("anonymous join of a closed session: %v", err)
	}
	r.noSlot("ghost", "closed")

	if err := r.s.Create(ctx, "open", "owner", true); err != nil {
		t.Fatal(err)
	}
	alias, joined, err := r.s.Join(ctx, "open", "ghost", true)
	if err != nil || !joined || !strings.HasPrefix(alias, "anon-") || strings.Contains(alias, "ghost") {
		t.Fatalf("anonymous join: %q %v %v", alias, joined, err)
	}
	if node, anon, err := r.s.MemberNode(ctx, "open", alias); err != nil || node != "ghost" || !anon {
		t.Fatalf("MemberNode(%s) = %q anonymous=%v %v", alias, node, anon, err)
	}
	if m := r.members("open")["ghost"]; m.MemberID != alias || !m.Anonymous {
		t.Fatalf("ghost listed as %+v", m)
	}
	if got, _ := r.s.NodeSessions(ctx, "ghost"); got["open"] != alias {
		t.Fatalf("ghost's sessions %v, want open -> %s", got, alias)
	}
	again, joined, err := r.s.Join(ctx, "open", "ghost", true)
	if err != nil || joined || again != alias {
		t.Fatalf("repeated anonymous join: %q joined=%v %v, want the same alias %s", again, joined, err, alias)
	}
	other, _, err := r.s.Join(ctx, "open", "ghost2", true)
	if err != nil || other == alias {
		t.Fatalf("second anonymous member: %q %v (first %s)", other, err, alias)
	}
}

func TestSessionsMemberCap(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{MaxMembers: 2})
	ctx := t.Context()
	if err := r.s.Create(ctx, "room", "a", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.s.Join(ctx, "room", "b", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.s.Join(ctx, "room", "c", false); !errors.Is(err, bus.ErrSessionFull) {
		t.Fatalf("join past the cap: %v, want ErrSessionFull", err)
	}
	r.noSlot("c", "room") // its reservation was released
	if _, ok := r.members("room")["c"]; ok {
		t.Fatal("c listed past the cap")
	}
}

func TestSessionsNodeCap(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{MaxNodeSessions: 2})
	ctx := t.Context()
	for _, sid := range []string{"s1", "s2", "s3"} {
		if err := r.s.Create(ctx, sid, "owner", false); err != nil && sid != "s3" {
			t.Fatal(err)
		} else if sid == "s3" && !errors.Is(err, bus.ErrTooManySessions) {
			t.Fatalf("third create: %v, want ErrTooManySessions", err)
		}
	}
	if _, err := r.s.Get(ctx, "s3"); !errors.Is(err, bus.ErrSessionNotFound) {
		t.Fatalf("a create refused by the cap left a session: %v", err)
	}
	if err := r.s.Create(ctx, "s3", "other", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.s.Join(ctx, "s3", "owner", false); !errors.Is(err, bus.ErrTooManySessions) {
		t.Fatalf("join past the node cap: %v, want ErrTooManySessions", err)
	}
	if _, ok := r.members("s3")["owner"]; ok {
		t.Fatal("the session record lists a node its cap refused")
	}
	// Leaving one frees a slot.
	if err := r.s.Unjoin(ctx, "s1", "owner"); err != nil {
		t.Fatal(err)
	}
	if _, joined, err := r.s.Join(ctx, "s3", "owner", false); err != nil || !joined {
		t.Fatalf("join after unjoin: %v %v", joined, err)
	}
}

func TestSessionsCursor(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	ctx := t.Context()
	if n, err := r.s.Cursor(ctx, "room", "a"); err != nil || n != 0 {
		t.Fatalf("cursor before any ack: %d %v", n, err)
	}
	for _, seq := range []uint64{5, 3, 1 << 40} {
		if err := r.s.SetCursor(ctx, "room", "a", seq); err != nil {
			t.Fatal(err)
		}
		if n, err := r.s.Cursor(ctx, "room", "a"); err != nil || n != seq {
			t.Fatalf("cursor = %d %v, want %d", n, err, seq)
		}
	}
	if n, _ := r.s.Cursor(ctx, "room", "b"); n != 0 {
		t.Fatalf("b's cursor %d, want its own (0)", n)
	}
}

// Session ids and aliases come from the configured entropy source, 128
// bits each, and a failing source is an error, never a weak id.
func TestSessionIDsComeFromEntropySource(t *testing.T) {
	entropy := bytes.Repeat([]byte{0xAB}, 16)
	entropy = append(entropy, bytes.Repeat([]byte{0x01}, 16)...)
	r := openSessions(t, bus.SessionsConfig{Rand: bytes.NewReader(entropy)})
	ctx := t.Context()

	id, err := r.s.NewID()
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := bus.NewSessionID(bytes.NewReader(entropy[:16])); id != want || len(id) != 26 {
		t.Fatalf("id %q, want %q (26 chars of 16 source bytes)", id, want)
	}
	if err := r.s.Create(ctx, id, "owner", true); err != nil {
		t.Fatal(err)
	}
	alias, _, err := r.s.Join(ctx, id, "ghost", true)
	if want, _ := bus.NewSessionID(bytes.NewReader(entropy[16:])); err != nil || alias != "anon-"+want {
		t.Fatalf("alias %q %v, want anon-%s", alias, err, want)
	}
	// The source is used up: minting fails instead of falling back.
	if id, err := r.s.NewID(); err == nil {
		t.Fatalf("minted %q from an empty source", id)
	}
	if _, _, err := r.s.Join(ctx, id, "ghost2", true); err == nil {
		t.Fatal("anonymous join with an empty entropy source succeeded")
	}
	r.noSlot("ghost2", id)
}

func TestSessionIDsDefaultToCryptoRand(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	seen := map[string]bool{}
	for range 100 {
		id, err := r.s.NewID()
		if err != nil || len(id) != 26 || seen[id] || strings.ToLower(id) != id {
			t.Fatalf("id %q %v (seen before: %v)", id, err, seen[id])
		}
		seen[id] = true
	}
}

// Acceptance (issue 11 #4): concurrent joins while the per-node cap is hit
// leave every node listed in a session record exactly when its own index
// lists the session. Each of 200 nodes is in one session already, with a
// cap of 2, and joins two more at once: one join per node must lose.
// With a member cap as well, some joins holding a reservation are refused
// by the record and must give the reservation back.
func TestSessionsConcurrentJoinsAtNodeCapLeaveNoOrphans(t *testing.T) {
	t.Run("node cap", func(t *testing.T) { concurrentJoinsAtCap(t, bus.SessionsConfig{MaxNodeSessions: 2}) })
	t.Run("node and member caps", func(t *testing.T) {
		concurrentJoinsAtCap(t, bus.SessionsConfig{MaxNodeSessions: 2, MaxMembers: 101})
	})
}

func concurrentJoinsAtCap(t *testing.T, cfg bus.SessionsConfig) {
	r := openSessions(t, cfg)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	const nodes = 200
	sids := []string{"pre", "room-a", "room-b"}
	for _, sid := range sids {
		if err := r.s.Create(ctx, sid, "owner-"+sid, false); err != nil {
			t.Fatal(err)
		}
	}
	node := func(i int) string { return fmt.Sprintf("node-%03d", i) }
	for i := range nodes {
		if _, _, err := r.s.Join(ctx, "pre", node(i), false); err != nil && !errors.Is(err, bus.ErrSessionFull) {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := map[string]int{} // node -> concurrent joins that succeeded
	var unexpected []error
	for i := range nodes {
		for _, sid := range sids[1:] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, err := r.s.Join(ctx, sid, node(i), false)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won[node(i)]++
				case !errors.Is(err, bus.ErrTooManySessions) && !errors.Is(err, bus.ErrSessionFull):
					unexpected = append(unexpected, fmt.Errorf("%s joins %s: %w", node(i), sid, err))
				}
			}()
		}
	}
	wg.Wait()
	for _, err := range unexpected {
		t.Error(err)
	}
	records := map[string]map[string]bus.Member{}
	for _, sid := range sids {
		records[sid] = r.members(sid)
	}
	for i := range nodes {
		n := node(i)
		in := 0
		for _, sid := range sids {
			if _, ok := records[sid][n]; ok {
				in++
			}
		}
		if in > cfg.MaxNodeSessions {
			t.Errorf("%s is in %d sessions, past its cap of %d", n, in, cfg.MaxNodeSessions)
		}
		index, err := r.s.NodeSessions(ctx, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, sid := range sids {
			m, inRecord := records[sid][n]
			member, inIndex := index[sid]
			if inRecord != inIndex || (inRecord && m.MemberID != member) {
				t.Errorf("%s in %s: record %v (%+v), index %v (%q)", n, sid, inRecord, m, inIndex, member)
			}
		}
		for sid, e := range r.rawEntries(n) {
			if e["state"] == "pending" {
				t.Errorf("%s: reservation for %s left behind", n, sid)
			}
		}
	}
	t.Logf("%d of %d nodes won a concurrent join", len(won), nodes)
}

// A node index written in the first format (a flat session -> member id
// object) still reads, and the next change rewrites it.
func TestSessionsReadFirstIndexFormat(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	ctx := t.Context()
	if err := r.s.Create(ctx, "old", "n", false); err != nil {
		t.Fatal(err)
	}
	if _, err := r.memberships.Put(ctx, bus.Token("n"), []byte(`{"old":"n"}`)); err != nil {
		t.Fatal(err)
	}
	if got, err := r.s.NodeSessions(ctx, "n"); err != nil || len(got) != 1 || got["old"] != "n" {
		t.Fatalf("first-format index read as %v %v", got, err)
	}
	if err := r.s.Unjoin(ctx, "old", "n"); err != nil {
		t.Fatal(err)
	}
	if got, err := r.s.NodeSessions(ctx, "n"); err != nil || len(got) != 0 {
		t.Fatalf("after unjoin: %v %v", got, err)
	}
	if e := r.rawEntries("n")["old"]; e["state"] != "gone" {
		t.Fatalf("rewritten entry %v, want a tombstone", e)
	}
}
