package main

import (
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// limitListener caps the connections open at once on the public listener
// (ALLSPARK_MAX_HTTP_CONNS), websockets included. A connection over the
// cap is accepted and closed at once, rather than left in the kernel's
// backlog, so the client learns straight away and the accept loop keeps
// serving: when others close, new ones get in.
type limitListener struct {
	net.Listener
	max  int64
	open atomic.Int64
	now  func() time.Time
	log  *slog.Logger

	mu         sync.Mutex
	refused    int64     // guarded by mu: since the last warning
	lastWarned time.Time // guarded by mu
}

func newLimitListener(ln net.Listener, max int, now func() time.Time, log *slog.Logger) *limitListener {
	return &limitListener{Listener: ln, max: int64(max), now: now, log: log}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		if l.open.Add(1) <= l.max {
			return &countedConn{Conn: c, release: func() { l.open.Add(-1) }}, nil
		}
		l.open.Add(-1)
		_ = c.Close()
		l.refusedOne()
	}
}

// refusedOne warns at most every 10 seconds, with the count since.
func (l *limitListener) refusedOne() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.refused++
	if now := l.now(); now.Sub(l.lastWarned) >= 10*time.Second {
		l.log.Warn("connections refused: ALLSPARK_MAX_HTTP_CONNS reached", "max", l.max, "refused", l.refused)
		l.refused, l.lastWarned = 0, now
	}
}

// countedConn gives its slot back once, however often it is closed.
type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
