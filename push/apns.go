package push

import (
	"context"
	"fmt"
	"net/http"
	"os"

	"github.com/sideshow/apns2"
	"github.com/sideshow/apns2/payload"
	"github.com/sideshow/apns2/token"
)

// APNsConfig configures token-based (.p8) APNs.
type APNsConfig struct {
	KeyFile    string `env:"APNS_KEY_FILE"` // the .p8 key from Apple
	KeyID      string `env:"APNS_KEY_ID"`
	TeamID     string `env:"APNS_TEAM_ID"`
	Topic      string `env:"APNS_TOPIC"` // the app's bundle id
	Production bool   `env:"APNS_PRODUCTION"`
	// URL overrides the endpoint (tests, proxies).
	URL string `env:"APNS_URL"`
}

// Enabled reports whether APNs is configured.
func (c APNsConfig) Enabled() bool { return c.KeyFile != "" }

// APNsProvider sends through Apple's HTTP/2 API with a provider token
// (an ES256 JWT with the key id and team id, refreshed by apns2).
type APNsProvider struct {
	client *apns2.Client
	topic  string
}

// NewAPNs loads the key and builds a client. httpClient, when not nil,
// replaces apns2's (tests use one that trusts their server).
func NewAPNs(cfg APNsConfig, httpClient *http.Client) (*APNsProvider, error) {
	pem, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_APNS_KEY_FILE: %w", err)
	}
	key, err := token.AuthKeyFromBytes(pem)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_APNS_KEY_FILE: %w", err)
	}
	if cfg.KeyID == "" || cfg.TeamID == "" || cfg.Topic == "" {
		return nil, fmt.Errorf("ALLSPARK_APNS_KEY_ID, ALLSPARK_APNS_TEAM_ID and ALLSPARK_APNS_TOPIC are required with ALLSPARK_APNS_KEY_FILE")
	}
	c := apns2.NewTokenClient(&token.Token{AuthKey: key, KeyID: cfg.KeyID, TeamID: cfg.TeamID})
	if cfg.Production {
		c = c.Production()
	} else {
		c = c.Development()
	}
	if cfg.URL != "" {
		c.Host = cfg.URL
	}
	if httpClient != nil {
		c.HTTPClient = httpClient
	}
	return &APNsProvider{client: c, topic: cfg.Topic}, nil
}

// Send implements Provider.
func (p *APNsProvider) Send(ctx context.Context, n Notification) error {
	pl := payload.NewPayload().AlertTitle(n.Title).AlertBody(n.Body).MutableContent()
	for k, v := range n.Data {
		pl.Custom(k, v)
	}
	collapse := n.CollapseKey
	if len(collapse) > 64 { // APNs limit
		collapse = collapse[:64]
	}
	resp, err := p.client.PushWithContext(ctx, &apns2.Notification{
		DeviceToken: n.Token, Topic: p.topic, Payload: pl, CollapseID: collapse,
		Priority: apns2.PriorityHigh, PushType: apns2.PushTypeAlert,
	})
	if err != nil {
		return &RetryError{Reason: err.Error()}
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return nil
	case resp.StatusCode == http.StatusGone, resp.Reason == apns2.ReasonBadDeviceToken,
		resp.Reason == apns2.ReasonUnregistered, resp.Reason == apns2.ReasonDeviceTokenNotForTopic:
		return fmt.Errorf("%w: apns %d %s", ErrInvalidToken, resp.StatusCode, resp.Reason)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &RetryError{Status: resp.StatusCode, Reason: resp.Reason}
	default:
		return fmt.Errorf("apns rejected: %d %s", resp.StatusCode, resp.Reason)
	}
}
