package edge

import (
	"net"
	"sync"
)

// batchConn lets a connection's writer send a whole batch of websocket
// frames in one write(2). gws writes each frame to the conn as a separate
// Write; between begin and flush those writes are collected instead. In a
// profile of 1:1 traffic, per-frame writes were about a quarter of the
// edge's CPU.
//
// Writes from other goroutines (gws answering a ping, say) during a batch
// are collected too, in order, since gws serializes its writes; net.Conn
// never interleaves two whole Write calls, so the stream stays well formed.
type batchConn struct {
	net.Conn
	mu       sync.Mutex
	batching bool   // guarded by mu
	buf      []byte // guarded by mu
	spare    []byte // guarded by mu: the last flushed buffer, for reuse
}

func (b *batchConn) Write(p []byte) (int, error) {
	b.mu.Lock()
	if b.batching {
		b.buf = append(b.buf, p...)
		b.mu.Unlock()
		return len(p), nil
	}
	b.mu.Unlock()
	return b.Conn.Write(p)
}

// begin starts collecting writes.
func (b *batchConn) begin() {
	b.mu.Lock()
	b.batching = true
	b.mu.Unlock()
}

// flush stops collecting and writes what was collected, in one call.
func (b *batchConn) flush() error {
	b.mu.Lock()
	b.batching = false
	out := b.buf
	b.buf = b.spare[:0]
	b.spare = nil
	b.mu.Unlock()
	if len(out) == 0 {
		return nil
	}
	_, err := b.Conn.Write(out)
	b.mu.Lock()
	if b.spare == nil && cap(out) <= 1<<20 { // keep one modest buffer per connection
		b.spare = out[:0]
	}
	b.mu.Unlock()
	return err
}

// CloseWrite half-closes the underlying TCP connection.
func (b *batchConn) CloseWrite() error {
	if tc, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return tc.CloseWrite()
	}
	return nil
}
