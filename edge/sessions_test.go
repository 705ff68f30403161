package edge_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// call makes an authenticated JSON HTTP call as node and returns the status
// and raw body.
func (c *cluster) call(e *testEdge, method, path, node, client string, body any) (int, string) {
	c.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, e.http.URL+path, r)
	req.Header.Set("Authorization", "Bearer "+c.authKey(node, client))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}

// mustCallB is mustCall for benchmarks, as node with client id node.
func (c *cluster) mustCallB(_ *testing.B, e *testEdge, method, path, node string, body any, wantStatus int) map[string]any {
	return c.mustCall(e, method, path, node, node, body, wantStatus)
}

func (c *cluster) mustCall(e *testEdge, method, path, node, client string, body any, wantStatus int) map[string]any {
	c.t.Helper()
	status, raw := c.call(e, method, path, node, client, body)
	if status != wantStatus {
		c.t.Fatalf("%s %s as %s: %d %s, want %d", method, path, node, status, raw, wantStatus)
	}
	var out map[string]any
	_ = json.Unmarshal([]byte(raw), &out)
	return out
}

// recorder keeps every frame a client receives.
type recorder struct {
	mu     sync.Mutex
	frames []wstest.Frame // guarded by mu
}

func record(t *testing.T, cl *wstest.Client) *recorder {
	r := &recorder{}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case f := <-cl.Frames():
				r.mu.Lock()
				r.frames = append(r.frames, f)
				r.mu.Unlock()
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() { close(stop); <-done })
	return r
}

func (r *recorder) snapshot() []wstest.Frame {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]wstest.Frame(nil), r.frames...)
}

