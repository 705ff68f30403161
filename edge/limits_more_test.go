package edge_test

// Tests that pass the limits of SECURITY.md's "Limits" table that had no
// test of their own: each passes the limit and checks the documented answer.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go/jetstream"
)

// ackIDs is an ack frame with n msg_ids.
func ackIDs(n int) string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("m-%d", i)
	}
	b, _ := json.Marshal(map[string]any{"type": "ack", "msg_ids": ids})
	return string(b)
}

// An ack with more than 1024 msg_ids is answered error bad_frame and the
// connection stays; 1024 are accepted (no error before the next answer).
func TestAckMsgIDsLimit(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a")
	cl := c.dial(e, "alice", "alice")

	// 1024 ids: accepted, so the next frame the client sees answers the
	// barrier (an unknown type, answered by its id).
	cl.SendRaw(t, ackIDs(1024))
	cl.SendRaw(t, `{"type":"launch","id":"barrier-1"}`)
	if f := cl.Next(t, 10*time.Second); f.Type != "error" || f.Code != "unknown_type" || f.ID != "barrier-1" {
		t.Fatalf("after an ack of 1024 ids: %s, want the barrier's unknown_type error", f.Raw)
	}

	// 1025 ids: bad_frame, and the connection still answers.
	cl.SendRaw(t, ackIDs(1025))
	if f := cl.Next(t, 10*time.Second); f.Type != "error" || f.Code != "bad_frame" || !strings.Contains(f.Message, "1024") {
		t.Fatalf("ack of 1025 ids: %s, want error bad_frame naming 1024", f.Raw)
	}
	cl.SendRaw(t, `{"type":"launch","id":"barrier-2"}`)
	if f := cl.Next(t, 10*time.Second); f.Type != "error" || f.Code != "unknown_type" || f.ID != "barrier-2" {
		t.Fatalf("after the refused ack: %s, want the barrier's answer on the same connection", f.Raw)
	}
	if n := e.srv.Connections(); n != 1 {
		t.Fatalf("edge holds %d connections after the refused ack, want 1", n)
	}
}

// postRaw posts body as node and returns the status and the JSON error code.
func postRaw(t *testing.T, c *cluster, e *testEdge, path, node string, body []byte) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.http.URL+path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+c.authKey(node, node))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
		Code string `json:"code"`
	}
	_ = json.Unmarshal(raw, &out)
	if out.Error.Code != "" {
		return resp.StatusCode, out.Error.Code
	}
	return resp.StatusCode, out.Code
}

// paddedJSON is a JSON object of exactly n bytes: fields, then a padding
// field filled to length.
func paddedJSON(t *testing.T, n int, fields string) []byte {
	t.Helper()
	head := `{` + fields + `"pad":"`
	tail := `"}`
	if len(head)+len(tail) > n {
		t.Fatalf("padded JSON of %d bytes: fields too long", n)
	}
	b := []byte(head + strings.Repeat(" ", n-len(head)-len(tail)) + tail)
	if len(b) != n {
		t.Fatalf("padded JSON is %d bytes, want %d", len(b), n)
	}
	return b
}

// A session call body over 4096 bytes and a push-token call body over
// 1280 bytes are answered 413 too_large; at the limit they are read (and
// answered for what they say, not for their size).
func TestHTTPCallBodyLimits(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a")

	if status, code := postRaw(t, c, e, "/v1/sessions", "alice", paddedJSON(t, 4097, `"session_id":"big",`)); status != 413 || code != "too_large" {
		t.Fatalf("session call of 4097 bytes: %d %q, want 413 too_large", status, code)
	}
	// 4096 bytes are read: the padding field is unknown, so the answer is
	// about the content, not the size.
	if status, code := postRaw(t, c, e, "/v1/sessions", "alice", paddedJSON(t, 4096, `"session_id":"big",`)); status == 413 || code == "too_large" {
		t.Fatalf("session call of 4096 bytes: %d %q, want it read", status, code)
	}

	const pushLimit = 1280
	if status, code := postRaw(t, c, e, "/v1/push-tokens", "alice", paddedJSON(t, pushLimit+1, `"platform":"fcm",`)); status != 413 || code != "too_large" {
		t.Fatalf("push token call of %d bytes: %d %q, want 413 too_large", pushLimit+1, status, code)
	}
	if status, code := postRaw(t, c, e, "/v1/push-tokens", "alice", paddedJSON(t, pushLimit, `"platform":"fcm",`)); status == 413 || code == "too_large" {
		t.Fatalf("push token call of %d bytes: %d %q, want it read", pushLimit, status, code)
	}
}

