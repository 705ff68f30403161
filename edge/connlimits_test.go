package edge_test

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// upgradeHeaders make a plain HTTP GET look like a websocket upgrade, so the
// test can read the status and JSON body of a refused one.
var upgradeHeaders = http.Header{"Connection": {"Upgrade"}, "Upgrade": {"websocket"}, "Sec-Websocket-Version": {"13"},
	"Sec-Websocket-Key": {"dGhlIHNhbXBsZSBub25jZQ=="}}

// ALLSPARK_MAX_CONNS_PER_NODE: past it a node's new connection is refused
// (409 conflict natively, 4011 with a reason for a browser); the node's
// open connections keep working, and a freed slot admits a new one.
func TestConnectionsPerNodeLimit(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-cap", func(cfg *edge.Config) {
		cfg.MaxConnsPerNode = 3
		cfg.AllowedOrigins = []string{appOrigin}
	})
	var alices []*wstest.Client
	for range 3 {
		alices = append(alices, c.dial(e, "alice", "alice"))
	}
	u := e.wsURL("auth_key=" + url.QueryEscape(c.authKey("alice", "alice")))

	if got := do(t, "GET", strings.Replace(u, "ws://", "http://", 1), "", "", "", upgradeHeaders); got.status != http.StatusConflict ||
		got.code != "conflict" || got.msg != "too many connections for this node" {
		t.Fatalf("native 4th connection: %d %q %q, want 409 conflict %q", got.status, got.code, got.msg, "too many connections for this node")
	}
	browser, _, err := wstest.DialHeader(u, http.Header{"Origin": {appOrigin}})
	if err != nil {
		t.Fatalf("browser dial: %v; want an upgrade closed with 4011", err)
	}
	if code := browser.WaitClose(t, wait); code != 4011 || browser.CloseReason() != "too many connections for this node" {
		t.Fatalf("browser 4th connection closed %d %q, want 4011 %q", code, browser.CloseReason(), "too many connections for this node")
	}
	waitConns(t, e, 3)

	// Another node is not affected, and alice's connections still receive.
	bob := c.dial(e, "bob", "bob")
	bob.Send(t, map[string]any{"id": "b1", "dest_id": "alice", "payload": "hi"})
	for i, a := range alices {
		if f := a.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"hi"` {
			t.Fatalf("alice %d got %s", i, f.Raw)
		}
	}
	if s := bob.Until(t, wait, isSent); s.Status != "delivered" {
		t.Fatalf("bob got %s, want delivered", s.Raw)
	}

	// A freed slot admits a new connection.
	alices[0].Close()
	waitConns(t, e, 3) // alice's two and bob
	c.dial(e, "alice", "alice")
	waitConns(t, e, 4)
}

// ALLSPARK_SINGLE_CONNECTION: a new connection replaces the node's older
// one, which is closed 4011 "replaced"; messages go to the new one.
func TestSingleConnectionReplaces(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-single", func(cfg *edge.Config) { cfg.SingleConnection = true })
	old := c.dial(e, "alice", "alice")
	fresh := c.dial(e, "alice", "alice")
	if code := old.WaitClose(t, wait); code != 4011 || old.CloseReason() != "replaced" {
		t.Fatalf("old connection closed %d %q, want 4011 replaced", code, old.CloseReason())
	}
	waitConns(t, e, 1)
	bob := c.dial(e, "bob", "bob")
	bob.Send(t, map[string]any{"id": "b1", "dest_id": "alice", "payload": "hi"})
	if f := fresh.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"hi"` {
		t.Fatalf("new connection got %s", f.Raw)
	}
	if s := bob.Until(t, wait, isSent); s.Status != "delivered" {
		t.Fatalf("bob got %s, want delivered", s.Raw)
	}
}

// ALLSPARK_MAX_CONNS: a full edge refuses upgrades with 503 unavailable
// "edge full" and is no longer offered by /v1/connect, even though it is
// the least loaded; /readyz stays 200.
func TestEdgeFull(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.MaxConns = 1 })
	b := c.edge("edge-b")
	c.dial(b, "n1", "n1")
	c.dial(b, "n2", "n2")
	c.dial(a, "n3", "n3")

	u := strings.Replace(a.wsURL("auth_key="+url.QueryEscape(c.authKey("n4", "n4"))), "ws://", "http://", 1)
	if got := do(t, "GET", u, "", "", "", upgradeHeaders); got.status != http.StatusServiceUnavailable || got.code != "unavailable" || got.msg != "edge full" {
		t.Fatalf("upgrade on a full edge: %d %q %q, want 503 unavailable %q", got.status, got.code, got.msg, "edge full")
	}
	if got := do(t, "GET", a.http.URL+"/readyz", "", "", "", nil); got.status != http.StatusOK {
		t.Fatalf("/readyz of a full edge: %d, want 200", got.status)
	}
	// Edge A holds 1 connection and B 2, so only A's being full keeps it
	// from being offered.
	testutil.Eventually(t, 5*time.Second, func() error {
		if ci := getConnect(t, b.http.URL, "/v1/connect", c.authKey("x", "x")); ci.Edge.ID != "edge-b" {
			return fmt.Errorf("full edge still offered: %s", ci.Edge.ID)
		}
		return nil
	})
	waitConns(t, a, 1)
}

