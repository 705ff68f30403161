package push

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

// FCMConfig configures FCM HTTP v1 with a service account.
type FCMConfig struct {
	CredentialsFile string `env:"FCM_CREDENTIALS_FILE"` // service-account JSON
	ProjectID       string `env:"FCM_PROJECT_ID"`       // default: the credentials' project
	// URL overrides the API base (tests, proxies).
	URL string `env:"FCM_URL" envDefault:"https://fcm.googleapis.com"`
}

// Enabled reports whether FCM is configured.
func (c FCMConfig) Enabled() bool { return c.CredentialsFile != "" }

const fcmScope = "https://www.googleapis.com/auth/firebase.messaging"

// FCMProvider sends through FCM HTTP v1, authenticated with OAuth2 access
// tokens minted from the service account (cached until they expire).
type FCMProvider struct {
	http     *http.Client
	tokens   oauth2.TokenSource
	endpoint string
}

// NewFCM reads the service account. httpClient, when not nil, is used for
// both the token exchange and the sends.
func NewFCM(ctx context.Context, cfg FCMConfig, httpClient *http.Client) (*FCMProvider, error) {
	js, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_FCM_CREDENTIALS_FILE: %w", err)
	}
	if httpClient == nil {
		httpClient = &http.Client{Timeout: 30 * time.Second}
	}
	// The token source keeps this context for its refreshes: it must outlive the call.
	tctx := context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, httpClient)
	creds, err := google.CredentialsFromJSONWithType(tctx, js, google.ServiceAccount, fcmScope)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_FCM_CREDENTIALS_FILE: %w", err)
	}
	project := cfg.ProjectID
	if project == "" {
		project = creds.ProjectID
	}
	if project == "" {
		return nil, fmt.Errorf("ALLSPARK_FCM_PROJECT_ID: not set and not in the credentials")
	}
	return &FCMProvider{http: httpClient, tokens: creds.TokenSource,
		endpoint: strings.TrimSuffix(cfg.URL, "/") + "/v1/projects/" + project + "/messages:send"}, nil
}

type fcmMessage struct {
	Message struct {
		Token        string            `json:"token"`
		Notification map[string]string `json:"notification"`
		Data         map[string]string `json:"data,omitempty"`
		Android      map[string]any    `json:"android,omitempty"`
		APNs         map[string]any    `json:"apns,omitempty"`
	} `json:"message"`
}

// Send implements Provider.
func (p *FCMProvider) Send(ctx context.Context, n Notification) error {
	var m fcmMessage
	m.Message.Token = n.Token
	m.Message.Notification = map[string]string{"title": n.Title, "body": n.Body}
	m.Message.Data = n.Data
	if n.CollapseKey != "" {
		m.Message.Android = map[string]any{"collapse_key": n.CollapseKey}
	}
	body, _ := json.Marshal(m)
	tok, err := p.tokens.Token()
	if err != nil {
		return &RetryError{Reason: "oauth token: " + err.Error()}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.endpoint, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build fcm request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	tok.SetAuthHeader(req)
	resp, err := p.http.Do(req)
	if err != nil {
		return &RetryError{Reason: err.Error()}
	}
	defer resp.Body.Close()
	rb, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	code := fcmErrorCode(rb)
	switch {
	case resp.StatusCode == http.StatusNotFound || code == "UNREGISTERED":
		return fmt.Errorf("%w: fcm %d %s", ErrInvalidToken, resp.StatusCode, code)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return &RetryError{Status: resp.StatusCode, Reason: code, After: retryAfter(resp.Header.Get("Retry-After"))}
	default:
		return fmt.Errorf("fcm rejected: %d %s", resp.StatusCode, code)
	}
}

// fcmErrorCode digs the FCM error code out of an error body.
func fcmErrorCode(b []byte) string {
	var e struct {
		Error struct {
			Status  string `json:"status"`
			Details []struct {
				ErrorCode string `json:"errorCode"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &e) != nil {
		return ""
	}
	for _, d := range e.Error.Details {
		if d.ErrorCode != "" {
			return d.ErrorCode
		}
	}
	return e.Error.Status
}

// retryAfter parses a Retry-After header (seconds or an HTTP date).
func retryAfter(h string) time.Duration {
	if h == "" {
		return 0
	}
	if s, err := strconv.Atoi(h); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil {
		return time.Until(t)
	}
	return 0
}
