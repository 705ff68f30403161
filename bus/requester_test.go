package bus_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

type replyOutcome struct {
	i    int
	data string
	err  error
}

// newRequester starts a requester on a fresh server; sink subscribes to
// "sink.>" without ever answering, so requests there can only time out.
func newRequester(t *testing.T, timeout time.Duration) (*bus.Requester, *nats.Conn) {
	t.Helper()
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	req, err := bus.NewRequester(nc, timeout, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(req.Close)
	return req, testutil.Connect(t, ns.ClientURL())
}

func request(t *testing.T, req *bus.Requester, subject string, i int, out chan<- replyOutcome) {
	t.Helper()
	err := req.Request(&nats.Msg{Subject: subject}, func(m *nats.Msg, err error) {
		o := replyOutcome{i: i, err: err}
		if m != nil {
			o.data = string(m.Data)
		}
		out <- o
	})
	if err != nil {
		t.Fatalf("request %d: %v", i, err)
	}
}

func next(t *testing.T, out <-chan replyOutcome, what string) replyOutcome {
	t.Helper()
	select {
	case o := <-out:
		return o
	case <-time.After(20 * time.Second):
		t.Fatalf("no outcome for %s within 20s", what)
		return replyOutcome{}
	}
}

// Replies answered in the reverse order of the requests reach the right
// callbacks.
func TestRequesterMatchesReplies(t *testing.T) {
	req, other := newRequester(t, time.Minute)
	got := make(chan *nats.Msg, 10)
	if _, err := other.Subscribe("svc.*", func(m *nats.Msg) { got <- m }); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	out := make(chan replyOutcome, 10)
	const n = 5
	for i := range n {
		request(t, req, fmt.Sprintf("svc.%d", i), i, out)
	}
	var held []*nats.Msg
	for range n {
		select {
		case m := <-got:
			held = append(held, m)
		case <-time.After(20 * time.Second):
			t.Fatalf("responder got %d of %d requests", len(held), n)
		}
	}
	for i := len(held) - 1; i >= 0; i-- {
		if err := held[i].Respond([]byte("re:" + held[i].Subject)); err != nil {
			t.Fatal(err)
		}
	}
	for range n {
		o := next(t, out, "a reply")
		if want := fmt.Sprintf("re:svc.%d", o.i); o.err != nil || o.data != want {
			t.Errorf("request %d: got %q, %v; want %q", o.i, o.data, o.err, want)
		}
	}
}

// Requests nobody answers time out, each once, in the order they were sent.
func TestRequesterTimeoutsInOrder(t *testing.T) {
	req, other := newRequester(t, 300*time.Millisecond)
	if _, err := other.Subscribe("sink.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	out := make(chan replyOutcome, 100)
	const n = 50
	for i := range n {
		request(t, req, fmt.Sprintf("sink.%d", i), i, out)
	}
	for want := range n {
		o := next(t, out, fmt.Sprintf("timeout %d", want))
		if o.i != want || !errors.Is(o.err, nats.ErrTimeout) {
			t.Fatalf("outcome %d: got request %d with %v, want request %d timed out", want, o.i, o.err, want)
		}
	}
}

// A request to a subject with no subscriber fails with no responders at
// once, not at its timeout (a minute here).
func TestRequesterNoResponders(t *testing.T) {
	req, _ := newRequester(t, time.Minute)
	out := make(chan replyOutcome, 1)
	request(t, req, "nobody.here", 0, out)
	if o := next(t, out, "no responders"); !errors.Is(o.err, nats.ErrNoResponders) {
		t.Fatalf("got %q, %v; want no responders", o.data, o.err)
	}
}

// Close fails every pending request with ErrRequesterClosed, and refuses
// new ones.
func TestRequesterCloseFailsPending(t *testing.T) {
	req, other := newRequester(t, time.Minute)
	if _, err := other.Subscribe("sink.>", func(*nats.Msg) {}); err != nil {
		t.Fatal(err)
	}
	if err := other.Flush(); err != nil {
		t.Fatal(err)
	}
	out := make(chan replyOutcome, 20)
	const n = 10
	for i := range n {
		request(t, req, fmt.Sprintf("sink.%d", i), i, out)
	}
	req.Close()
	seen := map[int]bool{}
	for range n {
		o := next(t, out, "a closed request")
		if !errors.Is(o.err, bus.ErrRequesterClosed) || seen[o.i] {
			t.Fatalf("request %d: got %v (seen before: %v), want ErrRequesterClosed once", o.i, o.err, seen[o.i])
		}
		seen[o.i] = true
	}
	err := req.Request(&nats.Msg{Subject: "sink.late"}, func(*nats.Msg, error) { t.Error("callback of a refused request ran") })
	if !errors.Is(err, bus.ErrRequesterClosed) {
		t.Fatalf("request after close: got %v, want ErrRequesterClosed", err)
	}
}
