package edge_test

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go/jetstream"
)

// fillHistory appends n session messages of about size bytes each straight
// to the history stream, as the router stores them, and returns their seqs.
func fillHistory(t *testing.T, c *cluster, sid string, n, size int) []uint64 {
	t.Helper()
	nc := testutil.Connect(t, c.url)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(64))
	if err != nil {
		t.Fatal(err)
	}
	subj, _ := bus.NewSubjects("allspark")
	payload := strings.Repeat("x", size)
	futures := make([]jetstream.PubAckFuture, 0, n)
	for i := range n {
		frame := fmt.Sprintf(`{"msg_id":"m-%d","src_id":"a","dest_session_id":%q,"payload":%q,"ts":1}`, i, sid, payload)
		f, err := js.PublishAsync(subj.Session(sid), []byte(frame))
		if err != nil {
			t.Fatal(err)
		}
		futures = append(futures, f)
	}
	seqs := make([]uint64, 0, n)
	for _, f := range futures {
		select {
		case ack := <-f.Ok():
			seqs = append(seqs, ack.Sequence)
		case err := <-f.Err():
			t.Fatal(err)
		case <-time.After(30 * time.Second):
			t.Fatal("no publish ack in 30s")
		}
	}
	return seqs
}

// heapSampler records the largest HeapInuse seen while it runs. The edge
// and the NATS server run in the test's process, so this is the edge's
// memory (plus the server's and the client's, which only makes the bound
// harder to meet).
type heapSampler struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex
	peak uint64 // guarded by mu
}

// liveHeap is the heap still reachable after a full collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

func sampleHeap() *heapSampler {
	h := &heapSampler{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		// Retained heap, not HeapInuse: between collections HeapInuse also
		// holds garbage, up to GOGC% of whatever else the process keeps,
		// and what the attack must not do is make the edge hold memory.
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			live := liveHeap()
			h.mu.Lock()
			h.peak = max(h.peak, live)
			h.mu.Unlock()
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return h
}

func (h *heapSampler) end() uint64 {
	close(h.stop)
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.peak
}

// The sync bomb (issue 13 #1): a session holds 1,000 messages of 60 KB and
// a client that does not read sends 20 syncs of 1,000. One sync runs; the
// other 19 are answered error busy at once, and the edge's heap grows by
// far less than the 20 × 60 MB the syncs would load if each ran.
func TestSyncBombIsBounded(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a")
	c.mustCall(e, "POST", "/v1/sessions", "a", "ca", map[string]any{"session_id": "bomb"}, 201)
	const n, size, syncs = 1000, 60 << 10, 20
	seqs := fillHistory(t, c, "bomb", n, size)

	cl, gate := wstest.DialGated(t, e.wsURL("auth_key="+c.authKey("a", "ca")))
	cl.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" })

	before := liveHeap()
	heap := sampleHeap()
	// Checked in cleanup too, so a run that fails otherwise still reports
	// the heap it reached.
	var checked bool
	checkHeap := func() {
		if checked {
			return
		}
		checked = true
		peak := heap.end()
		growth := int64(peak) - int64(before)
		t.Logf("live heap %d MB before, peak %d MB (growth %d MB)", before>>20, peak>>20, growth>>20)
		if growth > 100<<20 {
			t.Errorf("heap grew by %d MB during the sync bomb, want < 100 MB", growth>>20)
		}
	}
	t.Cleanup(checkHeap)
	gate.Pause()
	for i := range syncs {
		cl.Send(t, map[string]any{"type": "sync", "id": fmt.Sprintf("s-%d", i), "session_id": "bomb", "after_seq": 0, "limit": 1000})
	}
	// Every sync frame has reached the edge before the client reads again.
	testutil.Eventually(t, 20*time.Second, func() error {
		if got := scrape(t, e)[`allspark_frames_in_total{kind="sync"}`]; got < syncs {
			return fmt.Errorf("edge handled %v sync frames, want %d", got, syncs)
		}
		return nil
	})
	gate.Resume()

	busy := map[string]bool{}
	var got []uint64
	var done wstest.Frame
	deadline := time.Now().Add(60 * time.Second)
	for done.Type == "" || len(busy) < syncs-1 {
		f := cl.Next(t, time.Until(deadline))
		switch {
		case f.IsMessage():
			got = append(got, f.Seq)
		case f.Type == "error" && f.Code == "busy":
			busy[f.ID] = true
		case f.Type == "sync_done" && f.Raw != "" && strings.Contains(f.Raw, `"session_id"`):
			if done.Type != "" {
				t.Fatalf("a second sync ran: %s", f.Raw)
			}
			done = f
		default:
			t.Fatalf("unexpected frame %s", f.Raw)
		}
	}
	checkHeap()
	if busy["s-0"] || len(busy) != syncs-1 {
		t.Errorf("busy answers for %v, want every sync but s-0", busy)
	}
	if len(got) != n || got[0] != seqs[0] || got[n-1] != seqs[n-1] {
		t.Fatalf("sync delivered %d messages (%v…), want %d from seq %d", len(got), got[:min(3, len(got))], n, seqs[0])
	}
	// The connection is free for the next sync once sync_done is out.
	cl.Send(t, map[string]any{"type": "sync", "id": "again", "session_id": "bomb", "after_seq": seqs[n-2]})
	f := cl.Next(t, 10*time.Second)
	if !f.IsMessage() || f.Seq != seqs[n-1] {
		t.Fatalf("next sync: %s, want the last message", f.Raw)
	}
	if f := cl.Next(t, 10*time.Second); f.Type != "sync_done" {
		t.Fatalf("next sync: %s, want sync_done", f.Raw)
	}
}

// A sync's limit is capped by ALLSPARK_SYNC_MAX_LIMIT; the client pages on
// with after_seq.
func TestSyncLimitCappedByConfig(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) { cfg.SyncMaxLimit = 3 })
	c.mustCall(e, "POST", "/v1/sessions", "a", "ca", map[string]any{"session_id": "capped"}, 201)
	seqs := fillHistory(t, c, "capped", 5, 10)
	cl := c.dial(e, "a", "ca")
	cl.Send(t, map[string]any{"type": "sync", "session_id": "capped", "limit": 1000})
	for i := range 3 {
		if f := cl.Next(t, 10*time.Second); f.Seq != seqs[i] {
			t.Fatalf("message %d: %s, want seq %d", i, f.Raw, seqs[i])
		}
	}
	if f := cl.Next(t, 10*time.Second); f.Type != "sync_done" || !strings.Contains(f.Raw, fmt.Sprintf(`"last_seq":%d`, seqs[4])) {
		t.Fatalf("after 3 messages: %s, want sync_done with last_seq %d", f.Raw, seqs[4])
	}
}

