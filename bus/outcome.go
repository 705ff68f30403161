package bus

import (
	"sync"

	"github.com/allspark-rt/allspark"
)

// OutcomeOrder releases one sender's outcomes in the order it sent the
// messages. Replies, timeouts and NATS no-responders statuses arrive in any
// order, and stores finish in any order; an OutcomeOrder starts each
// message's stores only after the older messages' stores have started (so a
// sender's copies enter an inbox in send order) and gives each answer only
// after the older answers (so a sender's "sent" frames arrive in send
// order). Early rejections take their turn too. A websocket connection has
// one; independent backend requests need none. The zero value is ready.
type OutcomeOrder struct {
	mu      sync.Mutex
	q       []*fanout // guarded by mu: unanswered messages, in send order
	started int       // guarded by mu: q[:started] have had their stores started
}

// Pending is how many of the sender's messages are not answered yet.
func (o *OutcomeOrder) Pending() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.q)
}

// fanout is one message on its way: its per-target results, then its
// stores, then its answer.
type fanout struct {
	r      *Router
	m      *allspark.Message
	corrID string
	frame  []byte
	done   func(allspark.Sent)
	order  *OutcomeOrder

	// Guarded by order.mu; without an order, owned by the goroutine that
	// moves the message on (the last result, then its store goroutine).
	resolved bool           // every target's result is known
	answer   *allspark.Sent // the answer, once known
	session  bool           // a message to a whole session: its store started at Send
	// live is a session message's frame with its seq, set once its history
	// append is durable, and published when its answer is given: appends
	// finish in any order, answers are given in send order, so the session
	// sees one sender's messages in the order they were sent.
	live []byte

	mu        sync.Mutex
	left      int      // guarded by mu: targets without a result
	delivered int      // guarded by mu: targets that acked
	unreached []string // guarded by mu until left is 0: targets that did not ack
}

// enter queues f in its sender's order, in send order.
func (f *fanout) enter() {
	if o := f.order; o != nil {
		o.mu.Lock()
		o.q = append(o.q, f)
		o.mu.Unlock()
	}
}

// rejectNow answers f rejected, in its turn.
func (f *fanout) rejectNow(e *allspark.Error) {
	a := allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusRejected, e)
	f.answer = &a // before enter, which publishes f to other goroutines
	f.enter()
	f.resolve()
}

// result records one target's outcome.
func (f *fanout) result(node string, acked bool) {
	f.mu.Lock()
	if acked {
		f.delivered++
	} else {
		f.unreached = append(f.unreached, node)
	}
	f.left--
	last := f.left == 0
	f.mu.Unlock()
	if last {
		f.resolve()
	}
}

// resolve runs once every target's result is known (or the answer is
// decided without them): it starts f's stores in turn and gives every
// answer that no longer waits for an older one.
func (f *fanout) resolve() {
	o := f.order
	if o == nil {
		f.startStores()
		if f.answer != nil {
			f.give(*f.answer)
		}
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	f.resolved = true
	o.advance()
}

// settle gives f's answer, once its stores are done.
func (f *fanout) settle(a allspark.Sent) {
	o := f.order
	if o == nil {
		f.give(a)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	f.answer = &a
	o.advance()
}

// advance starts the stores of resolved messages whose elders have started
// theirs, then releases answers from the head. Called with o.mu held;
// nothing here blocks (startStores only publishes asynchronously), and the
// answers are given under the lock so two advances cannot reorder them.
func (o *OutcomeOrder) advance() {
	for o.started < len(o.q) && o.q[o.started].resolved {
		o.q[o.started].startStores()
		o.started++
	}
	for len(o.q) > 0 && o.q[0].resolved && o.q[0].answer != nil {
		head := o.q[0]
		o.q[0] = nil
		o.q = o.q[1:]
		o.started--
		head.give(*head.answer)
	}
}

// give publishes a session message live, then answers its sender.
func (f *fanout) give(a allspark.Sent) {
	if f.live != nil {
		if err := f.r.history.publishLive(f.m.DestSessionID, f.m.SrcNode, f.live); err != nil {
			f.r.log.Warn("publish session message", "session", f.m.DestSessionID, "err", err)
		}
	}
	f.done(a)
}

// outcome is a direct message's answer given the copies that failed, with
// the code each failed with: rejected only if no copy was delivered or
// stored; otherwise stored (some copy is in an inbox) or delivered, with the
// failed targets listed.
func (f *fanout) outcome(failed []allspark.TargetFailure) allspark.Sent {
	id, msgID := f.corrID, f.m.MsgID
	stored := len(f.unreached) - len(failed)
	switch {
	case stored > 0:
		s := allspark.NewSent(id, msgID, allspark.StatusStored, nil)
		s.Failed = failed
		return s
	case f.delivered > 0:
		s := allspark.NewSent(id, msgID, allspark.StatusDelivered, nil)
		s.Failed = failed
		return s
	}
	code := failed[0].Code
	for _, tf := range failed[1:] {
		if tf.Code != code {
			code = allspark.CodeUnavailable
		}
	}
	return allspark.NewSent(id, msgID, allspark.StatusRejected, allspark.Errorf(code, failureText(code)))
}

// failureText explains a rejection whose every copy failed with code.
func failureText(code allspark.Code) string {
	switch code {
	case allspark.CodeInboxFull:
		return "the recipient's inbox is full"
	case allspark.CodeOverloaded:
		return "the edge has too many messages being stored; retry later"
	default:
		return "the message could not be stored"
	}
}
