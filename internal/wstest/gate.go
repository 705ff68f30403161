package wstest

import (
	"net"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// Gate pauses a client's reads, to play a client that stops draining its
// socket. Bytes stay in the kernel buffers until Resume.
type Gate struct {
	mu     sync.Mutex
	paused bool          // guarded by mu
	resume chan struct{} // guarded by mu
}

// Pause makes further reads block.
func (g *Gate) Pause() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.paused {
		g.paused, g.resume = true, make(chan struct{})
	}
}

// Resume lets reads proceed.
func (g *Gate) Resume() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.paused {
		g.paused = false
		close(g.resume)
	}
}

func (g *Gate) wait() {
	g.mu.Lock()
	ch, paused := g.resume, g.paused
	g.mu.Unlock()
	if paused {
		<-ch
	}
}

type gatedConn struct {
	net.Conn
	g *Gate
}

func (c gatedConn) Read(p []byte) (int, error) {
	c.g.wait()
	return c.Conn.Read(p)
}

type gatedDialer struct {
	g *Gate
}

func (d gatedDialer) Dial(network, addr string) (net.Conn, error) {
	c, err := net.DialTimeout(network, addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	// The receive buffer keeps its default size: shrunk below the loopback
	// MSS, Linux stops advertising window updates and the sender falls back
	// to zero-window probes with exponential backoff, stalling for seconds.
	return gatedConn{Conn: c, g: d.g}, nil
}

// DialGated connects like Dial, with reads under the returned Gate.
func DialGated(t testing.TB, url string) (*Client, *Gate) {
	t.Helper()
	g := &Gate{}
	c := newClient()
	conn, _, err := gws.NewClient(c, &gws.ClientOption{Addr: url, ReadMaxPayloadSize: 16 << 20,
		HandshakeTimeout: 5 * time.Second, NewDialer: func() (gws.Dialer, error) { return gatedDialer{g: g}, nil }})
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.conn = conn
	go conn.ReadLoop()
	t.Cleanup(func() { g.Resume(); c.Close() })
	return c, g
}
