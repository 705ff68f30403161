package edge_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/lxzan/gws"
)

// counter is a websocket client that only counts the frames it receives,
// so the benchmark measures the server, not client-side JSON decoding.
type counter struct {
	n *atomic.Int64
}

func (counter) OnOpen(*gws.Conn)             {}
func (counter) OnClose(*gws.Conn, error)     {}
func (counter) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (counter) OnPong(*gws.Conn, []byte)     {}
func (c counter) OnMessage(_ *gws.Conn, m *gws.Message) {
	c.n.Add(1)
	m.Close()
}

func dialCounter(b *testing.B, u string, n *atomic.Int64) *gws.Conn {
	b.Helper()
	conn, _, err := gws.NewClient(counter{n: n}, &gws.ClientOption{Addr: u})
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

const fanoutMembers = 1000

// BenchmarkSessionFanout: one session of 1,000 members, half on each of two
// edges; a member sends b.N messages; every other member receives each.
// Reports deliveries per second.
func BenchmarkSessionFanout(b *testing.B) {
	c := newCluster(b)
	edges := []*testEdge{c.edge("edge-a"), c.edge("edge-b")}
	c.mustCallB(b, edges[0], "POST", "/v1/sessions", "m0000", map[string]any{"session_id": "big"}, 201)
	for i := 1; i < fanoutMembers; i++ {
		c.mustCallB(b, edges[i%2], "POST", "/v1/sessions/big/join", fmt.Sprintf("m%04d", i), nil, 200)
	}
	var received atomic.Int64
	for i := 1; i < fanoutMembers; i++ {
		node := fmt.Sprintf("m%04d", i)
		dialCounter(b, edges[i%2].wsURL("auth_key="+url.QueryEscape(c.authKey(node, node))), &received)
	}
	waitCount(b, &received, fanoutMembers-1) // each member's sync_done
	sender := c.dial(edges[0], "m0000", "m0000")
	base := received.Load()
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		sender.SendRaw(b, `{"dest_session_id":"big","payload":"a chat line of typical length, around sixty bytes"}`)
	}
	want := base + int64(b.N)*(fanoutMembers-1)
	waitCount(b, &received, want)
	b.StopTimer()
	b.ReportMetric(float64(int64(b.N)*(fanoutMembers-1))/time.Since(start).Seconds(), "deliveries/s")
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
		dialCounter(b, "ws"+strings.TrimPrefix(hs.URL, "http"), &received)
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
