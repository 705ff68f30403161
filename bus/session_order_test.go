package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

// History appends finish in any order, but a session sees one sender's
// messages live in the order they were sent, with increasing seqs.
func TestSessionMessagesGoLiveInSendOrder(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	log := testutil.Logger(t)
	hist, err := bus.OpenHistory(t.Context(), nc, subj, bus.HistoryConfig{Replicas: 1, MaxAge: time.Hour, MaxPerSession: 10000,
		AttemptTimeout: 2 * time.Second, MaxInFlight: 1 << 14})
	if err != nil {
		t.Fatal(err)
	}
	req, err := bus.NewRequester(nc, 5*time.Second, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := bus.NewRouter(bus.RouterDeps{NATS: nc, Requester: req, Subjects: subj, History: hist, Now: time.Now, Log: log,
		StoreTimeout: 10 * time.Second, StoreQueue: 1 << 14, StoreQueueBytes: 64 << 20})
	t.Cleanup(func() { req.Close(); r.Close() })

	const n = 500
	live := make(chan *nats.Msg, n)
	watcher := testutil.Connect(t, ns.ClientURL())
	if _, err := watcher.ChanSubscribe(subj.SessionLive("room"), live); err != nil {
		t.Fatal(err)
	}
	if err := watcher.Flush(); err != nil {
		t.Fatal(err)
	}
	var order bus.OutcomeOrder
	answers := make(chan allspark.Sent, n)
	for i := range n {
		m := &allspark.Message{SrcID: "alice", SrcNode: "alice", DestSessionID: "room", Payload: json.RawMessage(fmt.Sprint(i))}
		r.Send(context.Background(), m, fmt.Sprint(i), &order, func(s allspark.Sent) { answers <- s })
	}
	var lastSeq uint64
	for i := range n {
		select {
		case m := <-live:
			var f struct {
				Seq     uint64 `json:"seq"`
				Payload int    `json:"payload"`
			}
			if err := json.Unmarshal(m.Data, &f); err != nil {
				t.Fatalf("live frame %q: %v", m.Data, err)
			}
			if f.Payload != i || f.Seq <= lastSeq {
				t.Fatalf("live message %d is payload %d with seq %d (previous seq %d): out of send order", i, f.Payload, f.Seq, lastSeq)
			}
			lastSeq = f.Seq
		case <-time.After(30 * time.Second):
			t.Fatalf("%d of %d session messages went live", i, n)
		}
		select {
		case s := <-answers:
			if s.Status != allspark.StatusStored || s.ID != fmt.Sprint(i) {
				t.Fatalf("answer %d: %+v", i, s)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("no answer %d within 30s", i)
		}
	}
}

// One msg_id sent to two sessions (a backend may choose its msg_ids) is two
// messages: each is appended to its own session's history.
func TestSameMsgIDInTwoSessions(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	hist, err := bus.OpenHistory(t.Context(), nc, subj, bus.HistoryConfig{Replicas: 1, MaxAge: time.Hour, MaxPerSession: 100})
	if err != nil {
		t.Fatal(err)
	}
	req, err := bus.NewRequester(nc, 5*time.Second, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := bus.NewRouter(bus.RouterDeps{NATS: nc, Requester: req, Subjects: subj, History: hist, Now: time.Now, Log: testutil.Logger(t)})
	t.Cleanup(func() { req.Close(); r.Close() })
	seqs := map[string]uint64{}
	for _, sid := range []string{"room-a", "room-b"} {
		done := make(chan allspark.Sent, 1)
		r.Send(context.Background(), &allspark.Message{MsgID: "announce-1", SrcID: "billing", DestSessionID: sid, Payload: json.RawMessage(`"x"`)}, "", nil, func(s allspark.Sent) { done <- s })
		var s allspark.Sent
		select {
		case s = <-done:
		case <-time.After(30 * time.Second):
			t.Fatalf("%s: no answer within 30s", sid)
		}
		if s.Status != allspark.StatusStored {
			t.Fatalf("%s: %+v", sid, s)
		}
		seqs[sid] = s.Seq
	}
	if seqs["room-a"] == seqs["room-b"] {
		t.Fatalf("both sessions were answered seq %d: the second append was taken for a duplicate", seqs["room-a"])
	}
	for sid, seq := range seqs {
		page, _, err := hist.Range(t.Context(), sid, 0, 10, 1<<20)
		if err != nil || len(page) != 1 || page[0].Seq != seq {
			t.Fatalf("%s history %+v (%v), want the message at seq %d", sid, page, err, seq)
		}
	}
}
