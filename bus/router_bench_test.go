package bus_test

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

func BenchmarkToken(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		_ = bus.Token("alice.phone-7")
	}
}

func BenchmarkWithSeq(b *testing.B) {
	frame := []byte(`{"msg_id":"01M8EM4Q89K3VT8KXGXN20E28K","src_id":"alice","dest_session_id":"room","payload":"hi","ts":1}`)
	b.ReportAllocs()
	for b.Loop() {
		_ = bus.WithSeq(frame, 123456)
	}
}

// BenchmarkRouterSend: one 1:1 message through the router and a real NATS
// server to a responder that acks at once, until the sender's answer:
// the routing cost per message, allocations included.
func BenchmarkRouterSend(b *testing.B) {
	ns := testutil.RunNATS(b)
	nc := testutil.Connect(b, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	responder := testutil.Connect(b, ns.ClientURL())
	if _, err := responder.Subscribe(subj.Node("bob"), func(m *nats.Msg) { _ = m.Respond(bus.ReplyAcked) }); err != nil {
		b.Fatal(err)
	}
	_ = responder.Flush()
	req, err := bus.NewRequester(nc, 5*time.Second, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	defer req.Close()
	r := bus.NewRouter(bus.RouterDeps{NATS: nc, Requester: req, Subjects: subj, Now: time.Now,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer r.Close()
	done := make(chan allspark.Sent, 1)
	payload := []byte(`{"text":"a chat line of typical length, around sixty bytes"}`)
	b.ReportAllocs()
	for b.Loop() {
		m := &allspark.Message{SrcID: "alice", DestID: "bob", Payload: payload}
		r.Send(context.Background(), m, "", nil, func(s allspark.Sent) { done <- s })
		if s := <-done; s.Status != allspark.StatusDelivered {
			b.Fatalf("got %+v", s)
		}
	}
}