// sendSession sends n messages to session sid from cl and waits for each
// one's sent answer.
func sendSession(t *testing.T, cl *wstest.Client, sid string, n int) {
	t.Helper()
	for i := range n {
		id := fmt.Sprintf("h-%d", i)
		cl.Send(t, map[string]any{"id": id, "dest_session_id": sid, "payload": fmt.Sprintf("msg-%d", i)})
		f := cl.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" && f.ID == id })
		if f.Status == "rejected" {
			t.Fatalf("session message %d: %s", i, f.Raw)
		}
	}
}

// syncAll syncs session sid from the start and returns the payloads.
func syncAll(t *testing.T, cl *wstest.Client, sid string) []string {
	t.Helper()
	cl.Send(t, map[string]any{"type": "sync", "session_id": sid, "after_seq": 0, "limit": 100})
	var got []string
	for {
		f := cl.Next(t, 10*time.Second)
		if f.Type == "sync_done" {
			return got
		}
		if !f.IsMessage() {
			t.Fatalf("sync of %s: %s, want messages then sync_done", sid, f.Raw)
		}
		var p string
		_ = json.Unmarshal(f.Payload, &p)
		got = append(got, p)
	}
}

// ALLSPARK_HISTORY_MAX_PER_SESSION: past it the oldest drop out of history.
func TestHistoryMaxPerSession(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) { cfg.HistoryMaxPerSession = 3 })
	c.mustCall(e, "POST", "/v1/sessions", "alice", "alice", map[string]any{"session_id": "capped"}, 201)
	c.mustCall(e, "POST", "/v1/sessions/capped/join", "bob", "bob", nil, 200)
	alice := c.dial(e, "alice", "alice")
	sendSession(t, alice, "capped", 5)

	bob := c.dial(e, "bob", "bob")
	// bob was offline: his copies wait in his inbox, and the sync is the
	// history alone. Drain the replay first (dial ends at sync_done).
	got := syncAll(t, bob, "capped")
	if want := []string{"msg-2", "msg-3", "msg-4"}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("history after 5 messages with a cap of 3: %v, want %v", got, want)
	}
}

// streamMsgs is how many messages stream name holds.
func streamMsgs(t *testing.T, js jetstream.JetStream, name string) (uint64, error) {
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		return 0, fmt.Errorf("stream %s: %w", name, err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		return 0, fmt.Errorf("stream %s info: %w", name, err)
	}
	return info.State.Msgs, nil
}

// ALLSPARK_INBOX_TTL: a pending message older than it is dropped; the node
// that connects afterwards gets nothing and sync_done says pending 0.
func TestInboxTTLDropsPendingMessage(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) { cfg.InboxTTL = time.Second })
	alice := c.dial(e, "alice", "alice")
	alice.Send(t, map[string]any{"id": "s-1", "dest_id": "bob", "payload": "hello"})
	if f := alice.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" }); f.Status != "stored" {
		t.Fatalf("message to offline bob: %s, want stored", f.Raw)
	}
	js, _ := jetstream.New(testutil.Connect(t, c.url))
	// The message was there, then expires.
	if n, err := streamMsgs(t, js, "allspark_inbox"); err != nil || n != 1 {
		t.Fatalf("inbox holds %d messages (%v) right after the store, want 1", n, err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		n, err := streamMsgs(t, js, "allspark_inbox")
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("inbox still holds %d messages, want them expired", n)
		}
		return nil
	})
	_, frames := c.dialSynced(e, "bob", "bob")
	if len(frames) != 1 || frames[0].Pending != 0 || !strings.Contains(frames[0].Raw, `"pending":0`) {
		t.Fatalf("bob after the TTL: %v, want sync_done with pending 0 alone", frames)
	}
}

// ALLSPARK_HISTORY_TTL: a session message older than it drops out of history.
func TestHistoryTTLDropsOldMessages(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) { cfg.HistoryTTL = time.Second })
	c.mustCall(e, "POST", "/v1/sessions", "alice", "alice", map[string]any{"session_id": "short"}, 201)
	alice := c.dial(e, "alice", "alice")
	sendSession(t, alice, "short", 2)
	js, _ := jetstream.New(testutil.Connect(t, c.url))
	if n, err := streamMsgs(t, js, "allspark_history"); err != nil || n != 2 {
		t.Fatalf("history holds %d messages (%v) right after the sends, want 2", n, err)
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		n, err := streamMsgs(t, js, "allspark_history")
		if err != nil {
			return err
		}
		if n != 0 {
			return fmt.Errorf("history still holds %d messages, want them expired", n)
		}
		return nil
	})
	if got := syncAll(t, alice, "short"); len(got) != 0 {
		t.Fatalf("sync after the history TTL: %v, want nothing", got)
	}
}

