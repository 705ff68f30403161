package push

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Notification is what a provider delivers to one device.
type Notification struct {
	Token       string
	Title, Body string
	// CollapseKey makes the device show one notification for a burst.
	CollapseKey string
	Data        map[string]string
}

// Provider sends notifications for one platform.
//
// Contract: Send returns nil once the provider accepted the notification.
// Otherwise it returns an error that wraps ErrInvalidToken (the device
// token is gone: forget it), or is a *RetryError (try again later), or is
// any other error (a permanent failure for this notification). Send must
// respect ctx.
type Provider interface {
	Send(ctx context.Context, n Notification) error
}

// ErrInvalidToken: the provider says the device token is no longer valid.
var ErrInvalidToken = errors.New("invalid device token")

// RetryError: a transient failure (network, 429, 5xx). After, if positive,
// is the provider's Retry-After.
type RetryError struct {
	Status int
	Reason string
	After  time.Duration
}

func (e *RetryError) Error() string {
	return fmt.Sprintf("transient push failure: %d %s", e.Status, e.Reason)
}

// failureReason labels an error for metrics.
func failureReason(err error) string {
	var re *RetryError
	switch {
	case errors.Is(err, ErrInvalidToken):
		return "invalid_token"
	case errors.As(err, &re):
		if re.Status == 0 {
			return "network"
		}
		return fmt.Sprintf("http_%d", re.Status)
	default:
		return "rejected"
	}
}

// NewProviders builds the providers cfg configures. httpClient, when not
// nil, replaces the default HTTP clients (tests).
func NewProviders(ctx context.Context, cfg Config, httpClient *http.Client) (map[Platform]Provider, error) {
	ps := map[Platform]Provider{}
	if cfg.APNs.Enabled() {
		p, err := NewAPNs(cfg.APNs, httpClient)
		if err != nil {
			return nil, err
		}
		ps[APNs] = p
	}
	if cfg.FCM.Enabled() {
		p, err := NewFCM(ctx, cfg.FCM, httpClient)
		if err != nil {
			return nil, err
		}
		ps[FCM] = p
	}
	return ps, nil
}
