package edge_test

import (
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/internal/wstest"
)

// presenceOf matches a presence frame for member in sid.
func presenceOf(sid, member string, online bool) func(wstest.Frame) bool {
	return func(f wstest.Frame) bool {
		return f.Type == "presence" && strings.Contains(f.Raw, `"member_id":"`+member+`"`) &&
			strings.Contains(f.Raw, fmt.Sprintf(`"online":%v`, online)) && strings.Contains(f.Raw, `"session_id":"`+sid+`"`)
	}
}

func countFrames(frames []wstest.Frame, pred func(wstest.Frame) bool) int {
	n := 0
	for _, f := range frames {
		if pred(f) {
			n++
		}
	}
	return n
}

// A node named in one session and anonymous in another: its connect and
// disconnect are announced in the first only, so nobody in both can pair
// the alias with the name by timing; GET lists the alias without
// "online". The barrier for "no presence for the alias" is the named
// presence of the same connect, published by the same announcement after
// the alias's would have been.
func TestAnonymousMemberHasNoPresence(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	c.mustCall(a, "POST", "/v1/sessions", "watcher", "watcher", map[string]any{"session_id": "named", "allow_anonymous": true}, 201)
	c.mustCall(a, "POST", "/v1/sessions", "watcher", "watcher", map[string]any{"session_id": "masked", "allow_anonymous": true}, 201)
	c.mustCall(a, "POST", "/v1/sessions/named/join", "alice", "alice", nil, 200)
	alias := c.mustCall(a, "POST", "/v1/sessions/masked/join", "alice", "alice", map[string]any{"anonymous": true}, 200)["member_id"].(string)
	rec := record(t, c.dial(a, "watcher", "watcher"))

	alice := c.dial(a, "alice", "alice")
	rec.waitFor(t, "alice online in the named session", presenceOf("named", "alice", true))
	view := c.mustCall(a, "GET", "/v1/sessions/masked", "watcher", "watcher", nil, 200)
	members := fmt.Sprint(view["members"])
	if !strings.Contains(members, "member_id:"+alias+"]") || !strings.Contains(members, "member_id:watcher online:true") {
		t.Fatalf("GET lists %s; want the alias without online, the named member with it", members)
	}
	alice.Close()
	rec.waitFor(t, "alice offline in the named session", presenceOf("named", "alice", false))
	// An anonymous join while connected is not announced either; the
	// barrier is a named join announced the same way.
	alice = c.dial(a, "alice", "alice")
	rec.waitFor(t, "alice online again", presenceOf("named", "alice", true))
	c.mustCall(a, "POST", "/v1/sessions/masked/unjoin", "alice", "alice", nil, 200)
	alias2 := c.mustCall(a, "POST", "/v1/sessions/masked/join", "alice", "alice", map[string]any{"anonymous": true}, 200)["member_id"].(string)
	c.dial(a, "bob", "bob")
	c.mustCall(a, "POST", "/v1/sessions/masked/join", "bob", "bob", nil, 200)
	rec.waitFor(t, "bob's join announced (barrier)", presenceOf("masked", "bob", true))
	for _, f := range rec.snapshot() {
		if f.Type == "presence" && (strings.Contains(f.Raw, alias) || strings.Contains(f.Raw, alias2) || strings.Contains(f.Raw, `"session_id":"masked","member_id":"alice"`)) {
			t.Fatalf("presence for an anonymous member: %s", f.Raw)
		}
	}
	_ = alice
}

// A plain GET /v1/ws (no Upgrade headers) with a valid key is refused 426
// before any work: no device is recorded (a message to its client is
// rejected offline, not stored) and no presence goes out. Edge a, which
// took the GET, is closed before the barrier, and Close waits for the work
// its requests started, so a presence frame it published would be ahead of
// the barrier (the real connect, announced from edge b).
func TestPlainGetOnWSDoesNothing(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	c.mustCall(b, "POST", "/v1/sessions", "watcher", "watcher", map[string]any{"session_id": "room-g"}, 201)
	c.mustCall(b, "POST", "/v1/sessions/room-g/join", "m1", "m1-client", nil, 200)
	watcher := c.dial(b, "watcher", "watcher")
	rec := record(t, watcher)

	status, hdr, body := httpDo(t, "GET", a.http.URL+"/v1/ws?auth_key="+url.QueryEscape(c.authKey("m1", "m1-client")), nil)
	if status != 426 || body.Error.Code != "bad_request" || !strings.Contains(body.Error.Message, "websocket upgrade required") ||
		hdr.Get("Upgrade") != "websocket" {
		t.Fatalf("plain GET /v1/ws: %d %v %v, want 426 bad_request with Upgrade: websocket", status, hdr, body)
	}
	// With only the Upgrade header and no key, it is still refused 426.
	status, _, body = httpDo(t, "GET", a.http.URL+"/v1/ws?auth_key="+url.QueryEscape(c.authKey("m1", "m1-client")),
		map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13"})
	if status != 426 || !strings.Contains(body.Error.Message, "Sec-WebSocket-Key") {
		t.Fatalf("GET without Sec-WebSocket-Key: %d %v", status, body)
	}
	a.kill()

	watcher.Send(t, map[string]any{"id": "d", "dest_client_id": "m1-client", "payload": "hi"})
	sent := rec.waitFor(t, "the answer to a message for m1's client", func(f wstest.Frame) bool { return f.Type == "sent" && f.ID == "d" })
	if sent.Status != "rejected" || sent.Error == nil || sent.Error.Code != "offline" {
		t.Fatalf("message to the client of the plain GET: %s, want rejected offline (no device recorded)", sent.Raw)
	}
	c.dial(b, "m1", "m1-client")
	rec.waitFor(t, "m1 online (barrier)", presenceOf("room-g", "m1", true))
	if n := countFrames(rec.snapshot(), presenceOf("room-g", "m1", false)); n != 0 {
		t.Fatalf("the plain GET announced m1 offline %d times", n)
	}
}

// Unjoining a session one is not in changes nothing and announces nothing;
// joining twice announces once (see also TestRepeatedJoinSendsNoPresence).
func TestNoOpUnjoinSendsNoPresence(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-u"}, 201)
	rec := record(t, c.dial(a, "owner", "owner"))
	c.dial(a, "m1", "m1")
	for range 3 {
		c.mustCall(a, "POST", "/v1/sessions/room-u/unjoin", "m1", "m1", nil, 200)
	}
	c.dial(a, "m2", "m2")
	c.mustCall(a, "POST", "/v1/sessions/room-u/join", "m2", "m2", nil, 200)
	rec.waitFor(t, "m2 online (barrier)", presenceOf("room-u", "m2", true))
	for _, f := range rec.snapshot() {
		if f.Type == "presence" && strings.Contains(f.Raw, `"member_id":"m1"`) {
			t.Fatalf("a no-op unjoin announced %s", f.Raw)
		}
	}
}
