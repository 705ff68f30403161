package edge_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

type connectInfo struct {
	NodeID          string    `json:"node_id"`
	ClientID        string    `json:"client_id"`
	ValidationToken string    `json:"validation_token"`
	ExpiresAt       time.Time `json:"expires_at"`
	Edge            struct {
		ID       string `json:"id"`
		WSURL    string `json:"ws_url"`
		ProxyURL string `json:"proxy_url"`
	} `json:"edge"`
}

func getConnect(t *testing.T, base, path, authKey string) connectInfo {
	t.Helper()
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+authKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %d", path, resp.StatusCode)
	}
	var ci connectInfo
	if err := json.NewDecoder(resp.Body).Decode(&ci); err != nil {
		t.Fatal(err)
	}
	return ci
}

// Acceptance 3: /v1/connect offers the least-loaded live edge and a
// validation token that opens /v1/ws alone; a stopped edge is not offered.
func TestConnectOffersLeastLoadedEdge(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	b := c.edge("edge-b", func(cfg *edge.Config) { cfg.ProxyURL = "wss://rt.example.com/edge-b/v1/ws" })
	// Load edge B with two connections; A has none.
	c.dial(b, "n1", "n1")
	c.dial(b, "n2", "n2")

	offered := func(want string) connectInfo {
		t.Helper()
		var ci connectInfo
		testutil.Eventually(t, 5*time.Second, func() error {
			ci = getConnect(t, b.http.URL, "/v1/connect", c.authKey("alice", "acme"))
			if ci.Edge.ID != want {
				return fmt.Errorf("offered %s, want %s", ci.Edge.ID, want)
			}
			return nil
		})
		return ci
	}
	ci := offered("edge-a")
	if ci.NodeID != "alice" || ci.ClientID != "acme" || ci.ValidationToken == "" || ci.Edge.WSURL != "ws://"+a.http.Listener.Addr().String()+"/v1/ws" {
		t.Fatalf("connect info %+v", ci)
	}
	if d := time.Until(ci.ExpiresAt); d <= 0 || d > time.Minute+time.Second {
		t.Fatalf("expires_at %v is not about a minute away", ci.ExpiresAt)
	}

	// The validation token alone opens the websocket on the offered edge.
	alice := wstest.Dial(t, ci.Edge.WSURL+"?validation_token="+url.QueryEscape(ci.ValidationToken))
	if f := alice.Next(t, wait); f.Type != "sync_done" {
		t.Fatalf("got %s, want sync_done", f.Raw)
	}
	alice.Send(t, map[string]any{})
	if f := alice.Next(t, wait); f.Type != "pong" {
		t.Fatalf("got %s", f.Raw)
	}

	// Load A past B: now B is offered, with its proxy URL.
	c.dial(a, "n3", "n3")
	c.dial(a, "n4", "n4")
	ci = offered("edge-b")
	if ci.Edge.ProxyURL != "wss://rt.example.com/edge-b/v1/ws" {
		t.Fatalf("proxy_url %q", ci.Edge.ProxyURL)
	}

	// A killed edge (no goodbye) drops out once its heartbeat goes stale.
	b.kill()
	start := time.Now()
	testutil.Eventually(t, 10*time.Second, func() error {
		ci = getConnect(t, a.http.URL, "/v1/connect", c.authKey("alice", "acme"))
		if ci.Edge.ID != "edge-a" {
			return fmt.Errorf("still offered %s", ci.Edge.ID)
		}
		return nil
	})
	t.Logf("killed edge dropped out after %s", time.Since(start).Round(10*time.Millisecond))
}

// A drained edge is withdrawn at once.
func TestShutdownWithdrawsEdge(t *testing.T) {
	c := newCluster(t)
	// Heartbeats long enough that an entry goes stale only after 3×3 s: a
	// withdrawal seen within 4 s is the drain's delete, not staleness.
	slow := func(cfg *edge.Config) { cfg.Heartbeat = 3 * time.Second }
	a, b := c.edge("edge-a", slow), c.edge("edge-b", slow)
	c.dial(a, "n1", "n1")
	testutil.Eventually(t, 15*time.Second, func() error {
		if ci := getConnect(t, a.http.URL, "/v1/connect", c.authKey("x", "x")); ci.Edge.ID != "edge-b" {
			return fmt.Errorf("offered %s", ci.Edge.ID)
		}
		return nil
	})
	if err := b.srv.Shutdown(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Withdrawn at once; other edges see it as soon as their watch delivers
	// the deletion, well before a heartbeat would go stale.
	testutil.Eventually(t, 4*time.Second, func() error {
		if ci := getConnect(t, a.http.URL, "/v1/connect", c.authKey("x", "x")); ci.Edge.ID != "edge-a" {
			return fmt.Errorf("drained edge still offered: %s", ci.Edge.ID)
		}
		return nil
	})
}

// The AllSparkRT form of pre-connection info is served too.
func TestSeedConnectAlias(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	ci := getConnect(t, a.http.URL, "/?get_pre_connection_info=true", c.authKey("alice", "acme"))
	if ci.NodeID != "alice" || ci.Edge.ID != "edge-a" {
		t.Fatalf("%+v", ci)
	}
}

func TestHealthAndReady(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(a.http.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
	}
	// NATS gone: not ready, still healthy.
	a.nc.Close()
	resp, err := http.Get(a.http.URL + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("readyz with NATS closed: %d", resp.StatusCode)
	}
}