// ALLSPARK_WRITE_TIMEOUT: a client that stops reading, with a send queue
// far larger than the socket buffers, is closed when one write blocks past
// the timeout (not 4009: the queue never fills); its unacked messages are
// stored.
func TestWriteTimeoutClosesStuckClient(t *testing.T) {
	c := newCluster(t)
	const queue = 64 << 20
	a := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.SendQueueBytes = queue
		cfg.WriteTimeout = 300 * time.Millisecond
		cfg.PingInterval = time.Hour // no idle close: only the write deadline may fire
	})
	alice := c.dial(a, "alice", "alice")
	slow, gate := wstest.DialGated(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("slow", "slow"))))
	waitConns(t, a, 2)
	gate.Pause()

	// At most half the queue is sent, so the queue cap cannot fire; the
	// loopback socket buffers (a few MiB) fill long before.
	const size = 60_000
	payload := strings.Repeat("x", size)
	sent := 0
	for ; sent < queue/2/size && a.srv.Connections() == 2; sent++ {
		alice.Send(t, map[string]any{"dest_id": "slow", "payload": payload})
	}
	testutil.Eventually(t, 20*time.Second, func() error {
		if n := a.srv.Connections(); n != 1 {
			return fmt.Errorf("edge holds %d connections after %d messages to a client that does not read, want the stuck one closed", n, sent)
		}
		return nil
	})
	if n := a.srv.SlowConsumers(); n != 0 {
		t.Fatalf("%d slow-consumer closes: the queue cap fired, not the write timeout", n)
	}
	gate.Resume()
	if code := slow.WaitClose(t, 30*time.Second); code == 4009 {
		t.Fatalf("stuck client closed 4009, want a plain close (no close frame gets through)")
	}
	// Its messages were never acked: they are answered stored.
	if f := alice.Until(t, 30*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" && f.Status == "stored" }); f.Status != "stored" {
		t.Fatalf("alice: %s, want a stored answer", f.Raw)
	}
}

// streamConfig is the configuration of stream name.
func streamConfig(t *testing.T, js jetstream.JetStream, name string) jetstream.StreamConfig {
	t.Helper()
	st, err := js.Stream(t.Context(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info.Config
}

// ALLSPARK_UNDELIVERED_TTL, ALLSPARK_UNDELIVERED_MAX_BYTES, ALLSPARK_EVENTS_TTL
// and ALLSPARK_EVENTS_MAX_BYTES are the limits of their streams (oldest
// dropped first), and an event older than its TTL is dropped.
func TestEventStreamLimitsFromConfig(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) {
		cfg.Events, cfg.UndeliveredEvents = true, true
		cfg.UndeliveredTTL, cfg.UndeliveredMaxBytes = time.Second, 5<<20
		cfg.EventsTTL, cfg.EventsMaxBytes = time.Second, 6<<20
	})
	js, _ := jetstream.New(testutil.Connect(t, c.url))
	for name, want := range map[string]struct {
		age   time.Duration
		bytes int64
	}{"allspark_undelivered": {time.Second, 5 << 20}, "allspark_events": {time.Second, 6 << 20}} {
		cfg := streamConfig(t, js, name)
		if cfg.MaxAge != want.age || cfg.MaxBytes != want.bytes || cfg.Discard != jetstream.DiscardOld {
			t.Errorf("stream %s: max age %s, max bytes %d, discard %v; want %s, %d, discard old", name, cfg.MaxAge, cfg.MaxBytes, cfg.Discard, want.age, want.bytes)
		}
	}

	// A message for offline bob makes an undelivered event (and a stored
	// lifecycle event); both expire after a second.
	alice := c.dial(e, "alice", "alice")
	alice.Send(t, map[string]any{"id": "s-1", "dest_id": "bob", "payload": "hello"})
	if f := alice.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" }); f.Status != "stored" {
		t.Fatalf("message to offline bob: %s, want stored", f.Raw)
	}
	for _, name := range []string{"allspark_undelivered", "allspark_events"} {
		testutil.Eventually(t, 20*time.Second, func() error {
			st, err := js.Stream(t.Context(), name)
			if err != nil {
				return err
			}
			info, err := st.Info(t.Context())
			if err != nil {
				return err
			}
			if info.State.LastSeq == 0 {
				return fmt.Errorf("stream %s never held an event after a stored message", name)
			}
			return nil
		})
		testutil.Eventually(t, 20*time.Second, func() error {
			n, err := streamMsgs(t, js, name)
			if err != nil {
				return err
			}
			if n != 0 {
				return fmt.Errorf("stream %s still holds %d events, want them expired", name, n)
			}
			return nil
		})
	}
}
