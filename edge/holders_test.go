package edge

import (
	"log/slog"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
)

// A service id's subject is also read by backend replicas: the holder
// announcements of a service connection must not appear there.
func TestServiceIDsAreNotAnnounced(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, err := bus.NewSubjects("allspark")
	if err != nil {
		t.Fatal(err)
	}
	h := newHub(nc, subj, slog.New(slog.DiscardHandler), hubLimits{inboxReads: 1})
	svc, err := nc.SubscribeSync(subj.Node("svc:orders"))
	if err != nil {
		t.Fatal(err)
	}
	dev, err := nc.SubscribeSync(subj.Node("bob"))
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	for _, op := range []byte{opHello, opHere, opMarker, opBye} {
		h.announceLocked("svc:orders", &hubNode{}, op)
		h.announceLocked("bob", &hubNode{}, op)
	}
	if err := nc.Publish(subj.Node("svc:orders"), []byte("barrier")); err != nil {
		t.Fatal(err)
	}
	if m, err := svc.NextMsg(5 * time.Second); err != nil || string(m.Data) != "barrier" {
		t.Fatalf("service subject got %v (err %v) before the barrier", m, err)
	}
	if m, err := dev.NextMsg(5 * time.Second); err != nil || m.Header.Get(headerHolder) != string(opHello)+h.self {
		t.Fatalf("device subject got %v (err %v), want the hello", m, err)
	}
}
