package edge

import (
	"sync"
	"sync/atomic"
	"time"
)

// pingWheelMaxSlots bounds the wheel: at the default 25 s interval a slot
// is pinged every 390 ms, so pings go out in 64 small waves rather than
// one wave of every connection at once.
const pingWheelMaxSlots = 64

// pingWheelMinStep keeps short intervals (tests) from ticking too fast.
const pingWheelMinStep = 50 * time.Millisecond

// pingWheel asks every connection for a ping once per interval from one
// goroutine, instead of a ticker (and a writer goroutine waiting on it) per
// connection. A connection sits in one of the slots; every step the wheel
// moves to the next slot and asks its connections for a ping, so each is
// asked once per revolution, i.e. once per interval. A connection joins the
// slot the wheel last visited, so its first ping comes a full revolution
// after it connects, as with a ticker of its own.
//
// The wheel only asks (conn.requestPing): the connection's writer, started
// on demand, writes the ping, so a slow client never holds up the wheel.
type pingWheel struct {
	step   time.Duration
	cursor atomic.Int64 // the slot the wheel last visited
	slots  []pingSlot
}

type pingSlot struct {
	mu    sync.Mutex
	conns map[*conn]struct{} // guarded by mu
}

func newPingWheel(interval time.Duration) *pingWheel {
	n := int(interval / pingWheelMinStep)
	n = max(1, min(n, pingWheelMaxSlots))
	w := &pingWheel{step: interval / time.Duration(n), slots: make([]pingSlot, n)}
	for i := range w.slots {
		w.slots[i].conns = map[*conn]struct{}{}
	}
	return w
}

// add puts c in the wheel. Call it once, before c's reader starts (so
// teardown, which removes it, runs after).
func (w *pingWheel) add(c *conn) {
	i := int(w.cursor.Load())
	s := &w.slots[i]
	s.mu.Lock()
	s.conns[c] = struct{}{}
	s.mu.Unlock()
	c.pingSlot = i + 1
}

// remove takes c out of the wheel, if it is in it.
func (w *pingWheel) remove(c *conn) {
	if c.pingSlot == 0 {
		return
	}
	s := &w.slots[c.pingSlot-1]
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

// run turns the wheel until stop closes.
func (w *pingWheel) run(stop <-chan struct{}) {
	t := time.NewTicker(w.step)
	defer t.Stop()
	var due []*conn
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		}
		i := (w.cursor.Load() + 1) % int64(len(w.slots))
		w.cursor.Store(i)
		due = w.slots[i].snapshot(due[:0])
		for _, c := range due {
			c.requestPing()
		}
		clear(due) // hold no connection until the next turn
	}
}

func (s *pingSlot) snapshot(buf []*conn) []*conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		buf = append(buf, c)
	}
	return buf
}
