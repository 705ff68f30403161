package bus

import (
	"errors"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// internalSessions opens Sessions on a fresh embedded server (testutil
// imports bus, so this package's own tests start the server directly).
func internalSessions(t *testing.T) *Sessions {
	t.Helper()
	ns, err := StartServer(ServerConfig{Name: "internal", Listen: "127.0.0.1:0", StoreDir: t.TempDir()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	nc, err := nats.Connect(ns.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	subj, err := NewSubjects("allspark")
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSessions(t.Context(), js, subj, SessionsConfig{MaxNodeSessions: 2}, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A join's index write that arrives after a later unjoin's (it was derived
// from an older session record) is ignored, so the index cannot list a
// session its record no longer lists.
func TestMembershipsRefuseStaleDerivation(t *testing.T) {
	s := internalSessions(t)
	ctx := t.Context()
	if err := s.Create(ctx, "room", "owner", false); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Join(ctx, "room", "n", false); err != nil {
		t.Fatal(err)
	}
	cur, err := s.memberKey(ctx, "room", "n")
	if err != nil {
		t.Fatal(err)
	}
	joinedRev := cur.rev
	if err := s.Unjoin(ctx, "room", "n"); err != nil {
		t.Fatal(err)
	}
	if err := s.derive(ctx, "n", "room", "n", joinedRev); err != nil { // the late write
		t.Fatal(err)
	}
	if got, _ := s.NodeSessions(ctx, "n"); len(got) != 0 {
		t.Fatalf("a stale derivation re-listed the session: %v", got)
	}
}

// A reservation left by a join that died holds its slot only for
// pendingTTL; a released one frees it at once.
func TestMembershipsReservationExpires(t *testing.T) {
	s := internalSessions(t)
	ctx := t.Context()
	var off time.Duration
	s.now = func() time.Time { return time.Now().Add(off) }
	for _, sid := range []string{"a", "b"} {
		if made, err := s.reserve(ctx, "n", sid); err != nil || !made {
			t.Fatalf("reserve %s: %v %v", sid, made, err)
		}
	}
	if _, err := s.reserve(ctx, "n", "c"); err == nil {
		t.Fatal("a third reservation fit a cap of 2")
	}
	if err := s.release(ctx, "n", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.reserve(ctx, "n", "c"); err != nil {
		t.Fatalf("reserve after a release: %v", err)
	}
	off = pendingTTL + time.Second // b and c were left behind by joins that died
	if _, err := s.reserve(ctx, "n", "d"); err != nil {
		t.Fatalf("reserve after the others expired: %v", err)
	}
	if got, _ := s.NodeSessions(ctx, "n"); len(got) != 0 {
		t.Fatalf("reservations listed as memberships: %v", got)
	}
}

// A join that died between counting itself and writing its key leaves an
// over-count. While the counter is busy, the session answers full as its
// counter says (joins may be in flight); once the counter has been quiet
// for recountAfter, a refused join recounts the member keys, repairs the
// counter and gets in. A truly full session stays full.
func TestSessionCountRepairsOverCount(t *testing.T) {
	s := internalSessions(t)
	s.maxMembers = 2
	ctx := t.Context()
	var off time.Duration
	s.now = func() time.Time { return time.Now().Add(off) }
	if err := s.Create(ctx, "room", "a", false); err != nil {
		t.Fatal(err)
	}
	if _, err := s.incr(ctx, "room", 1, ""); err != nil { // the join that died
		t.Fatal(err)
	}
	if _, _, err := s.Join(ctx, "room", "b", false); !errors.Is(err, ErrSessionFull) {
		t.Fatalf("join at a fresh over-count: %v, want ErrSessionFull", err)
	}
	off = s.recountAfter + time.Second
	if _, joined, err := s.Join(ctx, "room", "b", false); err != nil || !joined {
		t.Fatalf("join once the counter is quiet: %v %v, want the over-count repaired", joined, err)
	}
	if n, err := s.Count(ctx, "room"); err != nil || n != 2 {
		t.Fatalf("count %d %v, want 2", n, err)
	}
	off += s.recountAfter + time.Second
	if _, _, err := s.Join(ctx, "room", "c", false); !errors.Is(err, ErrSessionFull) {
		t.Fatalf("join past a true cap: %v, want ErrSessionFull", err)
	}
	if n, err := s.Count(ctx, "room"); err != nil || n != 2 {
		t.Fatalf("count after a recount of a full session %d %v, want 2", n, err)
	}
}
