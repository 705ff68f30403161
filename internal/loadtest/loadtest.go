// Package loadtest drives messages through edges while parts of the
// cluster fail, and proves that nothing answered delivered or stored is
// lost. The fault, drain and process-cluster tests share it.
package loadtest

import (
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// Load is a stream of messages from senders to recipients that counts,
// per recipient, the unique msg_ids it received over any number of
// connections, and, per sender, the answer to every message.
type Load struct {
	t          testing.TB
	authKey    func(node string) string
	recipients []*recipient
	// RedialSender, if set, reconnects sender i after its connection
	// drops; its unanswered messages were never promised and are abandoned.
	// It returns nil when it gave up (having failed the test).
	RedialSender func(i int) *wstest.Client
	abandoned    atomic.Int64

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

// New starts a load; authKey mints a node's auth_key.
func New(t testing.TB, authKey func(node string) string) *Load {
	return &Load{t: t, authKey: authKey, answers: map[string]string{}, dest: map[string]string{}}
}

// Answered is how many messages have been answered so far.
func (l *Load) Answered() int64 { return l.answered.Load() }

// WaitAnswered blocks until n messages have been answered, and reports
// whether they were within the timeout: fault tests use it to strike
// mid-stream. On timeout it fails the test (it may run on any goroutine)
// rather than leave the fault uninjected and the test hanging.
func (l *Load) WaitAnswered(n int64, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for l.answered.Load() < n {
		if time.Now().After(deadline) {
			l.t.Errorf("waited %s for %d answers; %d came", timeout, n, l.answered.Load())
			return false
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

// Scale returns n, or n/10 when ALLSPARK_FAULT_SCALE=small (for quick local runs).
func Scale(n int) int {
	if os.Getenv("ALLSPARK_FAULT_SCALE") == "small" {
		return n / 10
	}
	return n
}

// Dial connects node to the websocket URL wsURL (ws://host:port/v1/ws)
// and waits for its sync_done, counting nothing it replays.
func (l *Load) Dial(wsURL, node string) *wstest.Client {
	l.t.Helper()
	cl := wstest.Dial(l.t, wsURL+"?auth_key="+url.QueryEscape(l.authKey(node)))
	cl.Until(l.t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" })
	return cl
}

// ConnectRecipients connects n recipients to at(i) and keeps them
// connected: when a connection drops, it reconnects to reconnect(i), as a
// real client would. at and reconnect return websocket URLs.
func (l *Load) ConnectRecipients(n int, at, reconnect func(i int) string, stop <-chan struct{}, wg *sync.WaitGroup) {
	for i := range n {
		r := &recipient{node: fmt.Sprintf("r%03d", i), got: map[string]int{}}
		l.recipients = append(l.recipients, r)
		first := wstest.Dial(l.t, at(i)+"?auth_key="+url.QueryEscape(l.authKey(r.node)))
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
						key := url.QueryEscape(l.authKey(r.node))
						next, _, err := wstest.DialErr(reconnect(i) + "?auth_key=" + key)
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

// RunSenders has each sender send perSender messages, at most window
// unanswered at a time, to recipients in turn, and returns when every
// message is answered.
func (l *Load) RunSenders(senders []*wstest.Client, perSender, window int) {
	var wg sync.WaitGroup
	for si, s := range senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pending := map[string]string{} // corr id -> dest
			sent, answered := 0, 0
			take := func(f wstest.Frame) {
				dest, ok := pending[f.ID]
				if f.Type != "sent" || !ok {
					return
				}
				l.mu.Lock()
				l.answers[f.MsgID] = f.Status
				l.dest[f.MsgID] = dest
				l.mu.Unlock()
				delete(pending, f.ID)
				answered++
				l.answered.Add(1)
			}
			// lost handles a dropped connection: answers that arrived count;
			// what is still pending was never answered, so never promised.
			lost := func() bool {
				if l.RedialSender == nil {
					l.t.Errorf("sender %d: connection closed", si)
					return false
				}
				for drained := false; !drained; {
					select {
					case f := <-s.Frames():
						take(f)
					default:
						drained = true
					}
				}
				l.abandoned.Add(int64(len(pending)))
				answered += len(pending)
				clear(pending)
				s = l.RedialSender(si)
				return s != nil
			}
			for answered < perSender {
				for sent < perSender && len(pending) < window {
					dest := l.recipients[(si*perSender+sent)%len(l.recipients)].node
					id := strconv.Itoa(sent)
					if err := s.Write(map[string]any{"id": id, "dest_id": dest, "payload": fmt.Sprintf("s%d-%d", si, sent)}); err != nil {
						if !lost() {
							return
						}
						continue
					}
					pending[id] = dest
					sent++
				}
				select {
				case <-s.Closed():
					if !lost() {
						return
					}
				case f := <-s.Frames():
					take(f)
				case <-time.After(30 * time.Second):
					l.t.Errorf("sender %d: no answer for 30s (%d/%d answered)", si, answered, perSender)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// Verify waits until every message answered delivered or stored has
// reached its recipient, then reports lost and duplicate counts.
func (l *Load) Verify() {
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
			// Which answers and which recipients, so a failure says whether
			// stored or delivered messages are missing, and where.
			byStatus, byNode := map[string]int{}, map[string]int{}
			for _, id := range lost {
				byStatus[l.answers[id]]++
				byNode[l.dest[id]]++
			}
			return fmt.Errorf("%d promised messages not received yet, e.g. %s; by answer %v; by recipient %v", len(lost), lost[0], byStatus, byNode)
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
	t.Logf("answers: %v; abandoned (sender's edge went away, never answered) %d; received unique %d, duplicates %d, lost %d",
		count, l.abandoned.Load(), unique, dups, len(lost))
	if count["delivered"]+count["stored"] == 0 {
		t.Fatal("nothing was promised; the test proves nothing")
	}
}

// CheckDrained fails unless every recipient's first connection ended with
// a reconnect frame and then close code 1001.
func (l *Load) CheckDrained() {
	l.t.Helper()
	for _, r := range l.recipients {
		r.mu.Lock()
		closes := append([]closeRecord(nil), r.closes...)
		r.mu.Unlock()
		if len(closes) == 0 || !closes[0].reconnectFirst || closes[0].code != 1001 {
			l.t.Fatalf("%s: connection ends %+v, want reconnect then 1001", r.node, closes)
		}
	}
}
