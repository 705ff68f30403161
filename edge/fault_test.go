package edge_test

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// faultLoad is a stream of messages from senders to recipients that
// counts, per recipient, the unique msg_ids it received over any number of
// connections, and, per sender, the answer to every message.
type faultLoad struct {
	t          *testing.T
	c          *cluster
	recipients []*recipient

	mu       sync.Mutex
	answers  map[string]string // msg_id -> status; guarded by mu
	dest     map[string]string // msg_id -> recipient node; guarded by mu
	answered atomic.Int64
}

type recipient struct {
	node string
	mu   sync.Mutex
	got  map[string]int // msg_id -> copies received; guarded by mu
	// closes records each connection's end: whether a reconnect frame came
	// last before it, and the close code; guarded by mu.
	closes []closeRecord
}

type closeRecord struct {
	reconnectFirst bool
	code           int
}

// faultScale returns n, or n/10 when ALLSPARK_FAULT_SCALE=small (for quick local runs).
func faultScale(n int) int {
	if os.Getenv("ALLSPARK_FAULT_SCALE") == "small" {
		return n / 10
	}
	return n
}

// connectRecipients connects each recipient to at(i) and keeps it connected:
// when its connection drops it reconnects to reconnect(i).
func (l *faultLoad) connectRecipients(n int, at, reconnect func(i int) *testEdge, stop <-chan struct{}, wg *sync.WaitGroup) {
	for i := range n {
		r := &recipient{node: fmt.Sprintf("r%03d", i), got: map[string]int{}}
		l.recipients = append(l.recipients, r)
		first := l.c.dial(at(i), r.node, r.node)
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := first
			reconnectSeen := false
			take := func(f wstest.Frame) {
				r.mu.Lock()
				defer r.mu.Unlock()
				if f.IsMessage() {
					r.got[f.MsgID]++
				}
				reconnectSeen = f.Type == "reconnect" || (reconnectSeen && !f.IsMessage())
			}
			for {
				select {
				case <-stop:
					cl.Close()
					return
				case f := <-cl.Frames():
					take(f)
				case <-cl.Closed():
					for drained := false; !drained; {
						select {
						case f := <-cl.Frames(): // what arrived before the close
							take(f)
						default:
							drained = true
						}
					}
					r.mu.Lock()
					r.closes = append(r.closes, closeRecord{reconnectFirst: reconnectSeen, code: cl.CloseCode()})
					r.mu.Unlock()
					reconnectSeen = false
					for {
						select {
						case <-stop:
							return
						default:
						}
						key := url.QueryEscape(l.c.authKey(r.node, r.node))
						next, _, err := wstest.DialErr(reconnect(i).wsURL("auth_key=" + key))
						if err == nil {
							cl = next
							break
						}
						time.Sleep(20 * time.Millisecond) // back off before redialling, like a real client
					}
				}
			}
		}()
	}
}

