package bus_test

import (
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// An edge drains at most MaxActive service backlogs at once
// (ALLSPARK_SERVICE_MAX_DRAINS): while one drain is held up by a replica
// that does not answer, a ready request for another service is dropped
// (its replicas ask again later), and one for the same service is taken.
func TestServiceDrainsBounded(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	log := testutil.Logger(t)
	inbox, err := bus.OpenInbox(t.Context(), nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 100}, log)
	if err != nil {
		t.Fatal(err)
	}
	req, err := bus.NewRequester(nc, time.Minute, time.Now) // a held delivery stays held for the whole test
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	d, err := bus.OpenServiceDrainer(t.Context(), js, nc, subj, inbox, req, bus.ServiceDrainConfig{Owner: "e1", Window: 1, Retries: 1, MaxActive: 1}, func(int) {}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { req.Close(); d.Close() })

	// svc:a has a backlog and a replica that takes its message and never answers.
	held := make(chan *nats.Msg, 1)
	if _, err := testutil.Connect(t, ns.ClientURL()).QueueSubscribe(subj.Node("svc:a"), "allspark-service", func(m *nats.Msg) {
		if m.Reply != "" {
			held <- m
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := inbox.Store(t.Context(), "svc:a", "m1", []byte(`{"msg_id":"m1"}`)); err != nil {
		t.Fatal(err)
	}
	if !d.Kick("svc:a") {
		t.Fatal("the first drain was refused")
	}
	select {
	case <-held: // svc:a's drain is now waiting for its replica
	case <-time.After(20 * time.Second):
		t.Fatal("svc:a's backlog was never offered")
	}
	if d.Kick("svc:b") {
		t.Fatal("a second service's drain was started past MaxActive 1")
	}
	if !d.Kick("svc:a") {
		t.Fatal("a ready request for the service being drained was dropped")
	}
}
