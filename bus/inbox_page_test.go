package bus_test

import (
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

func openTestInbox(t *testing.T) (*bus.Inbox, *nats.Conn) {
	t.Helper()
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	inbox, err := bus.OpenInbox(t.Context(), nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 1000, NoEvents: true}, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	return inbox, nc
}

// Pages of a node's inbox hold its messages only, in order, up to the
// count and the bytes asked (at least one message), and say when nothing
// is left.
func TestInboxPages(t *testing.T) {
	inbox, _ := openTestInbox(t)
	for i := range 7 {
		for _, node := range []string{"bob", "carol"} {
			if err := inbox.Store(t.Context(), node, fmt.Sprintf("%s-%d", node, i), fmt.Appendf(nil, `{"payload":"%s-%d"}`, node, i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var got []string
	from, pages := uint64(0), 0
	for {
		msgs, end, err := inbox.Page(t.Context(), "bob", from, 3, 0)
		if err != nil {
			t.Fatalf("page from %d: %v", from, err)
		}
		pages++
		for _, m := range msgs {
			got = append(got, m.MsgID)
			from = m.Seq + 1
		}
		if end {
			break
		}
	}
	if fmt.Sprint(got) != "[bob-0 bob-1 bob-2 bob-3 bob-4 bob-5 bob-6]" || pages != 3 {
		t.Fatalf("read %v in %d pages, want bob-0..bob-6 in 3", got, pages)
	}
	if _, _, err := inbox.Page(t.Context(), "bob", from, 3, 0); !errors.Is(err, bus.ErrInboxEmpty) {
		t.Fatalf("page past the end: %v, want ErrInboxEmpty", err)
	}
	// 1 byte a page: one message each, never none.
	msgs, end, err := inbox.Page(t.Context(), "carol", 0, 5, 1)
	if err != nil || len(msgs) != 1 || msgs[0].MsgID != "carol-0" || end {
		t.Fatalf("page of 1 byte: %v end %v (%v), want carol-0 and more", msgs, end, err)
	}
}

// Next reads through the stream leader, never by a direct get (which a
// lagging follower may answer), though the stream allows direct gets.
func TestInboxNextReadsThroughLeader(t *testing.T) {
	inbox, nc := openTestInbox(t)
	if err := inbox.Store(t.Context(), "bob", "m1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	spy := testutil.Connect(t, nc.ConnectedUrl())
	var direct, leader atomic.Int64
	for subj, n := range map[string]*atomic.Int64{"$JS.API.DIRECT.GET.>": &direct, "$JS.API.STREAM.MSG.GET.>": &leader} {
		if _, err := spy.Subscribe(subj, func(*nats.Msg) { n.Add(1) }); err != nil {
			t.Fatal(err)
		}
	}
	if err := spy.Flush(); err != nil {
		t.Fatal(err)
	}
	m, err := inbox.Next(t.Context(), "bob", 0)
	if err != nil || m.MsgID != "m1" {
		t.Fatalf("next: %+v (%v), want m1", m, err)
	}
	if _, err := inbox.Next(t.Context(), "bob", m.Seq+1); !errors.Is(err, bus.ErrInboxEmpty) {
		t.Fatalf("next past the end: %v, want ErrInboxEmpty", err)
	}
	testutil.Eventually(t, 5*time.Second, func() error {
		if leader.Load() != 2 {
			return fmt.Errorf("%d leader gets seen, want 2", leader.Load())
		}
		return nil
	})
	if d := direct.Load(); d != 0 {
		t.Fatalf("%d direct gets for Next, want 0", d)
	}
}
