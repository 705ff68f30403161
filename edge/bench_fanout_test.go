package edge_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/lxzan/gws"
)

// counter is a websocket client that counts the frames it receives and
// reads the send time the fan-out benchmark's payload carries, and nothing
// else, so the benchmark measures the server, not client-side JSON decoding.
type counter struct {
	n   *atomic.Int64
	lat *latencies // nil: count only
}

func (counter) OnOpen(*gws.Conn)             {}
func (counter) OnClose(*gws.Conn, error)     {}
func (counter) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (counter) OnPong(*gws.Conn, []byte)     {}
func (c counter) OnMessage(_ *gws.Conn, m *gws.Message) {
	if c.lat != nil {
		c.lat.observe(m.Bytes())
	}
	c.n.Add(1)
	m.Close()
}

// latencies collects one member's receive latencies (now minus the send
// time in the payload's "t"), in microseconds. Only its reader goroutine
// appends; the benchmark reads it after the last delivery.
type latencies struct {
	mu  sync.Mutex
	lat []int64 // guarded by mu
}

var sendTimeField = []byte(`"t":`)

func (l *latencies) observe(b []byte) {
	i := bytes.Index(b, sendTimeField)
	if i < 0 {
		return
	}
	rest := b[i+len(sendTimeField):]
	e := 0
	for e < len(rest) && rest[e] >= '0' && rest[e] <= '9' {
		e++
	}
	sent, err := strconv.ParseInt(string(rest[:e]), 10, 64)
	if err != nil {
		return
	}
	d := (time.Now().UnixNano() - sent) / 1e3
	l.mu.Lock()
	l.lat = append(l.lat, d)
	l.mu.Unlock()
}

func dialCounter(b *testing.B, u string, n *atomic.Int64, lat *latencies) *gws.Conn {
	b.Helper()
	conn, _, err := gws.NewClient(counter{n: n, lat: lat}, &gws.ClientOption{Addr: u})
	if err != nil {
		b.Fatal(err)
	}
	go conn.ReadLoop()
	b.Cleanup(func() { _ = conn.NetConn().Close() })
	return conn
}

func waitCount(b *testing.B, n *atomic.Int64, want int64) {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for n.Load() < want {
		if time.Now().After(deadline) {
			b.Fatalf("received %d of %d", n.Load(), want)
		}
		time.Sleep(time.Millisecond)
	}
}

// windowSender is a session member that keeps at most window messages
// unanswered, as the harness's senders do (bench/scenarios.go).
type windowSender struct {
	slots    chan struct{}
	accepted atomic.Int64
	refused  atomic.Int64
}

func (*windowSender) OnOpen(*gws.Conn)             {}
func (*windowSender) OnClose(*gws.Conn, error)     {}
func (*windowSender) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (*windowSender) OnPong(*gws.Conn, []byte)     {}
func (w *windowSender) OnMessage(_ *gws.Conn, m *gws.Message) {
	defer m.Close()
	b := m.Bytes()
	if !bytes.HasPrefix(b, []byte(`{"type":"sent"`)) {
		return
	}
	if bytes.Contains(b, []byte(`"status":"rejected"`)) {
		w.refused.Add(1)
	} else {
		w.accepted.Add(1)
	}
	w.slots <- struct{}{}
}

const (
	fanoutMembers = 1000
	fanoutWindow  = 32 // unanswered sends, as in the harness
)

// BenchmarkSessionFanout: one session of 1,000 members; one member sends
// b.N messages keeping at most 32 unanswered (as the harness's scenario c
// does); every other member receives each. Members are on one edge (the
// harness's shape) or split over two. The rate limit is off, as in the
// harness. Reports deliveries per second and the p99 latency from send to
// receipt.
func BenchmarkSessionFanout(b *testing.B) {
	for _, edges := range []int{1, 2} {
		b.Run(fmt.Sprintf("edges=%d", edges), func(b *testing.B) { benchSessionFanout(b, edges) })
	}
}

