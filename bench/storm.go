package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	natsserver "github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// storm is the reconnect storm: n clients connected (and synced) on edge A,
// edge A killed with SIGKILL, every client reconnects to edge B at once
// (retrying with 250 ms-1 s of jittered backoff when a dial fails). It
// reports the time until all are back and got sync_done, and what each
// reconnect cost NATS. NATS runs inside the harness for this scenario so
// its counters can be read exactly: subscriptions, messages published by
// clients, JetStream API requests; a wiretap subscription on ">" breaks
// the published messages down by subject.
func (h *harness) storm(want int) (result, error) {
	what := fmt.Sprintf("storm: %d clients, their edge killed, all reconnect to the other edge", want)
	r := result{Scenario: what, System: "AllSpark, 2 edges"}
	n, why := fit(want)
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Minute)
	defer cancel()
	creds, err := newNATSCreds()
	if err != nil {
		return r, err
	}
	ns, natsURL, err := startNATSInProcess(h.dir, creds)
	if err != nil {
		return r, err
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	edgeA, baseA, err := startEdge(ctx, h.dir, filepath.Join(h.dir, "edge"), "edge-a", natsURL)
	if err != nil {
		return r, err
	}
	defer edgeA.stop()
	edgeB, baseB, err := startEdge(ctx, h.dir, filepath.Join(h.dir, "edge"), "edge-b", natsURL)
	if err != nil {
		return r, err
	}
	defer edgeB.stop()

	tap, err := newWiretap(natsURL)
	if err != nil {
		return r, err
	}
	defer tap.close()

	c0 := natsCounters(ns, tap)
	// Phase 1: everyone online on edge A.
	st := &stormState{n: n, baseB: baseB, killed: make(chan struct{})}
	clients := make([]*stormClient, n)
	if err := parallel(ctx, n, 64, func(i int) error {
		c := &stormClient{st: st, node: fmt.Sprintf("storm%06d", i)}
		clients[i] = c
		return c.dial(baseA)
	}); err != nil {
		return r, fmt.Errorf("connect to edge A: %w", err)
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool { return st.synced.Load() >= int64(n) }); err != nil {
		return r, fmt.Errorf("%d of %d synced on edge A: %w", st.synced.Load(), n, err)
	}
	h.logf("storm: %d clients synced on edge A; killing it", n)
	time.Sleep(2 * time.Second) // registry writes and nudges of the first connect settle
	c1 := natsCounters(ns, tap)

	// Phase 2: kill A; every client notices its socket close and redials B.
	st.synced.Store(0)
	cpu0 := edgeB.cpuSeconds()
	st.t0 = time.Now()
	close(st.killed) // before the kill: clients see their sockets close at once
	edgeA.kill()
	waitErr := waitFor(ctx, stormBudget, func() bool { return st.synced.Load() >= int64(n) })
	elapsed := time.Since(st.t0)
	back := st.synced.Load()
	time.Sleep(2 * time.Second) // the reconnects' own NATS traffic lands
	c2 := natsCounters(ns, tap)
	for _, c := range clients {
		if c != nil {
			c.close()
		}
	}

	r.Sent, r.Promised, r.Delivered = int64(n), int64(n), back
	r.Lost = int64(n) - back
	r.Rate = float64(back) / elapsed.Seconds()
	r.RSSMB = float64(edgeB.rssKB()) / 1024
	r.CPU = 100 * (edgeB.cpuSeconds() - cpu0) / elapsed.Seconds()
	r.P50, r.P90, r.P99, r.Max = st.percentiles()
	r.Errors = st.dialFailures.Load()
	reconnect := c2.minus(c1)
	reconnect.subs = c2.subs - c0.subs // edge A's subscriptions are gone, edge B's are there
	r.Note = fmt.Sprintf("all back and sync_done in %.1f s (rate: reconnects/s; latency: kill to sync_done; errors: failed dials, retried). "+
		"Per reconnect: %s. Per first connect: %s. NATS in the harness process; RSS and CPU are edge B's",
		elapsed.Seconds(), reconnect.per(back), c1.minus(c0).per(int64(n)))
	if why != "" {
		r.Note += "; " + why
	}
	if waitErr != nil {
		return r, fmt.Errorf("%d of %d back on edge B: %w (edge B's log: %s)", back, n, waitErr, tail(readLog(h.dir, "edge-b"), 800))
	}
	return r, nil
}

