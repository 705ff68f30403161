package clustertest

import (
	"context"
	"fmt"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/loadtest"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go/jetstream"
)

// drainTimeout is the edges' ALLSPARK_DRAIN_TIMEOUT in this test.
const drainTimeout = 5 * time.Second

// Issue 11, acceptance 6: while 50 connections send to offline nodes, the
// inbox stream's leader is SIGKILLed, so publishes in flight get neither a
// PubAck nor an error; then the edge holding the senders gets SIGTERM. It
// must exit within its drain timeout plus a second, every send must be
// answered before its connection closes, and every message answered
// "stored" must reach its node afterwards.
func TestDrainAfterInboxLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs 6 processes; skipped with -short")
	}
	c := startCluster(t, "", "ALLSPARK_DRAIN_TIMEOUT="+drainTimeout.String())
	mint := authKeys(t)
	authKey := func(node string) string { return url.QueryEscape(mint(node)) }
	wsOf := func(i int) string { return "ws://" + c.edgeAddrs[i] + "/v1/ws?auth_key=" }

	const senders, offline, window = 50, 100, 20
	perSender := loadtest.Scale(1000) // more than will be sent: the drain, not the count, ends the stream
	var (
		mu         sync.Mutex
		stored     = map[string]string{} // msg_id -> node, answered stored
		statuses   = map[string]int{}
		unanswered atomic.Int64
		answered   atomic.Int64
	)
	var wg sync.WaitGroup
	for si := range senders {
		cl := wstest.Dial(t, wsOf(0)+authKey(fmt.Sprintf("sender%02d", si)))
		wg.Add(1)
		go func() {
			defer wg.Done()
			pending := map[string]string{} // corr id -> dest node
			sent, draining := 0, false
			take := func(f wstest.Frame) {
				dest, ok := pending[f.ID]
				if f.Type != "sent" || !ok {
					return
				}
				delete(pending, f.ID)
				answered.Add(1)
				mu.Lock()
				statuses[f.Status]++
				if f.Status == "stored" {
					stored[f.MsgID] = dest
				}
				mu.Unlock()
			}
			for {
				for !draining && sent < perSender && len(pending) < window {
					dest := fmt.Sprintf("offline%03d", (si*perSender+sent)%offline)
					id := strconv.Itoa(sent)
					if cl.Write(map[string]any{"id": id, "dest_id": dest, "payload": id}) != nil {
						break
					}
					pending[id] = dest
					sent++
				}
				if len(pending) == 0 && (draining || sent == perSender) {
					return
				}
				select {
				case f := <-cl.Frames():
					// A client stops sending at "reconnect" and waits for its answers.
					draining = draining || f.Type == "reconnect"
					take(f)
				case <-cl.Closed():
					for drained := false; !drained; { // what arrived before the close
						select {
						case f := <-cl.Frames():
							take(f)
						default:
							drained = true
						}
					}
					unanswered.Add(int64(len(pending)))
					return
				case <-time.After(60 * time.Second):
					t.Errorf("sender %d: no frame for 60s with %d sends pending", si, len(pending))
					return
				}
			}
		}()
	}

	waitAnswers := func(n int64) {
		t.Helper()
		testutil.Eventually(t, 2*time.Minute, func() error {
			if got := answered.Load(); got < n {
				return fmt.Errorf("%d of %d sends answered", got, n)
			}
			return nil
		})
	}
	total := int64(senders * perSender)
	waitAnswers(total / 4)

	nc := testutil.Connect(t, c.natsURL)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.Stream(ctx, "allspark_inbox")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("inbox stream leader: %v %+v", err, info)
	}
	killed := -1
	for i, p := range c.natsProcs {
		if p.name == info.Cluster.Leader {
			_ = p.cmd.Process.Kill()
			killed = i
		}
	}
	if killed < 0 {
		t.Fatalf("inbox leader %q is none of the servers", info.Cluster.Leader)
	}
	t.Logf("SIGKILLed the inbox stream's leader, nats%d, after %d answers", killed, answered.Load())

	// Let some stores meet the failover, then drain the senders' edge.
	waitAnswers(answered.Load() + int64(senders))
	edge0 := c.edgeProcs[0]
	termAt := time.Now()
	_ = edge0.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-edge0.done:
		took := time.Since(termAt)
		t.Logf("edge0 exited %s after SIGTERM (drain timeout %s)", took.Round(10*time.Millisecond), drainTimeout)
		if took > drainTimeout+time.Second {
			t.Errorf("edge0 took %s to exit, over its drain timeout %s + 1s", took, drainTimeout)
		}
	case <-time.After(drainTimeout + 30*time.Second):
		t.Fatalf("edge0 still running %s after SIGTERM", drainTimeout+30*time.Second)
	}
	wg.Wait()
	mu.Lock()
	t.Logf("answers %v, %d stored, %d unanswered at close", statuses, len(stored), unanswered.Load())
	mu.Unlock()
	if n := unanswered.Load(); n != 0 {
		t.Errorf("%d sends were never answered before the drained edge closed their connection", n)
	}
	if len(stored) == 0 {
		t.Fatal("nothing was stored; the test proves nothing")
	}

	// Every stored message reaches its node, through a surviving edge.
	byNode := map[string]map[string]bool{}
	for id, node := range stored {
		if byNode[node] == nil {
			byNode[node] = map[string]bool{}
		}
		byNode[node][id] = true
	}
	lost := 0
	for node, want := range byNode {
		cl := wstest.Dial(t, wsOf(1)+authKey(node))
		for {
			f := cl.Next(t, 30*time.Second)
			if f.Type == "sync_done" {
				break
			}
			if f.IsMessage() { // wstest acks it
				delete(want, f.MsgID)
			}
		}
		lost += len(want)
		cl.Close()
	}
	if lost > 0 {
		t.Fatalf("%d messages answered stored never reached their node", lost)
	}
}
