package bus

import (
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
