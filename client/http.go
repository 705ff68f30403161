package client

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/allspark-rt/allspark"
)

// ConnectInfo is the answer of GET /v1/connect.
type ConnectInfo struct {
	NodeID          string    `json:"node_id"`
	ClientID        string    `json:"client_id"`
	ValidationToken string    `json:"validation_token"`
	ExpiresAt       time.Time `json:"expires_at"`
	Edge            struct {
		ID       string `json:"id"`
		WSURL    string `json:"ws_url"`
		ProxyURL string `json:"proxy_url,omitempty"`
	} `json:"edge"`
}

// HTTPError is an error answer of an HTTP endpoint. It unwraps to the
// *allspark.Error of its body, so errors.As finds the code.
type HTTPError struct {
	Status int
	Err    *allspark.Error
}

func (e *HTTPError) Error() string { return fmt.Sprintf("HTTP %d: %v", e.Status, e.Err) }

func (e *HTTPError) Unwrap() error { return e.Err }

// readHTTPError turns a non-2xx answer into an *HTTPError.
func readHTTPError(resp *http.Response) error {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	var eb struct {
		Error *allspark.Error `json:"error"`
	}
	if json.Unmarshal(body, &eb) != nil || eb.Error == nil {
		eb.Error = allspark.Errorf(allspark.CodeInternal, allspark.Truncate(string(body), 200))
	}
	return &HTTPError{Status: resp.StatusCode, Err: eb.Error}
}

// call does one authenticated JSON call on base; out may be nil.
func (c *Client) call(ctx context.Context, base, key, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, base+path, body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		herr := readHTTPError(resp)
		if resp.StatusCode == http.StatusUnauthorized {
			return fmt.Errorf("%s %s: %w: %w", method, path, errUnauthorized, herr)
		}
		return fmt.Errorf("%s %s: %w", method, path, herr)
	}
	if out == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		return nil
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// api calls the base URL that last answered, with the current key.
func (c *Client) api(ctx context.Context, method, path string, in, out any) error {
	c.mu.Lock()
	base, key := c.base, c.key
	c.mu.Unlock()
	return c.call(ctx, base, key, method, path, in, out)
}

func (c *Client) connectInfo(ctx context.Context, base, key string) (ConnectInfo, error) {
	var info ConnectInfo
	if err := c.call(ctx, base, key, http.MethodGet, "/v1/connect", nil, &info); err != nil {
		return info, err
	}
	return info, nil
}

// AddPushToken registers this node's device token with the edge
// (POST /v1/push-tokens); platform is "apns" or "fcm".
func (c *Client) AddPushToken(ctx context.Context, platform, token string) error {
	return c.api(ctx, http.MethodPost, "/v1/push-tokens", map[string]string{"platform": platform, "token": token}, nil)
}

// RemovePushToken forgets a device token (DELETE /v1/push-tokens/{token}).
func (c *Client) RemovePushToken(ctx context.Context, token string) error {
	return c.api(ctx, http.MethodDelete, "/v1/push-tokens/"+url.PathEscape(token), nil, nil)
}
