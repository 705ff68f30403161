package bus_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
)

// Backend presence queries are bounded per edge: past MaxInFlight a
// request is answered "overloaded" at once, not given a goroutine.
func TestPresenceNodesInFlightBounded(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	release := make(chan struct{})
	started := make(chan struct{}, 1)
	sub, err := bus.ServePresenceNodes(nc, subj, bus.PresenceNodesConfig{MaxNodes: 10, Timeout: time.Second, Edges: func() int { return 0 },
		MaxInFlight: 1,
		Spawn: func(work func()) {
			go func() { started <- struct{}{}; <-release; work() }()
		}})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := nc.Flush(); err != nil { // the server knows the subscription before any request
		t.Fatal(err)
	}
	client := testutil.Connect(t, ns.ClientURL())
	first := make(chan error, 1)
	go func() {
		_, err := client.Request(subj.PresenceNodes(), []byte(`{"nodes":["a"]}`), 10*time.Second)
		first <- err
	}()
	select {
	case <-started: // the first query holds the only slot
	case err := <-first:
		t.Fatalf("first query answered before it ran: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("the first query never reached the handler")
	}
	reply, err := client.Request(subj.PresenceNodes(), []byte(`{"nodes":["b"]}`), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var a bus.PresenceAnswer
	if err := json.Unmarshal(reply.Data, &a); err != nil || a.Error == nil || a.Error.Code != "overloaded" {
		t.Fatalf("second query: %s (%v), want overloaded", reply.Data, err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatalf("first query: %v", err)
	}
}
