package edge_test

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/push"
	"github.com/nats-io/nats.go/jetstream"
)

// The AllSparkRT names change state, so they answer POST only: a GET
// (a link, a prefetch) creates, joins or leaves nothing and is answered
// 405 with Allow: POST.
func TestSessionAliasesRefuseGET(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-a"}, 201)
	q := "?session_id=" + url.QueryEscape("room-get")
	for _, path := range []string{"/create_session", "/v1/create_session"} {
		status, raw := c.call(a, "GET", path+q, "alice", "alice", nil)
		if status != 405 || !strings.Contains(raw, `"code":"method_not_allowed"`) || !strings.Contains(raw, "use POST") {
			t.Fatalf("GET %s: %d %s, want 405 method_not_allowed naming POST", path, status, raw)
		}
	}
	if status, raw := c.call(a, "GET", "/v1/sessions/room-get", "alice", "alice", nil); status != 404 {
		t.Fatalf("after GET /create_session the session exists: %d %s", status, raw)
	}
	for _, path := range []string{"/join_session", "/v1/join_session", "/unjoin_session", "/v1/unjoin_session"} {
		if status, raw := c.call(a, "GET", path+"?session_id=room-a", "alice", "alice", nil); status != 405 {
			t.Fatalf("GET %s: %d %s, want 405", path, status, raw)
		}
	}
	if status, raw := c.call(a, "GET", "/v1/sessions/room-a", "alice", "alice", nil); status != 403 {
		t.Fatalf("after GET /join_session alice is a member: %d %s", status, raw)
	}
	// POST still works under both names.
	c.mustCall(a, "POST", "/create_session?session_id=room-b", "alice", "alice", nil, 201)
	c.mustCall(a, "POST", "/v1/join_session?session_id=room-a", "alice", "alice", nil, 200)
	c.mustCall(a, "POST", "/unjoin_session", "alice", "alice", map[string]any{"session_id": "room-a"}, 200)
}

// A device token registered by one client cannot be registered by another
// (409 conflict, the first registration untouched) until the first
// removes it; the same client may move it to another of its nodes.
func TestPushTokenOfAnotherClientIsRefused(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	tok := map[string]any{"platform": "fcm", "token": "fcm-victim-device"}
	c.mustCall(a, "POST", "/v1/push-tokens", "victim-phone", "victim", tok, 200)

	status, raw := c.call(a, "POST", "/v1/push-tokens", "mallory-phone", "mallory", tok)
	if status != 409 || !strings.Contains(raw, `"code":"conflict"`) {
		t.Fatalf("another client's token: %d %s, want 409 conflict", status, raw)
	}
	tokens := openTokens(t, c)
	if ts, _ := tokens.List(t.Context(), "mallory-phone"); len(ts) != 0 {
		t.Fatalf("mallory holds %v", ts)
	}
	if ts, _ := tokens.List(t.Context(), "victim-phone"); len(ts) != 1 || ts[0].Token != "fcm-victim-device" {
		t.Fatalf("victim holds %v", ts)
	}

	// The same client moves it to another of its nodes.
	c.mustCall(a, "POST", "/v1/push-tokens", "victim-tablet", "victim", tok, 200)
	if ts, _ := tokens.List(t.Context(), "victim-phone"); len(ts) != 0 {
		t.Fatalf("after the move the phone still holds %v", ts)
	}
	if ts, _ := tokens.List(t.Context(), "victim-tablet"); len(ts) != 1 {
		t.Fatalf("after the move the tablet holds %v", ts)
	}
	// Removed by its client, the token is free for another.
	c.mustCall(a, "DELETE", "/v1/push-tokens/fcm-victim-device", "victim-tablet", "victim", nil, 200)
	c.mustCall(a, "POST", "/v1/push-tokens", "mallory-phone", "mallory", tok, 200)
	// A node that does not hold it cannot free it.
	c.mustCall(a, "DELETE", "/v1/push-tokens/fcm-victim-device", "victim-tablet", "victim", nil, 200)
	if status, _ := c.call(a, "POST", "/v1/push-tokens", "victim-phone", "victim", tok); status != 409 {
		t.Fatalf("a DELETE by a node without the token freed it: %d", status)
	}
}

func openTokens(t *testing.T, c *cluster) *push.Tokens {
	t.Helper()
	nc := testutil.Connect(t, c.url)
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	tokens, err := push.OpenTokens(t.Context(), js, subj, 1, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}
