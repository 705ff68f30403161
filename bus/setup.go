package bus

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Concurrently runs fs at once with ctx and returns their errors joined. Stream
// and bucket creations are independent, and on a cluster each waits for a
// round of Raft agreement: done one by one, their latencies add up.
func Concurrently(ctx context.Context, fs ...func(context.Context) error) error {
	errs := make([]error, len(fs))
	var wg sync.WaitGroup
	for i, f := range fs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = f(ctx)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// WaitJetStream returns once JetStream answers for the account, polling
// with attempt as the timeout of each try. On a cluster only the meta
// leader answers, so this waits for the cluster to elect one: until then
// every stream or bucket creation would hang to its own timeout.
func WaitJetStream(ctx context.Context, js jetstream.JetStream, attempt time.Duration) error {
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			return nil
		}
		if IsFinalSetupError(err) {
			return fmt.Errorf("wait for JetStream: %w", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for JetStream (meta leader): %w (last error: %w)", ctx.Err(), err)
		case <-time.After(attempt / 4):
		}
	}
}

// JetStream error codes that retrying cannot fix: the configuration asks
// for what the servers cannot give.
const (
	jsReplicasNotSupported  = 10074 // replicas > 1 on a server that is not clustered
	jsInsufficientResources = 10023 // more replicas or storage than the servers have
)

// IsFinalSetupError reports whether err, from creating a stream or bucket,
// will come back however often the creation is retried.
func IsFinalSetupError(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	return apiErr.ErrorCode == jsReplicasNotSupported || apiErr.ErrorCode == jsInsufficientResources
}
