// Package webhook forwards AllSpark's lifecycle events (the events stream,
// see bus/events.go) to an HTTP endpoint: batched, signed with
// HMAC-SHA256, retried with backoff, at least once. A durable JetStream
// consumer remembers what was delivered, so events wait in the stream
// while the endpoint is down and nothing is dropped before the stream's
// retention (ALLSPARK_EVENTS_TTL).
package webhook

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// Config is the forwarder's configuration (ALLSPARK_WEBHOOK_*).
type Config struct {
	// URL receives the events (POST). Empty: no forwarder.
	URL string `env:"WEBHOOK_URL"`
	// Secret signs each request; at least 16 bytes.
	Secret string `env:"WEBHOOK_SECRET"`
	// BatchSize is the most events in one request.
	BatchSize int `env:"WEBHOOK_BATCH_SIZE" envDefault:"100"`
	// BatchWait is how long a batch waits to fill before it is sent.
	BatchWait time.Duration `env:"WEBHOOK_BATCH_WAIT" envDefault:"500ms"`
	// Timeout bounds one request.
	Timeout time.Duration `env:"WEBHOOK_TIMEOUT" envDefault:"10s"`
	// MinBackoff and MaxBackoff bound the wait between retries of a
	// failed batch (doubling from MinBackoff; Retry-After, if longer and
	// not above MaxBackoff, is honoured).
	MinBackoff time.Duration `env:"WEBHOOK_MIN_BACKOFF" envDefault:"500ms"`
	MaxBackoff time.Duration `env:"WEBHOOK_MAX_BACKOFF" envDefault:"1m"`
	// Consumer names the durable JetStream consumer. Forwarders sharing a
	// name share the work; a different name gets its own copy of every
	// event (a second endpoint).
	Consumer string `env:"WEBHOOK_CONSUMER" envDefault:"webhook"`
}

// Enabled reports whether a URL is configured.
func (c Config) Enabled() bool { return c.URL != "" }

// Validate names the first bad variable.
func (c Config) Validate() error {
	var errs []error
	u, err := url.Parse(c.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		errs = append(errs, fmt.Errorf("ALLSPARK_WEBHOOK_URL: must be an http(s) URL, got %q", c.URL))
	}
	if len(c.Secret) < 16 {
		errs = append(errs, fmt.Errorf("ALLSPARK_WEBHOOK_SECRET: at least 16 bytes are required, got %d", len(c.Secret)))
	}
	if c.BatchSize < 1 || c.BatchSize > 10000 {
		errs = append(errs, fmt.Errorf("ALLSPARK_WEBHOOK_BATCH_SIZE: must be 1..10000, got %d", c.BatchSize))
	}
	for name, d := range map[string]time.Duration{"BATCH_WAIT": c.BatchWait, "TIMEOUT": c.Timeout,
		"MIN_BACKOFF": c.MinBackoff, "MAX_BACKOFF": c.MaxBackoff} {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("ALLSPARK_WEBHOOK_%s: must be a positive duration, got %s", name, d))
		}
	}
	if c.MaxBackoff < c.MinBackoff {
		errs = append(errs, fmt.Errorf("ALLSPARK_WEBHOOK_MAX_BACKOFF: must be at least ALLSPARK_WEBHOOK_MIN_BACKOFF (%s), got %s", c.MinBackoff, c.MaxBackoff))
	}
	if c.Consumer == "" {
		errs = append(errs, errors.New("ALLSPARK_WEBHOOK_CONSUMER: must not be empty"))
	}
	return errors.Join(errs...)
}
