package bus

import (
	"context"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// durablePublish publishes msg() asynchronously, so publishes from one
// goroutine reach the stream in order, and returns a wait that yields the
// PubAck once the message is durable. A failed publish (a stream leader
// election, a lost connection) is retried synchronously with backoff until
// ctx ends, unless final says the error cannot be fixed by retrying. The
// caller's msg id header makes a retry that raced a late success harmless.
func durablePublish(js jetstream.JetStream, msg func() *nats.Msg, final func(error) bool) func(context.Context) (*jetstream.PubAck, error) {
	fut, err := js.PublishMsgAsync(msg())
	return func(ctx context.Context) (*jetstream.PubAck, error) {
		if err == nil {
			select {
			case ack := <-fut.Ok():
				return ack, nil
			case err = <-fut.Err():
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		for backoff := 50 * time.Millisecond; ; backoff = min(2*backoff, time.Second) {
			if final != nil && final(err) {
				return nil, err
			}
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(backoff):
			}
			ack, perr := js.PublishMsg(ctx, msg())
			if perr == nil {
				return ack, nil
			}
			err = perr
		}
	}
}
