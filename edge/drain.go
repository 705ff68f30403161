package edge

import (
	"context"
	"time"

	"github.com/allspark-rt/allspark"
)

// A drain must end every connection with reconnect then 1001, and every
// message a client sent before it must be answered first: an unanswered
// send leaves the client not knowing whether to resend. So a draining
// connection takes no new work (deliveries are refused, and their senders
// store them; new sends are rejected), goes on answering what it has in
// flight, and closes once the last answer is queued, or when the drain
// budget says the rest must be cut.

// answer queues the outcome of one of the client's sends.
func (c *conn) answer(s allspark.Sent) { c.send(mustJSON(s)) }

// beginDrain queues the reconnect frame; from then on only answers follow.
func (c *conn) beginDrain(reconnect []byte) {
	c.mu.Lock()
	if !c.tornDown && c.closing.code == 0 && !c.draining {
		c.queueLocked(reconnect)
		c.draining = true
	}
	c.mu.Unlock()
	c.signal()
}

// refuseWhileDraining answers m rejected if the connection is draining:
// the client was told to reconnect and should send it there.
func (c *conn) refuseWhileDraining(corrID string, m *allspark.Message) bool {
	c.mu.Lock()
	draining := c.draining
	c.mu.Unlock()
	if draining {
		c.s.router.Reject(m, corrID, &c.order, allspark.Errorf(allspark.CodeUnavailable, "edge is draining: reconnect and send again"), c.answer)
	}
	return draining
}

// drainReserve is the part of a drain budget kept for cutting short what
// is still unanswered and closing the connections.
func drainReserve(budget time.Duration) time.Duration {
	return min(time.Second, budget/4)
}

// awaitAnswers waits until no connection has an unanswered send, or until
// only the reserve of the drain budget is left.
func (s *Server) awaitAnswers(ctx context.Context, conns []*conn) {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = s.now().Add(s.cfg.DrainTimeout)
	}
	soft := deadline.Add(-drainReserve(deadline.Sub(s.now())))
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		pending := 0
		for _, c := range conns {
			pending += c.order.Pending()
		}
		if pending == 0 || !s.now().Before(soft) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cutStores answers every send still waiting, within half of what is left
// of the reserve: deliveries awaiting a verdict count as not acked, and
// stores not durable by then are answered "unavailable". The answers are
// queued before the connections close. It reports stores it cut short.
func (s *Server) cutStores(ctx context.Context) error {
	if s.req != nil {
		s.req.Close()
	}
	if s.router == nil {
		return nil
	}
	s.hub.giveUpLocal() // same-edge deliveries: stored, like those the Requester just failed
	cut := ctx
	if deadline, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		cut, cancel = context.WithDeadline(ctx, deadline.Add(-deadline.Sub(s.now())/2))
		defer cancel()
	}
	return s.router.Shutdown(cut)
}
