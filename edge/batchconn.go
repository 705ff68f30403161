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
//
// Between batches the connection holds no buffer: flush hands it back to
// pool (the server's), so an idle connection costs nothing here.
type batchConn struct {
	net.Conn
	pool     *sync.Pool // of *[]byte
	mu       sync.Mutex
	batching bool   // guarded by mu
	buf      []byte // guarded by mu
}

// batchBufMax is the largest buffer flush returns to the pool: a rare huge
// batch should not pin its memory.
const batchBufMax = 64 << 10

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
	if b.buf == nil && b.pool != nil {
		if p, ok := b.pool.Get().(*[]byte); ok {
			b.buf = (*p)[:0]
		}
	}
	b.mu.Unlock()
}

// flush stops collecting, writes what was collected in one call and hands
// the buffer back to the pool.
func (b *batchConn) flush() error {
	b.mu.Lock()
	b.batching = false
	out := b.buf
	b.buf = nil
	b.mu.Unlock()
	var err error
	if len(out) > 0 {
		_, err = b.Conn.Write(out)
	}
	if b.pool != nil && out != nil && cap(out) <= batchBufMax {
		out = out[:0]
		b.pool.Put(&out)
	}
	return err
}

// CloseWrite half-closes the underlying TCP connection.
func (b *batchConn) CloseWrite() error {
	if tc, ok := b.Conn.(interface{ CloseWrite() error }); ok {
		return tc.CloseWrite()
	}
	return nil
}
