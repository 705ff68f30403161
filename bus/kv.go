package bus

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrNoChange tells UpdateKV that the value needs no write.
var ErrNoChange = errors.New("no change")

// UpdateKV reads key, lets change compute the new value from the current
// one (nil when absent) and writes it only if nobody wrote in between,
// retrying on conflict. change returning ErrNoChange skips the write.
func UpdateKV(ctx context.Context, kv jetstream.KeyValue, key string, change func(cur []byte) ([]byte, error)) error {
	backoff := time.Millisecond
	for range 64 {
		var cur []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		case err != nil:
			return fmt.Errorf("read %s: %w", key, err)
		default:
			cur, rev = e.Value(), e.Revision()
		}
		next, err := change(cur)
		if errors.Is(err, ErrNoChange) {
			return nil
		}
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, next)
		} else {
			_, err = kv.Update(ctx, key, next, rev)
		}
		if err == nil {
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return fmt.Errorf("write %s: %w", key, err)
		}
		// Someone else wrote first: read again, after a jittered pause so
		// many writers of one hot key (a crowd joining one session) spread out.
		select {
		case <-ctx.Done():
			return fmt.Errorf("write %s: %w", key, ctx.Err())
		case <-time.After(backoff + rand.N(backoff)):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
	return fmt.Errorf("write %s: too many concurrent updates", key)
}
