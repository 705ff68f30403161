package edge_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// A repeated join changes nothing, so the session hears of the member once:
// only the first join of an online member sends a presence frame. The
// barrier is a later real join, announced the same way.
func TestRepeatedJoinSendsNoPresence(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-j"}, 201)
	rec := record(t, c.dial(a, "owner", "owner"))
	online := func(member string) func(wstest.Frame) bool {
		return func(f wstest.Frame) bool {
			return f.Type == "presence" && strings.Contains(f.Raw, `"member_id":"`+member+`"`) &&
				strings.Contains(f.Raw, `"online":true`)
		}
	}
	c.dial(a, "m1", "m1")
	first := c.mustCall(a, "POST", "/v1/sessions/room-j/join", "m1", "m1", nil, 200)
	rec.waitFor(t, "m1 online after its join", online("m1"))
	for range 2 {
		again := c.mustCall(a, "POST", "/v1/sessions/room-j/join", "m1", "m1", nil, 200)
		if fmt.Sprint(again) != fmt.Sprint(first) {
			t.Fatalf("repeated join answered %v, first %v", again, first)
		}
	}
	c.dial(a, "m2", "m2")
	c.mustCall(a, "POST", "/v1/sessions/room-j/join", "m2", "m2", nil, 200)
	rec.waitFor(t, "m2 online (barrier)", online("m2"))
	n := 0
	for _, f := range rec.snapshot() {
		if online("m1")(f) {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("owner saw m1 come online %d times for one join and two repeats", n)
	}
}

// ALLSPARK_NODE_MAX_SESSIONS and ALLSPARK_SESSION_MAX_MEMBERS, when passed,
// answer 409 conflict, and the refused call leaves no membership behind.
func TestSessionLimitsFromConfig(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.NodeMaxSessions = 1; cfg.SessionMaxMembers = 2 })
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "one"}, 201)
	if status, body := c.call(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "two"}); status != 409 || !strings.Contains(body, "conflict") {
		t.Fatalf("create past NODE_MAX_SESSIONS: %d %s", status, body)
	}
	c.mustCall(a, "POST", "/v1/sessions", "other", "other", map[string]any{"session_id": "two"}, 201)
	if status, body := c.call(a, "POST", "/v1/sessions/two/join", "owner", "owner", nil); status != 409 || !strings.Contains(body, `"node is a member of the maximum number of sessions"`) {
		t.Fatalf("join past NODE_MAX_SESSIONS: %d %s", status, body)
	}
	c.mustCall(a, "POST", "/v1/sessions/one/join", "m1", "m1", nil, 200)
	if status, body := c.call(a, "POST", "/v1/sessions/one/join", "m2", "m2", nil); status != 409 || !strings.Contains(body, "conflict") {
		t.Fatalf("join past SESSION_MAX_MEMBERS: %d %s", status, body)
	}
	// m2's refused join held no slot: it can join elsewhere at its cap of 1.
	c.mustCall(a, "POST", "/v1/sessions/two/join", "m2", "m2", nil, 200)
}

func TestSessionLimitsValidated(t *testing.T) {
	for _, mod := range []func(*edge.Config){
		func(c *edge.Config) { c.NodeMaxSessions = -1 },
		func(c *edge.Config) { c.SessionMaxMembers = 1_000_001 },
		func(c *edge.Config) { c.SessionPageMax = -1 },
		func(c *edge.Config) { c.SessionPageDefault = 1001 }, // past the default SESSION_PAGE_MAX
		func(c *edge.Config) { c.SessionPageMax, c.SessionPageDefault = 10, 11 },
	} {
		cfg := testConfig("e", "http://127.0.0.1:1")
		mod(&cfg)
		err := cfg.Validate()
		if err == nil || !(strings.Contains(err.Error(), "ALLSPARK_NODE_MAX_SESSIONS") || strings.Contains(err.Error(), "ALLSPARK_SESSION_MAX_MEMBERS") ||
			strings.Contains(err.Error(), "ALLSPARK_SESSION_PAGE_")) {
			t.Fatalf("Validate: %v, want the variable named", err)
		}
	}
}
