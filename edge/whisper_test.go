package edge_test

import (
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// A message to an anonymous member is answered the same whatever the node
// behind the alias is doing (acking, connected but silent, offline): a
// member must not be able to time its whispers against the node's presence
// in another session and so link the alias to the node (red-team finding).
// It still reaches the node, through its inbox.
func TestWhisperAnswerRevealsNothing(t *testing.T) {
	c := newCluster(t)
	// An ack wait far longer than the test's deadlines: an answer that
	// waited for the node's ack would never come in time.
	e := c.edge("edge-a", func(cfg *edge.Config) { cfg.AckTimeout = 5 * time.Minute })
	c.mustCall(e, "POST", "/v1/sessions", "mallory", "mallory", map[string]any{"session_id": "masks", "allow_anonymous": true}, 201)
	anon := c.mustCall(e, "POST", "/v1/sessions/masks/join", "alice", "alice", map[string]any{"anonymous": true}, 200)
	alias, _ := anon["member_id"].(string)
	mallory := c.dial(e, "mallory", "mallory")
	whisper := func(state string) {
		t.Helper()
		mallory.Send(t, map[string]any{"id": state, "dest_session_id": "masks", "member_id": alias, "payload": state})
		f := mallory.Until(t, 30*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" && f.ID == state })
		if f.Status != "stored" {
			t.Fatalf("alias %s: answer %s, want stored", state, f.Raw)
		}
	}

	whisper("offline")
	alice, replayed := c.dialSynced(e, "alice", "alice")                  // auto-acks
	if len(replayed) != 2 || string(replayed[0].Payload) != `"offline"` { // the message, then sync_done
		t.Fatalf("replayed %v, want the whisper stored while offline", replayed)
	}
	whisper("online")
	alice.Until(t, 30*time.Second, func(f wstest.Frame) bool { return f.IsMessage() && string(f.Payload) == `"online"` })
	alice.SetAutoAck(false)
	whisper("silent")
	alice.Until(t, 30*time.Second, func(f wstest.Frame) bool { return f.IsMessage() && string(f.Payload) == `"silent"` })
}