// stormBudget bounds the wait for everyone to be back.
const stormBudget = 2 * time.Minute

type stormState struct {
	n            int
	baseB        string
	killed       chan struct{}
	t0           time.Time
	synced       atomic.Int64
	dialFailures atomic.Int64
	mu           sync.Mutex
	lat          []float64 // guarded by mu: ms from kill to sync_done on B
}

func (st *stormState) percentiles() (p50, p90, p99, maxv float64) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if len(st.lat) == 0 {
		return
	}
	sort.Float64s(st.lat)
	at := func(q float64) float64 { return st.lat[int(q*float64(len(st.lat)-1))] }
	return at(0.5), at(0.9), at(0.99), st.lat[len(st.lat)-1]
}

// stormClient counts sync_done and, once edge A is killed, reconnects to B.
type stormClient struct {
	st   *stormState
	node string
	mu   sync.Mutex
	ws   *wsClient // guarded by mu
	done bool      // guarded by mu: the harness closed it
}

func (c *stormClient) dial(base string) error {
	ws, err := dialWSBuf(c.node, "ws://"+base+"/v1/ws?auth_key="+url.QueryEscape(allsparkKey(c.node, c.node)), true, func(b []byte) {
		if strings.HasPrefix(string(b[:min(len(b), 20)]), `{"type":"sync_done"`) {
			select {
			case <-c.st.killed:
				c.st.mu.Lock()
				c.st.lat = append(c.st.lat, float64(time.Since(c.st.t0).Microseconds())/1000)
				c.st.mu.Unlock()
			default:
			}
			c.st.synced.Add(1)
		}
	}, leanReadBuffer)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.ws = ws
	c.mu.Unlock()
	go c.watch(ws)
	return nil
}

// watch waits for the socket to close; after the kill it redials edge B
// until it is in.
func (c *stormClient) watch(ws *wsClient) {
	<-ws.closed
	select {
	case <-c.st.killed:
	default:
		return // closed before the kill: the harness's own close
	}
	for {
		c.mu.Lock()
		done := c.done
		c.mu.Unlock()
		if done || c.dial(c.st.baseB) == nil {
			return
		}
		c.st.dialFailures.Add(1)
		time.Sleep(250*time.Millisecond + rand.N(750*time.Millisecond))
	}
}

func (c *stormClient) close() {
	c.mu.Lock()
	c.done = true
	ws := c.ws
	c.mu.Unlock()
	if ws != nil {
		_ = ws.conn.NetConn().Close()
	}
}

// wiretap counts the messages published on the NATS server by subject
// class. It listens everywhere except on node subjects (allspark.node.*):
// a subscriber there would be a responder to every delivery request, and
// turn "no responders" (the node is offline: store it) into an ack
// timeout. Those requests are in the NATS messages-in total, not in the
// breakdown.
type wiretap struct {
	nc     *nats.Conn
	mu     sync.Mutex
	counts map[string]int64 // guarded by mu
}

// tapped lists the subjects the wiretap listens on.
func tapped() []string {
	return []string{"$JS.>", "$KV.>", "_ALLSPARK_INBOX.>", "_INBOX.>", "allspark.inbox.>", "allspark.session.>",
		"allspark.live.>", "allspark.events.>", "allspark.presence.>", "allspark.send"}
}