// runSenders has each sender send perSender messages, at most window
// unanswered at a time, to recipients in turn, and returns when every
// message is answered.
func (l *faultLoad) runSenders(senders []*wstest.Client, perSender, window int) {
	var wg sync.WaitGroup
	for si, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pending := map[string]string{} // corr id -> dest
			sent, answered := 0, 0
			for answered < perSender {
				for sent < perSender && len(pending) < window {
					dest := l.recipients[(si*perSender+sent)%len(l.recipients)].node
					id := strconv.Itoa(sent)
					if err := s.Write(map[string]any{"id": id, "dest_id": dest, "payload": fmt.Sprintf("s%d-%d", si, sent)}); err != nil {
						l.t.Errorf("sender %d: %v", si, err)
						return
					}
					pending[id] = dest
					sent++
				}
				select {
				case f := <-s.Frames():
					if f.Type != "sent" {
						continue
					}
					l.mu.Lock()
					l.answers[f.MsgID] = f.Status
					l.dest[f.MsgID] = pending[f.ID]
					l.mu.Unlock()
					delete(pending, f.ID)
					answered++
					l.answered.Add(1)
				case <-time.After(30 * time.Second):
					l.t.Errorf("sender %d: no answer for 30s (%d/%d answered)", si, answered, perSender)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// verify waits until every message answered delivered or stored has
// reached its recipient, then reports lost and duplicate counts.
func (l *faultLoad) verify() {
	t := l.t
	t.Helper()
	byNode := map[string]*recipient{}
	for _, r := range l.recipients {
		byNode[r.node] = r
	}
	count := map[string]int{}
	l.mu.Lock()
	for _, st := range l.answers {
		count[st]++
	}
	l.mu.Unlock()
	var lost []string
	testutil.Eventually(t, 60*time.Second, func() error {
		lost = lost[:0]
		l.mu.Lock()
		defer l.mu.Unlock()
		for id, st := range l.answers {
			if st != "delivered" && st != "stored" {
				continue
			}
			r := byNode[l.dest[id]]
			r.mu.Lock()
			n := r.got[id]
			r.mu.Unlock()
			if n == 0 {
				lost = append(lost, id)
			}
		}
		if len(lost) > 0 {
			return fmt.Errorf("%d promised messages not received yet, e.g. %s", len(lost), lost[0])
		}
		return nil
	})
	dups, unique := 0, 0
	for _, r := range l.recipients {
		r.mu.Lock()
		for _, n := range r.got {
			unique++
			dups += n - 1
		}
		r.mu.Unlock()
	}
	t.Logf("answers: %v; received unique %d, duplicates %d, lost %d", count, unique, dups, len(lost))
	if count["delivered"]+count["stored"] == 0 {
		t.Fatal("nothing was promised; the test proves nothing")
	}
}

// Acceptance 3: edge B is hard-stopped mid-stream; its recipients
// reconnect to edge A; nothing answered delivered/stored is lost.
func TestNoLossWhenEdgeKilled(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	l := &faultLoad{t: t, c: c, answers: map[string]string{}, dest: map[string]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	l.connectRecipients(faultScale(200), func(int) *testEdge { return b }, func(int) *testEdge { return a }, stop, &wg)
	var senders []*wstest.Client
	for i := range 20 {
		senders = append(senders, c.dial(a, fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	perSender := faultScale(1000)
	total := int64(20 * perSender)
	go func() {
		for l.answered.Load() < total/3 {
			time.Sleep(time.Millisecond)
		}
		b.kill()
	}()
	l.runSenders(senders, perSender, 50)
	if t.Failed() {
		t.FailNow()
	}
	l.verify()
}

// Acceptance 4: a 3-server NATS cluster with R3 streams; the inbox stream's
// leader is killed mid-stream; nothing answered delivered/stored is lost.
func TestNoLossWhenNATSServerKilled(t *testing.T) {
	servers := testutil.RunCluster(t, 3)
	c := newClusterOn(t, servers[0])
	c.url = testutil.ClusterURL(servers)
	r3 := func(cfg *edge.Config) { cfg.StreamReplicas = 3 }
	a, b := c.edge("edge-a", r3), c.edge("edge-b", r3)
	l := &faultLoad{t: t, c: c, answers: map[string]string{}, dest: map[string]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	edges := []*testEdge{a, b}
	l.connectRecipients(faultScale(100), func(i int) *testEdge { return edges[i%2] }, func(i int) *testEdge { return edges[(i+1)%2] }, stop, &wg)
	var senders []*wstest.Client
	for i := range 10 {
		senders = append(senders, c.dial(edges[i%2], fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	perSender := faultScale(1000)
	total := int64(10 * perSender)
	leader := inboxLeader(t, c)
	go func() {
		for l.answered.Load() < total/3 {
			time.Sleep(time.Millisecond)
		}
		for _, s := range servers {
			if s.Name() == leader {
				s.Shutdown()
			}
		}
	}()
	l.runSenders(senders, perSender, 50)
	if t.Failed() {
		t.FailNow()
	}
	l.verify()
}

// Acceptance 3 (issue 7): under traffic, edge B drains: each of its clients
// gets reconnect then 1001, reconnects to A, and nothing promised is lost.
func TestDrainUnderTraffic(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	l := &faultLoad{t: t, c: c, answers: map[string]string{}, dest: map[string]string{}}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer wg.Wait()
	defer close(stop)
	l.connectRecipients(faultScale(100), func(int) *testEdge { return b }, func(int) *testEdge { return a }, stop, &wg)
	var senders []*wstest.Client
	for i := range 10 {
		senders = append(senders, c.dial(a, fmt.Sprintf("s%02d", i), fmt.Sprintf("s%02d", i)))
	}
	perSender := faultScale(1000)
	drained := make(chan error, 1)
	go func() {
		for l.answered.Load() < int64(10*perSender/3) {
			time.Sleep(time.Millisecond)
		}
		drained <- b.srv.Shutdown(context.Background())
	}()
	l.runSenders(senders, perSender, 50)
	if err := <-drained; err != nil {
		t.Fatalf("drain: %v", err)
	}
	l.verify()
	for _, r := range l.recipients {
		r.mu.Lock()
		closes := append([]closeRecord(nil), r.closes...)
		r.mu.Unlock()
		if len(closes) == 0 || !closes[0].reconnectFirst || closes[0].code != 1001 {
			t.Fatalf("%s: connection ends %+v, want reconnect then 1001", r.node, closes)
		}
	}
}
