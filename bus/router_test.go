package bus_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// routerEnv is a router on a real server with a real inbox, plus a second
// connection playing the edges that hold target nodes.
type routerEnv struct {
	ns     *server.Server
	subj   bus.Subjects
	router *bus.Router
	inbox  *bus.Inbox
	peer   *nats.Conn
	js     jetstream.JetStream
}

type routerOpts struct {
	storeTimeout, attempt time.Duration
	storeQueue            int
	storeQueueBytes       int64
}

func newRouterEnv(t *testing.T, o routerOpts) *routerEnv {
	t.Helper()
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	log := testutil.Logger(t)
	inbox, err := bus.OpenInbox(t.Context(), nc, subj, bus.InboxConfig{Replicas: 1, MaxAge: time.Hour, MaxPerNode: 100,
		AttemptTimeout: o.attempt, MaxInFlight: o.storeQueue}, log)
	if err != nil {
		t.Fatal(err)
	}
	req, err := bus.NewRequester(nc, 5*time.Second, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := bus.NewRouter(bus.RouterDeps{NATS: nc, Requester: req, Subjects: subj, Store: inbox, Now: time.Now, Log: log,
		StoreTimeout: o.storeTimeout, StoreQueue: o.storeQueue, StoreQueueBytes: o.storeQueueBytes})
	// As an edge stops: the requester first, so no reply is in flight.
	t.Cleanup(func() { req.Close(); r.Close() })
	peer := testutil.Connect(t, ns.ClientURL())
	js, err := jetstream.New(peer)
	if err != nil {
		t.Fatal(err)
	}
	return &routerEnv{ns: ns, subj: subj, router: r, inbox: inbox, peer: peer, js: js}
}

// holdNode subscribes for node and hands each delivery to the test, which
// decides when to answer.
func (e *routerEnv) holdNode(t *testing.T, node string) <-chan *nats.Msg {
	t.Helper()
	got := make(chan *nats.Msg, 1000)
	if _, err := e.peer.Subscribe(e.subj.Node(node), func(m *nats.Msg) {
		if m.Header.Get(bus.HeaderInbox) == "" { // not a nudge
			got <- m
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := e.peer.Flush(); err != nil {
		t.Fatal(err)
	}
	return got
}

// loseInboxAcks makes the inbox stream store messages without ever
// acknowledging them, as when the stream leader dies after storing.
func (e *routerEnv) setInboxNoAck(t *testing.T, noAck bool) {
	t.Helper()
	st, err := e.js.Stream(t.Context(), bus.InboxStreamName(e.subj))
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	cfg.NoAck = noAck
	if _, err := e.js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatalf("set inbox no_ack=%v: %v", noAck, err)
	}
}

func (e *routerEnv) send(order *bus.OutcomeOrder, dest, corrID string, payload string, out chan<- allspark.Sent) {
	m := &allspark.Message{SrcID: "alice", DestID: dest, Payload: json.RawMessage(payload)}
	e.router.Send(context.Background(), m, corrID, order, func(s allspark.Sent) { out <- s })
}

func nextSent(t *testing.T, out <-chan allspark.Sent, what string) allspark.Sent {
	t.Helper()
	select {
	case s := <-out:
		return s
	case <-time.After(30 * time.Second):
		t.Fatalf("no answer for %s within 30s", what)
		return allspark.Sent{}
	}
}

// Replies that come back in the reverse order of the sends still give the
// sender its answers in send order; an early rejection (a payload that
// cannot be encoded) waits for its turn too.
func TestRouterOutcomesInSendOrder(t *testing.T) {
	e := newRouterEnv(t, routerOpts{})
	held := e.holdNode(t, "bob")
	order := &bus.OutcomeOrder{}
	out := make(chan allspark.Sent, 100)
	const n = 10
	for i := range n {
		payload := `"hi"`
		if i == n/2 {
			payload = `{not json` // rejected before any delivery
		}
		e.send(order, "bob", fmt.Sprint(i), payload, out)
	}
	var msgs []*nats.Msg
	for len(msgs) < n-1 {
		select {
		case m := <-held:
			msgs = append(msgs, m)
		case <-time.After(20 * time.Second):
			t.Fatalf("bob got %d of %d deliveries", len(msgs), n-1)
		}
	}
	select {
	case s := <-out:
		t.Fatalf("answer %s (%s) given before any reply", s.ID, s.Status)
	default:
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		if err := msgs[i].Respond(bus.ReplyAcked); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		s := nextSent(t, out, fmt.Sprint("message ", i))
		want := allspark.StatusDelivered
		if i == n/2 {
			want = allspark.StatusRejected
		}
		if s.ID != fmt.Sprint(i) || s.Status != want {
			t.Fatalf("answer %d: got id %s status %s, want id %d status %s", i, s.ID, s.Status, i, want)
		}
	}
}

// With the inbox never acknowledging, stores stay in flight until
// StoreTimeout: the copies past StoreQueue are answered "overloaded" at
// once (in their sender's order), and a delivery from another sender is
// answered while the stores hang.
func TestRouterStoreQueueFullAnswersOverloaded(t *testing.T) {
	e := newRouterEnv(t, routerOpts{storeTimeout: 3 * time.Second, attempt: 500 * time.Millisecond, storeQueue: 2})
	e.setInboxNoAck(t, true)
	order := &bus.OutcomeOrder{}
	out := make(chan allspark.Sent, 100)
	const n = 5
	for i := range n {
		e.send(order, "offline", fmt.Sprint(i), `"hi"`, out) // no responders: stored
	}
	held := e.holdNode(t, "bob")
	other := make(chan allspark.Sent, 1)
	e.send(nil, "bob", "other", `"hi"`, other)
	select {
	case m := <-held:
		if err := m.Respond(bus.ReplyAcked); err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("bob got no delivery")
	}
	if s := nextSent(t, other, "the other sender's delivery"); s.Status != allspark.StatusDelivered {
		t.Fatalf("other sender: got %+v, want delivered", s)
	}
	for i := range n {
		s := nextSent(t, out, fmt.Sprint("message ", i))
		want := allspark.CodeUnavailable // stored, never acknowledged
		if i >= 2 {
			want = allspark.CodeOverloaded
		}
		if s.ID != fmt.Sprint(i) || s.Status != allspark.StatusRejected || s.Error == nil || s.Error.Code != want {
			t.Fatalf("answer %d: got %+v, want rejected %s", i, s, want)
		}
	}
}

// StoreQueueBytes bounds the bytes being stored as StoreQueue bounds the
// copies: a copy that would pass it fails "overloaded" at once.
func TestRouterStoreQueueBytesAnswersOverloaded(t *testing.T) {
	e := newRouterEnv(t, routerOpts{storeTimeout: 2 * time.Second, attempt: 500 * time.Millisecond, storeQueueBytes: 300})
	e.setInboxNoAck(t, true)
	order := &bus.OutcomeOrder{}
	out := make(chan allspark.Sent, 10)
	payload := `"` + strings.Repeat("x", 150) + `"` // one frame fits in 300 bytes, two do not
	e.send(order, "offline", "0", payload, out)
	e.send(order, "offline", "1", payload, out)
	for i, want := range []allspark.Code{allspark.CodeUnavailable, allspark.CodeOverloaded} {
		s := nextSent(t, out, fmt.Sprint("message ", i))
		if s.ID != fmt.Sprint(i) || s.Status != allspark.StatusRejected || s.Error.Code != want {
			t.Fatalf("answer %d: got %+v, want rejected %s", i, s, want)
		}
	}
}

// Shutdown ends when its context does, even though the stores in flight
// would wait a minute, and answers them "unavailable".
func TestRouterShutdownBoundedByContext(t *testing.T) {
	e := newRouterEnv(t, routerOpts{storeTimeout: time.Minute, attempt: 200 * time.Millisecond})
	e.setInboxNoAck(t, true)
	out := make(chan allspark.Sent, 10)
	e.send(&bus.OutcomeOrder{}, "offline", "0", `"hi"`, out)
	testutil.Eventually(t, 10*time.Second, func() error {
		st, err := e.js.Stream(t.Context(), bus.InboxStreamName(e.subj))
		if err != nil {
			return err
		}
		if info, err := st.Info(t.Context()); err != nil || info.State.Msgs == 0 {
			return fmt.Errorf("inbox holds no message yet (%v)", err)
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.router.Shutdown(ctx) }()
	select {
	case err := <-done:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Shutdown: got %v, want deadline exceeded", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Shutdown still waiting 20s after its context ended")
	}
	if s := nextSent(t, out, "the pending store"); s.Status != allspark.StatusRejected || s.Error.Code != allspark.CodeUnavailable {
		t.Fatalf("pending store: got %+v, want rejected unavailable", s)
	}
	after := make(chan allspark.Sent, 1)
	e.send(nil, "offline", "late", `"hi"`, after)
	if s := nextSent(t, after, "a send after shutdown"); s.Status != allspark.StatusRejected || s.Error.Code != allspark.CodeUnavailable {
		t.Fatalf("send after shutdown: got %+v, want rejected unavailable", s)
	}
}

// An inbox append whose PubAcks are lost (the stream stores but does not
// answer) is retried with the same Nats-Msg-Id until an ack comes, and
// the stream keeps one copy.
func TestInboxAppendRetriesLostPubAck(t *testing.T) {
	e := newRouterEnv(t, routerOpts{attempt: 200 * time.Millisecond})
	e.setInboxNoAck(t, true)
	attempts := make(chan struct{}, 100)
	if _, err := e.peer.Subscribe(e.subj.Inbox("carol"), func(*nats.Msg) { attempts <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := e.peer.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := e.inbox.Append("carol", "m1", []byte(`{"msg_id":"m1"}`))
	appended := make(chan error, 1)
	go func() { appended <- wait(ctx) }()
	// Three attempts unanswered: the async one and two synchronous retries.
	for i := range 3 {
		select {
		case <-attempts:
		case <-time.After(20 * time.Second):
			t.Fatalf("saw %d publish attempts, want 3 while acks are lost", i)
		}
	}
	e.setInboxNoAck(t, false)
	if err := <-appended; err != nil {
		t.Fatalf("append: %v", err)
	}
	st, err := e.js.Stream(t.Context(), bus.InboxStreamName(e.subj))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 1 {
		t.Fatalf("inbox holds %d messages, want 1 (dedup of the retries)", info.State.Msgs)
	}
}