func (r *recorder) waitFor(t *testing.T, what string, pred func(wstest.Frame) bool) wstest.Frame {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		for _, f := range r.snapshot() {
			if pred(f) {
				return f
			}
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("no %s within %s", what, wait)
	return wstest.Frame{}
}

func sessionMsgs(frames []wstest.Frame, sid string) []wstest.Frame {
	var out []wstest.Frame
	for _, f := range frames {
		if f.IsMessage() && f.DestSessionID == sid {
			out = append(out, f)
		}
	}
	return out
}

// Acceptance 1: create, join x3 (one anonymous, on the other edge), send:
// every other member receives each message exactly once with its seq, and
// the anonymous member is only ever its alias.
func TestSessionFanOutAndAnonymity(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-1", "allow_anonymous": true}, 201)
	c.mustCall(a, "POST", "/v1/sessions/room-1/join", "m1", "m1", nil, 200)
	c.mustCall(b, "POST", "/v1/sessions/room-1/join", "m2", "m2", nil, 200)
	anon := c.mustCall(b, "POST", "/v1/sessions/room-1/join", "secret-node-7", "secret-client-7", map[string]any{"anonymous": true}, 200)
	alias, _ := anon["member_id"].(string)
	if !strings.HasPrefix(alias, "anon-") {
		t.Fatalf("anonymous member id %q", alias)
	}

	owner, m1 := c.dial(a, "owner", "owner"), c.dial(a, "m1", "m1")
	m2, ghost := c.dial(b, "m2", "m2"), c.dial(b, "secret-node-7", "secret-client-7")
	clients := map[string]*wstest.Client{"owner": owner, "m1": m1, "m2": m2, alias: ghost}
	recs := map[string]*recorder{}
	for id, cl := range clients {
		recs[id] = record(t, cl)
	}

	senders := []string{"owner", "m2", alias}
	for i, from := range senders {
		clients[from].Send(t, map[string]any{"id": fmt.Sprint(i), "dest_session_id": "room-1", "payload": from})
	}
	seqs := map[string]uint64{}
	for _, from := range senders {
		sent := recs[from].waitFor(t, "sent", func(f wstest.Frame) bool { return f.Type == "sent" })
		if sent.Status != "stored" || sent.Seq == 0 {
			t.Fatalf("%s got %s", from, sent.Raw)
		}
		seqs[sent.MsgID] = sent.Seq
	}
	for id, r := range recs {
		r.waitFor(t, "all messages", func(wstest.Frame) bool {
			n := len(sessionMsgs(r.snapshot(), "room-1"))
			if id == "owner" || id == "m2" || id == alias {
				return n == len(senders)-1
			}
			return n == len(senders)
		})
	}
	// A duplicate would travel the same ordered live subject as the
	// original, so it arrives before a barrier sent after it: wait for one
	// barrier on every member (m1's reaches all but m1, the owner's reaches
	// m1), then count everything else.
	m1.Send(t, map[string]any{"id": "barrier", "dest_session_id": "room-1", "payload": "barrier"})
	owner.Send(t, map[string]any{"id": "barrier", "dest_session_id": "room-1", "payload": "barrier"})
	isBarrier := func(f wstest.Frame) bool { return string(f.Payload) == `"barrier"` }
	for id, r := range recs {
		r.waitFor(t, "barrier for "+id, func(f wstest.Frame) bool { return f.IsMessage() && isBarrier(f) })
	}
	for id, r := range recs {
		got := map[string]int{}
		for _, f := range sessionMsgs(r.snapshot(), "room-1") {
			if isBarrier(f) {
				continue
			}
			got[f.MsgID]++
			if f.Seq == 0 || f.Seq != seqs[f.MsgID] {
				t.Errorf("%s got seq %d for %s, sender was told %d", id, f.Seq, f.MsgID, seqs[f.MsgID])
			}
			if string(f.Payload) != `"`+f.SrcID+`"` {
				t.Errorf("%s: src_id %q on a message sent by %s", id, f.SrcID, f.Payload)
			}
			if f.SrcID == id {
				t.Errorf("%s received its own message", id)
			}
			if f.SrcID == alias && f.SrcClientID != "" {
				t.Errorf("anonymous message carries src_client_id %q", f.SrcClientID)
			}
		}
		for msgID, n := range got {
			if n != 1 {
				t.Errorf("%s got %s %d times", id, msgID, n)
			}
		}
		if id == alias {
			continue
		}
		for _, f := range r.snapshot() {
			if strings.Contains(f.Raw, "secret-node-7") || strings.Contains(f.Raw, "secret-client-7") {
				t.Errorf("%s saw the anonymous member's identity: %s", id, f.Raw)
			}
		}
	}
	_, view := c.call(a, "GET", "/v1/sessions/room-1", "m1", "m1", nil)
	if strings.Contains(view, "secret-") || !strings.Contains(view, alias) {
		t.Fatalf("session view %s", view)
	}

	// An anonymous member can be messaged by alias within the session.
	m1.Send(t, map[string]any{"id": "w", "dest_session_id": "room-1", "member_id": alias, "payload": "psst"})
	if f := recs[alias].waitFor(t, "whisper", func(f wstest.Frame) bool { return f.IsMessage() && string(f.Payload) == `"psst"` }); f.SrcID != "m1" || f.MemberID != alias {
		t.Fatalf("whisper arrived as %s", f.Raw)
	}
	// To an anonymous member always "stored" (through its inbox), whatever
	// its node's state: see TestWhisperAnswerRevealsNothing.
	if s := recs["m1"].waitFor(t, "whisper sent", func(f wstest.Frame) bool { return f.Type == "sent" && f.ID == "w" }); s.Status != "stored" {
		t.Fatalf("whisper answer %s", s.Raw)
	}
	for _, id := range []string{"owner", "m2"} {
		for _, f := range recs[id].snapshot() {
			if string(f.Payload) == `"psst"` {
				t.Fatalf("%s saw a whisper to someone else", id)
			}
		}
	}
}

// Acceptance 2: unjoin stops delivery; non-members are rejected; unknown
// sessions are 404.
func TestSessionMembershipRules(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-2"}, 201)
	c.mustCall(b, "POST", "/v1/sessions/room-2/join", "m1", "m1", nil, 200)
	owner := c.dial(a, "owner", "owner")
	m1 := c.dial(b, "m1", "m1")
	stranger := c.dial(a, "stranger", "stranger")

	owner.Send(t, map[string]any{"dest_session_id": "room-2", "payload": "before"})
	if f := m1.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"before"` {
		t.Fatalf("m1 got %s", f.Raw)
	}
	c.mustCall(a, "POST", "/v1/sessions/room-2/unjoin", "m1", "m1", nil, 200) // on another edge than m1's
	for i := range 5 {
		owner.Send(t, map[string]any{"dest_session_id": "room-2", "payload": i})
	}
	for range 5 {
		owner.Until(t, wait, isSent)
	}
	m1.Quiet(t, 200*time.Millisecond)
	m1.Send(t, map[string]any{"id": "x", "dest_session_id": "room-2", "payload": "let me in"})
	if s := m1.Until(t, wait, isSent); s.Status != "rejected" || s.Error == nil || s.Error.Code != "not_member" {
		t.Fatalf("former member got %s", s.Raw)
	}

	stranger.Send(t, map[string]any{"id": "s", "dest_session_id": "room-2", "payload": "hi"})
	if s := stranger.Until(t, wait, isSent); s.Status != "rejected" || s.Error == nil || s.Error.Code != "not_member" {
		t.Fatalf("stranger got %s", s.Raw)
	}
	stranger.Send(t, map[string]any{"type": "sync", "id": "y", "session_id": "room-2"})
	if f := stranger.Next(t, wait); f.Type != "error" || f.Code != "not_member" {
		t.Fatalf("stranger sync got %s", f.Raw)
	}

	cases := []struct {
		method, path, node string
		body               any
		status             int
		code               string
	}{
		{"GET", "/v1/sessions/nope", "owner", nil, 404, "not_found"},
		{"POST", "/v1/sessions/nope/join", "owner", nil, 404, "not_found"},
		{"POST", "/v1/sessions/nope/unjoin", "owner", nil, 404, "not_found"},
		{"GET", "/v1/sessions/room-2", "stranger", nil, 403, "not_member"},
		{"POST", "/v1/sessions", "owner", map[string]any{"session_id": "room-2"}, 409, "conflict"},
		{"POST", "/v1/sessions/room-2/join", "x", map[string]any{"anonymous": true}, 403, "forbidden"},
		{"POST", "/v1/sessions", "owner", map[string]any{"session_id": strings.Repeat("x", 200)}, 400, "bad_id"},
		{"POST", "/v1/sessions", "owner", "not an object", 400, "bad_request"},
	}
	for _, tc := range cases {
		status, body := c.call(a, tc.method, tc.path, tc.node, tc.node, tc.body)
		if status != tc.status || !strings.Contains(body, `"code":"`+tc.code+`"`) {
			t.Errorf("%s %s as %s: %d %s, want %d %s", tc.method, tc.path, tc.node, status, body, tc.status, tc.code)
		}
	}
	stranger.Send(t, map[string]any{"id": "u", "dest_session_id": "no-such-room", "payload": 1})
	if s := stranger.Until(t, wait, isSent); s.Status != "rejected" || s.Error == nil || s.Error.Code != "not_found" {
		t.Fatalf("unknown session send got %s", s.Raw)
	}
	// AllSparkRT names work too.
	c.mustCall(a, "POST", "/create_session?session_id=seed-room", "owner", "owner", nil, 201)
	c.mustCall(a, "POST", "/join_session?session_id=seed-room", "m1", "m1", nil, 200)
	c.mustCall(a, "POST", "/unjoin_session?session_id=seed-room", "m1", "m1", nil, 200)
}

// Acceptance 3: a member offline during 50 messages syncs exactly those 50.
func TestSessionSyncAfterOffline(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-3"}, 201)
	c.mustCall(a, "POST", "/v1/sessions/room-3/join", "m1", "m1", nil, 200)
	owner := c.dial(a, "owner", "owner")
	m1 := c.dial(b, "m1", "m1")
	owner.Send(t, map[string]any{"dest_session_id": "room-3", "payload": "seen"})
	last := m1.Until(t, wait, wstest.Frame.IsMessage).Seq
	m1.Send(t, map[string]any{"type": "ack", "session_id": "room-3", "seq": last})
	m1.Close()

	for i := range 50 {
		owner.Send(t, map[string]any{"dest_session_id": "room-3", "payload": i})
	}
	for range 50 {
		owner.Until(t, wait, isSent)
	}
	m1 = c.dial(a, "m1", "m1")
	testutil.Eventually(t, wait, func() error {
		view := c.mustCall(a, "GET", "/v1/sessions/room-3", "m1", "m1", nil, 200)
		if got := uint64(view["acked_seq"].(float64)); got != last {
			return fmt.Errorf("acked_seq %d, want %d", got, last)
		}
		return nil
	})
	m1.Send(t, map[string]any{"type": "sync", "session_id": "room-3", "after_seq": last, "limit": 1000})
	prev := last
	for i := range 50 {
		f := m1.Next(t, wait)
		if !f.IsMessage() || string(f.Payload) != fmt.Sprint(i) || f.Seq <= prev {
			t.Fatalf("sync #%d: %s (previous seq %d)", i, f.Raw, prev)
		}
		prev = f.Seq
	}
	done := m1.Next(t, wait)
	if done.Type != "sync_done" || !strings.Contains(done.Raw, `"session_id":"room-3"`) || !strings.Contains(done.Raw, fmt.Sprintf(`"last_seq":%d`, prev)) {
		t.Fatalf("got %s", done.Raw)
	}
	// A limit pages through history.
	m1.Send(t, map[string]any{"type": "sync", "session_id": "room-3", "after_seq": last, "limit": 10})
	for range 10 {
		if f := m1.Next(t, wait); !f.IsMessage() {
			t.Fatalf("got %s", f.Raw)
		}
	}
	if f := m1.Next(t, wait); f.Type != "sync_done" {
		t.Fatalf("got %s", f.Raw)
	}
}

// Acceptance 4: presence frames on join, connect and disconnect, across edges.
func TestSessionPresenceAcrossEdges(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	c.mustCall(a, "POST", "/v1/sessions", "owner", "owner", map[string]any{"session_id": "room-4", "allow_anonymous": true}, 201)
	c.mustCall(a, "POST", "/v1/sessions/room-4/join", "m1", "m1", nil, 200)
	owner := c.dial(a, "owner", "owner")
	rec := record(t, owner)
	presence := func(member string, online bool) func(wstest.Frame) bool {
		return func(f wstest.Frame) bool {
			return f.Type == "presence" && strings.Contains(f.Raw, `"member_id":"`+member+`"`) &&
				strings.Contains(f.Raw, fmt.Sprintf(`"online":%v`, online)) && strings.Contains(f.Raw, `"session_id":"room-4"`)
		}
	}

	m1 := c.dial(b, "m1", "m1") // connect
	rec.waitFor(t, "m1 online", presence("m1", true))
	view := c.mustCall(a, "GET", "/v1/sessions/room-4", "owner", "owner", nil, 200)
	if !strings.Contains(fmt.Sprint(view["members"]), "member_id:m1 online:true") {
		t.Fatalf("view %v", view)
	}
	m1.Close() // disconnect
	rec.waitFor(t, "m1 offline", presence("m1", false))

	ghost := c.dial(b, "secret-node", "secret-client") // join while connected, anonymously
	joined := c.mustCall(b, "POST", "/v1/sessions/room-4/join", "secret-node", "secret-client", map[string]any{"anonymous": true}, 200)
	alias := joined["member_id"].(string)
	// An anonymous member has no presence (TestAnonymousMemberHasNoPresence).
	// Membership took effect on its edge: it now receives session messages.
	owner.Send(t, map[string]any{"dest_session_id": "room-4", "payload": "welcome"})
	if f := ghost.Until(t, wait, wstest.Frame.IsMessage); string(f.Payload) != `"welcome"` {
		t.Fatalf("got %s", f.Raw)
	}
	for _, f := range rec.snapshot() {
		if strings.Contains(f.Raw, "secret-") || strings.Contains(f.Raw, alias) {
			t.Fatalf("presence leaked identity: %s", f.Raw)
		}
	}
}