func benchSessionFanout(b *testing.B, nEdges int) {
	c := newCluster(b)
	noLimit := func(cfg *edge.Config) { cfg.RateLimit = 0 }
	var edges []*testEdge
	for i := range nEdges {
		edges = append(edges, c.edge(fmt.Sprintf("edge-%d", i), noLimit))
	}
	c.mustCallB(b, edges[0], "POST", "/v1/sessions", "m0000", map[string]any{"session_id": "big"}, 201)
	for i := 1; i < fanoutMembers; i++ {
		c.mustCallB(b, edges[i%nEdges], "POST", "/v1/sessions/big/join", fmt.Sprintf("m%04d", i), nil, 200)
	}
	var received atomic.Int64
	lats := make([]*latencies, fanoutMembers-1)
	for i := 1; i < fanoutMembers; i++ {
		node := fmt.Sprintf("m%04d", i)
		lats[i-1] = &latencies{}
		dialCounter(b, edges[i%nEdges].wsURL("auth_key="+url.QueryEscape(c.authKey(node, node))), &received, lats[i-1])
	}
	waitCount(b, &received, fanoutMembers-1) // each member's sync_done
	snd := &windowSender{slots: make(chan struct{}, fanoutWindow)}
	for range fanoutWindow {
		snd.slots <- struct{}{}
	}
	sender, _, err := gws.NewClient(snd, &gws.ClientOption{Addr: edges[0].wsURL("auth_key=" + url.QueryEscape(c.authKey("m0000", "m0000")))})
	if err != nil {
		b.Fatal(err)
	}
	go sender.ReadLoop()
	b.Cleanup(func() { _ = sender.NetConn().Close() })
	base := received.Load()
	for _, l := range lats {
		l.mu.Lock()
		l.lat = l.lat[:0]
		l.mu.Unlock()
	}
	b.ResetTimer()
	start, cpu0 := time.Now(), processCPU(b)
	for range b.N {
		<-snd.slots
		body := `{"dest_session_id":"big","payload":{"line":"a chat line of typical length, around sixty bytes","t":` +
			strconv.FormatInt(time.Now().UnixNano(), 10) + `}}`
		if err := sender.WriteString(body); err != nil {
			b.Fatal(err)
		}
	}
	for range fanoutWindow { // every answer in
		<-snd.slots
	}
	if n := snd.refused.Load(); n > 0 {
		b.Fatalf("%d of %d messages refused", n, b.N)
	}
	want := base + int64(b.N)*(fanoutMembers-1)
	waitCount(b, &received, want)
	b.StopTimer()
	deliveries := float64(int64(b.N) * (fanoutMembers - 1))
	b.ReportMetric(deliveries/time.Since(start).Seconds(), "deliveries/s")
	// CPU per delivery (edge, NATS server and clients: one process) varies
	// less than the rate on a machine shared with other work.
	b.ReportMetric(float64((processCPU(b)-cpu0).Nanoseconds())/1e3/deliveries, "cpu-µs/delivery")
	var all []int64
	for _, l := range lats {
		l.mu.Lock()
		all = append(all, l.lat...)
		l.mu.Unlock()
	}
	if len(all) > 0 {
		slices.Sort(all)
		b.ReportMetric(float64(all[len(all)*99/100])/1e3, "p99-ms")
	}
}

// processCPU is the CPU time (user and system) this process has used.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRawWebsocketFanoutBaseline is the ceiling under the benchmark
// above: one gws server writing the same frame straight to 1,000 sockets
// through each socket's own async write queue; no NATS, no routing, no JSON.
func BenchmarkRawWebsocketFanoutBaseline(b *testing.B) {
	var mu sync.Mutex
	var conns []*gws.Conn
	up := gws.NewUpgrader(gws.BuiltinEventHandler{}, nil)
	hs := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, err := up.Upgrade(w, r)
		if err != nil {
			return
		}
		mu.Lock()
		conns = append(conns, s)
		mu.Unlock()
		go s.ReadLoop()
	}))
	defer hs.Close()
	var received atomic.Int64
	for range fanoutMembers - 1 {
		dialCounter(b, "ws"+strings.TrimPrefix(hs.URL, "http"), &received, nil)
	}
	testutil.Eventually(b, 2*time.Minute, func() error {
		mu.Lock()
		defer mu.Unlock()
		if n := len(conns); n != fanoutMembers-1 {
			return fmt.Errorf("%d of %d members connected", n, fanoutMembers-1)
		}
		return nil
	})
	frame := []byte(`{"seq":12345,"msg_id":"01J000000000000000000000","src_id":"m0000","dest_session_id":"big","payload":"a chat line of typical length, around sixty bytes","ts":1795787583210}`)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		for _, s := range conns {
			s.WriteAsync(gws.OpcodeText, frame, nil) // per-connection write queue, like the edge's writers
		}
	}
	waitCount(b, &received, int64(b.N)*(fanoutMembers-1))
	b.StopTimer()
	b.ReportMetric(float64(int64(b.N)*(fanoutMembers-1))/time.Since(start).Seconds(), "deliveries/s")
	for _, s := range conns {
		_ = s.NetConn().Close()
	}
}
