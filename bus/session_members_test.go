package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// sessionsKV is the raw sessions bucket, to write what older versions
// wrote and to look at what this one writes.
func (r *sessionsRig) sessionsKV() jetstream.KeyValue {
	r.t.Helper()
	js, err := jetstream.New(r.nc)
	if err != nil {
		r.t.Fatal(err)
	}
	kv, err := js.KeyValue(r.t.Context(), "allspark_sessions")
	if err != nil {
		r.t.Fatal(err)
	}
	return kv
}

// The cap holds exactly under concurrent joins: 120 nodes join a session
// capped at 50 at once; exactly 50 are members (the creator and 49), the
// count says 50, and every refused node holds no slot.
func TestSessionsMemberCapExactUnderConcurrentJoins(t *testing.T) {
	const limit, nodes = 50, 120
	r := openSessions(t, bus.SessionsConfig{MaxMembers: limit})
	ctx := t.Context()
	if err := r.s.Create(ctx, "room", "owner", false); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var won, full atomic.Int64
	errs := make(chan error, nodes)
	for i := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := r.s.Join(ctx, "room", fmt.Sprintf("n%03d", i), false)
			switch {
			case err == nil:
				won.Add(1)
			case errors.Is(err, bus.ErrSessionFull):
				full.Add(1)
			default:
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	members := r.members("room")
	if won.Load() != limit-1 || len(members) != limit {
		t.Fatalf("%d joins won, %d refused full, %d members; want %d won and %d members", won.Load(), full.Load(), len(members), limit-1, limit)
	}
	if n, err := r.s.Count(ctx, "room"); err != nil || n != limit {
		t.Fatalf("Count = %d %v, want %d", n, err, limit)
	}
	for i := range nodes {
		n := fmt.Sprintf("n%03d", i)
		if _, in := members[n]; !in {
			r.noSlot(n, "room")
		}
	}
	// Leaving frees a place at once.
	for n := range members {
		if n != "owner" {
			if err := r.s.Unjoin(ctx, "room", n); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	if _, _, err := r.s.Join(ctx, "room", "late", false); err != nil {
		t.Fatalf("join after a member left a full session: %v", err)
	}
}

// Members are keys of their own: a join writes one small value whatever
// the session's size, an unjoin leaves no key behind (its marker is
// purged once the index has it), and a member can join again.
func TestSessionsMemberKeys(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	ctx := t.Context()
	kv := r.sessionsKV()
	if err := r.s.Create(ctx, "room", "owner", true); err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, _, err := r.s.Join(ctx, "room", fmt.Sprintf("m%02d", i), false); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := kv.Get(ctx, bus.Token("room"))
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]any
	if err := json.Unmarshal(rec.Value(), &raw); err != nil || raw["members"] != nil || raw["v"] != float64(2) {
		t.Fatalf("record %s (%v): want format 2 without members", rec.Value(), err)
	}
	alias, _, err := r.s.Join(ctx, "room", "ghost", true)
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := r.s.Count(ctx, "room"); n != 32 {
		t.Fatalf("count %d, want 32", n)
	}
	for _, node := range []string{"m07", "ghost"} {
		if err := r.s.Unjoin(ctx, "room", node); err != nil {
			t.Fatal(err)
		}
		if _, err := r.s.Member(ctx, "room", node); !errors.Is(err, bus.ErrNotMember) {
			t.Fatalf("%s after unjoin: %v, want ErrNotMember", node, err)
		}
	}
	if _, _, err := r.s.MemberNode(ctx, "room", alias); !errors.Is(err, bus.ErrMemberNotFound) {
		t.Fatalf("alias after its member left: %v, want ErrMemberNotFound", err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for k := range keys.Keys() {
		if k == bus.Token("room")+".n."+bus.Token("m07") || k == bus.Token("room")+".n."+bus.Token("ghost") {
			t.Errorf("key %s left behind by an unjoin", k)
		}
		n++
	}
	if n != 1+30 { // the record, the owner and 29 members
		t.Errorf("%d keys, want 31", n)
	}
	if c, _ := r.s.Count(ctx, "room"); c != 30 || len(r.members("room")) != 30 {
		t.Fatalf("count %d, members %d after two unjoins; want 30", c, len(r.members("room")))
	}
	if _, joined, err := r.s.Join(ctx, "room", "m07", false); err != nil || !joined {
		t.Fatalf("join again: %v %v", joined, err)
	}
	if got, _ := r.s.NodeSessions(ctx, "m07"); got["room"] != "m07" {
		t.Fatalf("m07's index after joining again: %v", got)
	}
	if _, _, err := r.s.MemberNode(ctx, "room", "m07"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.s.MemberNode(ctx, "room", "nobody"); !errors.Is(err, bus.ErrMemberNotFound) {
		t.Fatalf("unknown member: %v", err)
	}
	if _, _, err := r.s.MemberNode(ctx, "nowhere", "m07"); !errors.Is(err, bus.ErrSessionNotFound) {
		t.Fatalf("unknown session: %v", err)
	}
}

// A session written in the first format (every member inline in its
// record, as data directories of earlier versions hold) still works: it
// is migrated to member keys the first time it is touched, and its
// members, anonymous aliases and count are all there.
func TestSessionsFirstFormatRecordMigrates(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{MaxMembers: 5})
	ctx := t.Context()
	kv := r.sessionsKV()
	old := `{"id":"old","allow_anonymous":true,"created_by":"a","created_at":1,"members":{` +
		`"a":{"member_id":"a"},"b":{"member_id":"b"},"g":{"member_id":"anon-xyz","anonymous":true}}}`
	if _, err := kv.Create(ctx, bus.Token("old"), []byte(old)); err != nil {
		t.Fatal(err)
	}
	// Reads see the members (the first one migrates).
	if m, err := r.s.Member(ctx, "old", "b"); err != nil || m.MemberID != "b" {
		t.Fatalf("member b of a first-format session: %+v %v", m, err)
	}
	if node, anon, err := r.s.MemberNode(ctx, "old", "anon-xyz"); err != nil || node != "g" || !anon {
		t.Fatalf("alias of a first-format session: %q %v %v", node, anon, err)
	}
	if n, err := r.s.Count(ctx, "old"); err != nil || n != 3 {
		t.Fatalf("count after migration %d %v, want 3", n, err)
	}
	if m := r.members("old"); len(m) != 3 || m["g"].MemberID != "anon-xyz" || !m["g"].Anonymous {
		t.Fatalf("members after migration: %v", m)
	}
	sess, err := r.s.Get(ctx, "old")
	if err != nil || !sess.AllowAnonymous || sess.CreatedBy != "a" || sess.Format != 2 {
		t.Fatalf("record after migration: %+v %v", sess, err)
	}
	// Writes work, and the cap counts the migrated members.
	for _, n := range []string{"c", "d"} {
		if _, _, err := r.s.Join(ctx, "old", n, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := r.s.Join(ctx, "old", "e", false); !errors.Is(err, bus.ErrSessionFull) {
		t.Fatalf("sixth member of a migrated session capped at 5: %v", err)
	}
	if err := r.s.Unjoin(ctx, "old", "a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.s.Member(ctx, "old", "a"); !errors.Is(err, bus.ErrNotMember) {
		t.Fatalf("a after unjoin: %v", err)
	}
}

// A first-format session is migrated by its first write too, and two
// edges migrating it at once count its members once.
func TestSessionsFirstFormatConcurrentMigration(t *testing.T) {
	r := openSessions(t, bus.SessionsConfig{})
	ctx := t.Context()
	kv := r.sessionsKV()
	members := map[string]bus.Member{}
	for i := range 200 {
		n := fmt.Sprintf("n%03d", i)
		members[n] = bus.Member{MemberID: n}
	}
	old, _ := json.Marshal(map[string]any{"id": "old", "created_by": "n000", "created_at": 1, "members": members})
	if _, err := kv.Create(ctx, bus.Token("old"), old); err != nil {
		t.Fatal(err)
	}
	other := openSessionsOn(t, r.nc, bus.SessionsConfig{})
	var wg sync.WaitGroup
	for i, s := range []*bus.Sessions{r.s, other, r.s, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Join(context.Background(), "old", fmt.Sprintf("new%d", i), false); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n, err := r.s.Count(ctx, "old"); err != nil || n != 204 {
		t.Fatalf("count %d %v, want 204", n, err)
	}
	if got := r.members("old"); len(got) != 204 {
		t.Fatalf("%d members, want 204", len(got))
	}
}