// after_seq = 2^64-1 is past every seq: nothing comes back (it once wrapped
// to 0 and returned the whole history).
func TestSyncAfterMaxSeqIsEmpty(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a")
	c.mustCall(e, "POST", "/v1/sessions", "a", "ca", map[string]any{"session_id": "wrap"}, 201)
	seqs := fillHistory(t, c, "wrap", 2, 10)
	cl := c.dial(e, "a", "ca")
	cl.SendRaw(t, fmt.Sprintf(`{"type":"sync","session_id":"wrap","after_seq":%d}`, uint64(math.MaxUint64)))
	f := cl.Next(t, 10*time.Second)
	if f.Type != "sync_done" || !strings.Contains(f.Raw, fmt.Sprintf(`"last_seq":%d`, seqs[1])) {
		t.Fatalf("sync after 2^64-1: %s, want sync_done alone", f.Raw)
	}
}

// Range stops a page at its byte budget, always returning one message.
func TestHistoryRangePageBytes(t *testing.T) {
	c := newCluster(t)
	c.edge("edge-a") // creates the history stream
	seqs := fillHistory(t, c, "paged", 4, 1000)
	nc := testutil.Connect(t, c.url)
	subj, _ := bus.NewSubjects("allspark")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	h, err := bus.OpenHistory(ctx, nc, subj, bus.HistoryConfig{Replicas: 1, MaxAge: time.Hour, MaxPerSession: 10000})
	if err != nil {
		t.Fatal(err)
	}
	page, end, err := h.Range(ctx, "paged", 0, 10, 1)
	if err != nil || len(page) != 1 || page[0].Seq != seqs[0] || end {
		t.Fatalf("1-byte page: %d messages, end %v, err %v; want the first message alone", len(page), end, err)
	}
	page, end, err = h.Range(ctx, "paged", seqs[0], 10, 2500)
	if err != nil || len(page) != 3 || end {
		t.Fatalf("2500-byte page: %d messages, end %v, err %v; want 3 (the third passes the budget)", len(page), end, err)
	}
	page, end, err = h.Range(ctx, "paged", seqs[3], 10, 1<<20)
	if err != nil || len(page) != 0 || !end {
		t.Fatalf("after the last: %d messages, end %v, err %v; want none and end", len(page), end, err)
	}
}

// A client that sends its next sync the moment it reads sync_done is never
// told busy: the edge ends the running sync before that frame goes out.
func TestSyncRightAfterSyncDoneIsNotBusy(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a")
	c.mustCall(e, "POST", "/v1/sessions", "a", "ca", map[string]any{"session_id": "pages"}, 201)
	fillHistory(t, c, "pages", 3, 16)
	cl := wstest.Dial(t, e.wsURL("auth_key="+c.authKey("a", "ca")))
	cl.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" })
	for i := range 300 {
		cl.Send(t, map[string]any{"type": "sync", "id": fmt.Sprint("p-", i), "session_id": "pages", "after_seq": 0, "limit": 1})
		f := cl.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" || f.Type == "error" })
		if f.Type == "error" {
			t.Fatalf("sync %d, sent on the previous sync_done: %s", i, f.Raw)
		}
	}
}
