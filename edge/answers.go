package edge

import (
	"sync"

	"github.com/allspark-rt/allspark"
)

// answerOrder keeps the edge's own answers to a connection's messages (a
// rate_limited or not_member rejection, decided before the router sees the
// message) in send order with the router's answers: an answer decided now
// waits until every message routed before it has been answered. The router
// gives its answers in send order (bus.Sequence), so counting them is
// enough to know when the older ones are out.
type answerOrder struct {
	mu       sync.Mutex
	routed   uint64        // guarded by mu: messages handed to the router
	answered uint64        // guarded by mu: router answers given
	waiting  []localAnswer // guarded by mu: answers decided here, oldest first
}

type localAnswer struct {
	after uint64 // routed when it was decided: it goes out once answered reaches this
	sent  allspark.Sent
}

// route hands m to the router and sends its answer in order.
func (c *conn) route(m *allspark.Message, corrID string) {
	c.answers.mu.Lock()
	c.answers.routed++
	c.answers.mu.Unlock()
	c.s.router.Send(c.ctx, m, corrID, &c.order, c.routerAnswer)
}

// routerAnswer sends one of the router's answers, then the answers decided
// here that were waiting for it. It sends under the lock, so two answers
// cannot overtake each other between the count and the queue.
func (c *conn) routerAnswer(s allspark.Sent) {
	a := &c.answers
	a.mu.Lock()
	defer a.mu.Unlock()
	a.answered++
	c.send(mustJSON(s))
	i := 0
	for ; i < len(a.waiting) && a.waiting[i].after <= a.answered; i++ {
		c.send(mustJSON(a.waiting[i].sent))
		a.waiting[i] = localAnswer{}
	}
	a.waiting = a.waiting[i:]
}

// answerNow sends an answer decided by the edge, after the answers of the
// messages routed before it.
func (c *conn) answerNow(s allspark.Sent) {
	a := &c.answers
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.answered >= a.routed {
		c.send(mustJSON(s))
		return
	}
	a.waiting = append(a.waiting, localAnswer{after: a.routed, sent: s})
}