// Acceptance (issue 13, #2): 2,000 connections for one node and three
// unacked 60 KB messages it sends itself. Past ALLSPARK_MAX_CONNS_PER_NODE
// (default 16) the connections are refused with 409 conflict; the node's
// inbox is read once for all its connections, not once per connection; and
// another client's 1:1 message is delivered within the ack timeout.
func TestManyConnectionsOfOneNode(t *testing.T) {
	const attempts, perNode = 2000, 16 // the default
	testutil.RaiseFileLimit(t, 2*attempts+256)
	c := newCluster(t)
	e := c.edge("edge-many", func(cfg *edge.Config) { cfg.MaxConnsPerNode = 0 }) // 0: the default
	alice, bob := c.dial(e, "alice", "alice"), c.dial(e, "bob", "bob")

	key := url.QueryEscape(c.authKey("mallory", "mallory"))
	var mu sync.Mutex
	var mallory []*wstest.Client
	refused := map[string]int{}
	var wg sync.WaitGroup
	work := make(chan struct{})
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range work {
				cl, resp, err := wstest.DialErr(e.wsURL("auth_key=" + key))
				mu.Lock()
				switch {
				case err == nil:
					cl.SetAutoAck(false)
					mallory = append(mallory, cl)
				case resp != nil:
					refused[resp.Status]++
				default:
					refused[err.Error()]++
				}
				mu.Unlock()
			}
		}()
	}
	for range attempts {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	t.Cleanup(func() {
		for _, m := range mallory {
			m.Close()
		}
	})
	if len(mallory) != perNode || refused["409 Conflict"] != attempts-perNode {
		t.Fatalf("%d connections admitted, refused %v; want %d admitted and %d refused 409", len(mallory), refused, perNode, attempts-perNode)
	}
	for _, m := range mallory {
		m.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" })
	}

	// Three 60 KB messages to itself, never acked: each is stored after the
	// ack timeout, and every stored copy nudges the node's inbox reader.
	readsBefore := e.srv.InboxReads()
	big := strings.Repeat("x", 60<<10)
	for i := range 3 {
		mallory[0].Send(t, map[string]any{"id": fmt.Sprint("m", i), "dest_id": "mallory", "payload": big})
	}
	// Meanwhile alice's message to bob is delivered within the ack timeout.
	start := time.Now()
	alice.Send(t, map[string]any{"id": "a1", "dest_id": "bob", "payload": "hi"})
	if f := bob.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"hi"` {
		t.Fatalf("bob got %s", f.Raw)
	}
	if s := alice.Until(t, wait, isSent); s.Status != "delivered" {
		t.Fatalf("alice got %s, want delivered", s.Raw)
	}
	t.Logf("alice -> bob round trip during the attack: %s", time.Since(start).Round(time.Microsecond))

	// Every connection gets each message live, then again from the inbox.
	for i, m := range mallory {
		for n := 0; n < 6; {
			f := m.Next(t, 15*time.Second)
			if f.IsMessage() {
				n++
			} else if f.Type != "sent" {
				t.Fatalf("mallory %d got %s", i, f.Raw)
			}
		}
	}
	reads := e.srv.InboxReads() - readsBefore
	t.Logf("inbox reads for 3 stored messages and %d connections: %d", perNode, reads)
	// A pass per connection would make at least one read per connection
	// and stored message (48); a pass per node makes about two per message
	// (the message, then "nothing more").
	if reads >= 3*perNode {
		t.Fatalf("%d inbox reads for 3 stored messages: the inbox is read per connection, want per node", reads)
	}
}

// ALLSPARK_MAX_INBOX_READS: with a single read slot for the whole edge,
// many nodes replaying at once wait their turn and all get their messages
// in order; none fails, and no two reads are ever in flight at once.
func TestInboxReadsBoundedPerEdge(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-reads", func(cfg *edge.Config) { cfg.MaxInboxReads = 1 })
	sender := c.dial(e, "sender", "sender")
	const nodes, each = 12, 4
	for n := range nodes {
		for i := range each {
			sender.Send(t, map[string]any{"dest_id": fmt.Sprint("r", n), "payload": i})
			if s := sender.Until(t, wait, isSent); s.Status != "stored" {
				t.Fatalf("sent %s, want stored", s.Raw)
			}
		}
	}
	errs := make(chan error, nodes)
	for n := range nodes {
		go func() {
			cl, resp, err := wstest.DialErr(e.wsURL("auth_key=" + url.QueryEscape(c.authKey(fmt.Sprint("r", n), "r"))))
			if err != nil {
				errs <- fmt.Errorf("node r%d: dial: %v %v", n, err, resp)
				return
			}
			defer cl.Close()
			for i := range each {
				select {
				case f := <-cl.Frames():
					if !f.IsMessage() || string(f.Payload) != fmt.Sprint(i) {
						errs <- fmt.Errorf("node r%d: frame %d is %s, want payload %d", n, i, f.Raw, i)
						return
					}
				case <-time.After(20 * time.Second):
					errs <- fmt.Errorf("node r%d: message %d not replayed", n, i)
					return
				}
			}
			select {
			case f := <-cl.Frames():
				if f.Type != "sync_done" || f.Pending != each {
					errs <- fmt.Errorf("node r%d: got %s, want sync_done pending %d", n, f.Raw, each)
					return
				}
			case <-time.After(20 * time.Second):
				errs <- errors.New("no sync_done")
				return
			}
			errs <- nil
		}()
	}
	for range nodes {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if peak := edge.InboxReadsPeak(e.srv); peak != 1 {
		t.Fatalf("%d inbox reads in flight at once, want at most ALLSPARK_MAX_INBOX_READS=1", peak)
	}
}
