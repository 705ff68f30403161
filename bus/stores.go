package bus

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"

	"github.com/allspark-rt/allspark"
)

// storeBudget counts the copies being stored and their bytes. Taking from
// it never waits: a copy that does not fit fails at once, so a slow or dead
// JetStream turns into "overloaded" answers instead of blocked callbacks or
// unbounded memory.
type storeBudget struct {
	maxCount, maxBytes int64
	count, bytes       atomic.Int64
}

func (b *storeBudget) take(n, size int64) bool {
	c, by := b.count.Add(n), b.bytes.Add(n*size)
	if c > b.maxCount || by > b.maxBytes {
		b.give(n, size)
		return false
	}
	return true
}

func (b *storeBudget) give(n, size int64) {
	b.count.Add(-n)
	b.bytes.Add(-n * size)
}

// admit takes n copies of size bytes from the budget, or says why not.
// If f is not nil it is queued for the appender; sessions append at once.
func (r *Router) admit(f *fanout, n, size int64) allspark.Code {
	r.openMu.RLock()
	defer r.openMu.RUnlock()
	if !r.open {
		return allspark.CodeUnavailable // the edge is stopping
	}
	if !r.budget.take(n, size) {
		return allspark.CodeOverloaded
	}
	r.stores.Add(1)
	if f != nil {
		r.appendq <- f // never waits: see NewRouter
	}
	return ""
}

// startStores decides f's answer if no store is needed or admitted, or
// queues its copies for the appender. It runs in f's turn of its sender's
// order, often on a NATS callback, so it only does constant work: the
// appends themselves run on the appender, in the same order.
func (f *fanout) startStores() {
	if f.answer != nil || f.session {
		return
	}
	if len(f.unreached) == 0 {
		a := f.outcome(nil)
		f.answer = &a
		return
	}
	if code := f.r.admit(f, int64(len(f.unreached)), int64(len(f.frame))); code != "" {
		failed := make([]allspark.TargetFailure, len(f.unreached))
		for i, node := range f.unreached {
			failed[i] = allspark.TargetFailure{Node: node, Code: code}
		}
		a := f.outcome(failed)
		f.answer = &a
	}
}

// appender starts the appends of admitted messages in admission order (so
// one sender's copies reach each inbox in send order) and a goroutine per
// message that awaits them and gives the answer. It ends when Shutdown
// closes the queue, after starting what was queued.
func (r *Router) appender() {
	defer r.loops.Done()
	for f := range r.appendq {
		n, size := int64(len(f.unreached)), int64(len(f.frame))
		waits := make([]func(context.Context) error, n)
		for i, node := range f.unreached {
			waits[i] = r.store.Append(node, f.m.MsgID, f.frame)
		}
		go func() {
			defer r.stores.Done()
			failed := r.awaitStores(f, waits)
			r.budget.give(n, size)
			f.settle(f.outcome(failed))
		}()
	}
}

// awaitStores waits, concurrently, for every copy of f to be durable, and
// returns the copies that failed with their codes.
func (r *Router) awaitStores(f *fanout, waits []func(context.Context) error) []allspark.TargetFailure {
	ctx, cancel := context.WithTimeout(r.storeCtx, r.storeTimeout)
	defer cancel()
	errs := make([]error, len(waits))
	if len(waits) == 1 {
		errs[0] = waits[0](ctx)
	} else {
		var wg sync.WaitGroup
		for i, wait := range waits {
			wg.Go(func() { errs[i] = wait(ctx) })
		}
		wg.Wait()
	}
	var failed []allspark.TargetFailure
	for i, err := range errs {
		if err == nil {
			continue
		}
		code := allspark.CodeUnavailable
		switch {
		case errors.Is(err, ErrInboxFull):
			code = allspark.CodeInboxFull
		case errors.Is(err, ErrStorageFull):
			code = allspark.CodeOverloaded
		}
		failed = append(failed, allspark.TargetFailure{Node: f.unreached[i], Code: code})
		r.log.Warn("store message", "node", f.unreached[i], "msg_id", f.m.MsgID, "err", err)
	}
	if stored := len(waits) - len(failed); stored > 0 && r.hooks.OnStored != nil {
		r.hooks.OnStored(stored)
	}
	return failed
}

// sendSession appends m to its session's history, then publishes it live
// with its seq. The append starts now, in send order, so it never waits
// behind a slower direct message of the same sender; only the answer takes
// its turn in the sender's order.
func (r *Router) sendSession(f *fanout) {
	f.session = true
	frame, rej := encode(f.m)
	if rej != nil {
		f.rejectNow(rej)
		return
	}
	f.frame = frame
	size := int64(len(frame))
	if code := r.admit(nil, 1, size); code != "" {
		f.rejectNow(allspark.Errorf(code, failureText(code)))
		return
	}
	f.enter()
	wait := r.history.append(f.m.DestSessionID, f.m.MsgID, frame)
	f.resolve() // nothing else to start: the answer is all that is left
	go func() {
		defer r.stores.Done()
		a := r.published(f, wait)
		r.budget.give(1, size)
		f.settle(a)
	}()
}

// published waits for a session message's history append; the message is
// fanned out when its answer is given (fanout.give).
func (r *Router) published(f *fanout, wait func(context.Context) (uint64, error)) allspark.Sent {
	ctx, cancel := context.WithTimeout(r.storeCtx, r.storeTimeout)
	defer cancel()
	seq, err := wait(ctx)
	if err != nil {
		r.log.Warn("append session message", "session", f.m.DestSessionID, "msg_id", f.m.MsgID, "err", err)
		return allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusRejected, allspark.Errorf(allspark.CodeUnavailable, "the message could not be stored"))
	}
	f.live = WithSeq(f.frame, seq) // published with the answer, in send order
	st := allspark.NewSent(f.corrID, f.m.MsgID, allspark.StatusStored, nil)
	st.Seq = seq
	return st
}
