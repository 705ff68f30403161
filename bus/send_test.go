package bus_test

import (
	"encoding/json"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// readGate holds a connection's reads while paused, so a request made on it
// gets no answer until Resume: a KV read that hangs, on a real server.
type readGate struct {
	mu     sync.Mutex
	resume chan struct{} // guarded by mu: nil unless paused
}

func (g *readGate) pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resume == nil {
		g.resume = make(chan struct{})
	}
}

func (g *readGate) unpause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.resume != nil {
		close(g.resume)
		g.resume = nil
	}
}

func (g *readGate) Dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	return gatedNetConn{Conn: c, g: g}, err
}

type gatedNetConn struct {
	net.Conn
	g *readGate
}

func (c gatedNetConn) Read(p []byte) (int, error) {
	c.g.mu.Lock()
	ch := c.g.resume
	c.g.mu.Unlock()
	if ch != nil {
		<-ch
	}
	return c.Conn.Read(p)
}

// allspark.send requests queue for one worker, which may wait on a KV read;
// past BACKEND_QUEUE they are answered "overloaded" by the subscription's
// callback at once, which never waits for the worker.
func TestServeSendQueueFullAnswersOverloaded(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	subj, _ := bus.NewSubjects("allspark")
	gate := &readGate{}
	kvConn, err := nats.Connect(ns.ClientURL(), nats.SetCustomDialer(gate))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { gate.unpause(); kvConn.Close() })
	js, err := jetstream.New(kvConn)
	if err != nil {
		t.Fatal(err)
	}
	devices, err := bus.OpenDevices(t.Context(), js, subj.DevicesBucket(), 1, time.Hour, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	req, err := bus.NewRequester(nc, 5*time.Second, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	r := bus.NewRouter(bus.RouterDeps{NATS: nc, Requester: req, Subjects: subj, Devices: devices, Now: time.Now,
		Log: testutil.Logger(t), StoreTimeout: time.Minute, BackendQueue: 1})
	t.Cleanup(func() { req.Close(); r.Close() })
	sub, err := r.ServeSend(65536, allspark.DefaultMaxJSONDepth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}

	gate.pause()
	// A read already in progress is not held back: let it take a PONG, so
	// from here every read waits. Either way the flush ends, so its error
	// says nothing.
	_ = kvConn.FlushTimeout(time.Second) // the worker's first devices lookup now hangs
	backend := testutil.Connect(t, ns.ClientURL())
	inbox := nats.NewInbox()
	answers, err := backend.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	const n = 3
	for i := range n {
		m, _ := json.Marshal(map[string]any{"id": fmt.Sprint(i), "src_id": "svc", "dest_client_id": "carol", "payload": "x"})
		if err := backend.PublishRequest(subj.Send(), inbox, m); err != nil {
			t.Fatal(err)
		}
	}
	next := func(what string) allspark.Sent {
		t.Helper()
		m, err := answers.NextMsg(20 * time.Second)
		if err != nil {
			t.Fatalf("waiting for %s: %v", what, err)
		}
		var s allspark.Sent
		if err := json.Unmarshal(m.Data, &s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	// One request is with the worker, one waits in the queue: whichever
	// came first, another found the queue full.
	if s := next("an overloaded answer while the worker waits"); s.Status != allspark.StatusRejected || s.Error.Code != allspark.CodeOverloaded {
		t.Fatalf("first answer: got %+v, want rejected overloaded", s)
	}
	gate.unpause()
	counts := map[allspark.Code]int{allspark.CodeOverloaded: 1}
	for i := 1; i < n; i++ {
		s := next("the other answers")
		if s.Status != allspark.StatusRejected || s.Error == nil {
			t.Fatalf("answer: got %+v, want rejected", s)
		}
		counts[s.Error.Code]++
	}
	if counts[allspark.CodeOffline] < 1 || counts[allspark.CodeOffline]+counts[allspark.CodeOverloaded] != n {
		t.Fatalf("answers by code: %v, want the worker's as offline (carol has no devices) and the rest overloaded", counts)
	}
}