func newWiretap(natsURL string) (*wiretap, error) {
	nc, err := nats.Connect(natsURL, nats.Name("bench wiretap"))
	if err != nil {
		return nil, fmt.Errorf("wiretap connect: %w", err)
	}
	t := &wiretap{nc: nc, counts: map[string]int64{}}
	for _, subj := range tapped() {
		sub, err := nc.Subscribe(subj, func(m *nats.Msg) {
			k := subjectClass(m.Subject)
			t.mu.Lock()
			t.counts[k]++
			t.mu.Unlock()
		})
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("wiretap subscribe: %w", err)
		}
		_ = sub.SetPendingLimits(-1, -1)
	}
	return t, nc.Flush()
}

func (t *wiretap) close() { t.nc.Close() }

func (t *wiretap) snapshot() map[string]int64 {
	_ = t.nc.FlushTimeout(5 * time.Second)
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make(map[string]int64, len(t.counts))
	for k, v := range t.counts {
		out[k] = v
	}
	return out
}

// subjectClass names what a subject is for: JetStream API calls by kind,
// KV writes by bucket, AllSpark subjects by their second token, replies.
func subjectClass(s string) string {
	tok := strings.Split(s, ".")
	switch {
	case strings.HasPrefix(s, "$JS.API.DIRECT.GET.") && len(tok) >= 5:
		return "JS direct get " + tok[4]
	case strings.HasPrefix(s, "$JS.API.") && len(tok) >= 4:
		return "JS " + strings.ToLower(strings.Join(tok[2:len(tok)-1], " ")) + " " + tok[len(tok)-1]
	case strings.HasPrefix(s, "$KV."):
		return "KV put " + tok[1]
	case strings.HasPrefix(s, "$JS.ACK."), strings.HasPrefix(s, "$JS.FC."):
		return "JS ack/flow"
	case strings.HasPrefix(s, "_"):
		return "replies"
	case len(tok) >= 2:
		return "pub " + tok[0] + "." + tok[1]
	}
	return "pub " + s
}

// counters are NATS's own counts at one moment.
type counters struct {
	subs, inMsgs, api int64
	bySubject         map[string]int64
}

func natsCounters(ns *natsserver.Server, tap *wiretap) counters {
	c := counters{subs: int64(ns.NumSubscriptions()), bySubject: tap.snapshot()}
	if v, err := ns.Varz(nil); err == nil {
		c.inMsgs = v.InMsgs
	}
	if j, err := ns.Jsz(nil); err == nil {
		c.api = int64(j.API.Total)
	}
	return c
}

func (c counters) minus(b counters) counters {
	d := counters{subs: c.subs - b.subs, inMsgs: c.inMsgs - b.inMsgs, api: c.api - b.api, bySubject: map[string]int64{}}
	for k, v := range c.bySubject {
		if v -= b.bySubject[k]; v != 0 {
			d.bySubject[k] = v
		}
	}
	return d
}

// per formats the counts divided by n reconnects.
func (c counters) per(n int64) string {
	if n == 0 {
		return "no reconnect"
	}
	f := func(v int64) string { return fmt.Sprintf("%.2f", float64(v)/float64(n)) }
	keys := make([]string, 0, len(c.bySubject))
	for k := range c.bySubject {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int { return int(c.bySubject[b] - c.bySubject[a]) })
	var parts []string
	for _, k := range keys {
		parts = append(parts, k+" "+f(c.bySubject[k]))
	}
	return fmt.Sprintf("%s NATS messages in from clients (%s JetStream API requests), %.2f subscriptions held; seen on the wire, node subjects excepted: [%s]",
		f(c.inMsgs), f(c.api), float64(c.subs)/float64(n), strings.Join(parts, ", "))
}

// parallel runs f(0..n-1) on workers goroutines; the first error wins.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	work := make(chan int)
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := f(i); err != nil {
					once.Do(func() { first = err })
				}
			}
		}()
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		work <- i
	}
	close(work)
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}

// waitFor polls ok until it holds or d passes.
func waitFor(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not done after %s", d)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}
