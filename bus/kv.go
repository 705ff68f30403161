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
// retrying on conflict. change returning ErrNoChange skips the write; any
// other error from change aborts with that error and nothing written.
func UpdateKV(ctx context.Context, kv jetstream.KeyValue, key string, change func(cur []byte) ([]byte, error)) error {
	_, _, err := UpdateKVRev(ctx, kv, key, change)
	return err
}

// UpdateKVRev is UpdateKV that also returns the revision the key holds
// afterwards (the one written, or the one read when change returned
// ErrNoChange; 0 for an absent key) and whether it wrote. The revision lets
// a caller stamp what it derives from the value, so an older derivation
// can never overwrite a newer one.
func UpdateKVRev(ctx context.Context, kv jetstream.KeyValue, key string, change func(cur []byte) ([]byte, error)) (rev uint64, wrote bool, err error) {
	backoff := time.Millisecond
	for range 64 {
		var cur []byte
		var curRev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		case err != nil:
			return 0, false, fmt.Errorf("read %s: %w", key, err)
		default:
			cur, curRev = e.Value(), e.Revision()
		}
		next, err := change(cur)
		if errors.Is(err, ErrNoChange) {
			return curRev, false, nil
		}
		if err != nil {
			return 0, false, err
		}
		if curRev == 0 {
			rev, err = kv.Create(ctx, key, next)
		} else {
			rev, err = kv.Update(ctx, key, next, curRev)
		}
		if err == nil {
			return rev, true, nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, false, fmt.Errorf("write %s: %w", key, err)
		}
		// Someone else wrote first: read again, after a jittered pause so
		// many writers of one hot key (a crowd joining one session) spread out.
		select {
		case <-ctx.Done():
			return 0, false, fmt.Errorf("write %s: %w", key, ctx.Err())
		case <-time.After(backoff + rand.N(backoff)):
		}
		backoff = min(2*backoff, 100*time.Millisecond)
	}
	return 0, false, fmt.Errorf("write %s: too many concurrent updates", key)
}
