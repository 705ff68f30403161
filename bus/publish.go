package bus

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// defaultAttemptTimeout is how long one publish waits for its PubAck when
// the caller configured nothing.
const defaultAttemptTimeout = 2 * time.Second

// asyncStallWait bounds how long an async publish may wait for room in the
// JetStream context's pending window. The router keeps fewer stores in
// flight than the window holds, so this is a safety net: a publish that
// would stall fails fast and goes to the retry loop instead of blocking its
// caller, which may be a NATS callback.
const asyncStallWait = 5 * time.Millisecond

// durablePublish publishes msg() asynchronously, so publishes from one
// goroutine reach the stream in order, and returns a wait that yields the
// PubAck once the message is durable.
//
// A PubAck can be lost, not only refused: when a stream leader dies while
// the publisher's own connection survives, nothing answers. So the first
// attempt runs on a JetStream context with an async-publish timeout of one
// attempt, and every failed or unanswered attempt is retried synchronously,
// each with its own attempt timeout, with backoff, until ctx ends or final
// says no retry can help. The caller's Nats-Msg-Id makes a retry of a
// message that was stored but not acknowledged harmless: the stream keeps
// one copy and acks the retry as a duplicate with the original sequence.
func durablePublish(js jetstream.JetStream, msg func() *nats.Msg, attempt time.Duration, final func(error) bool) func(context.Context) (*jetstream.PubAck, error) {
	if attempt <= 0 {
		attempt = defaultAttemptTimeout
	}
	fut, err := js.PublishMsgAsync(msg(), jetstream.WithStallWait(asyncStallWait))
	return func(ctx context.Context) (*jetstream.PubAck, error) {
		if err == nil {
			select {
			case ack := <-fut.Ok():
				return ack, nil
			case err = <-fut.Err():
			case <-ctx.Done():
				return nil, fmt.Errorf("wait for PubAck: %w", ctx.Err())
			}
		}
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			if final != nil && final(err) {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("publish (last attempt: %w): %w", err, ctx.Err())
			case <-time.After(backoff):
			}
			actx, cancel := context.WithTimeout(ctx, attempt)
			ack, perr := js.PublishMsg(actx, msg())
			cancel()
			if perr == nil {
				return ack, nil
			}
			if errors.Is(perr, context.DeadlineExceeded) && ctx.Err() == nil {
				perr = fmt.Errorf("no PubAck within %s: %w", attempt, perr)
			}
			err = perr
		}
	}
}
