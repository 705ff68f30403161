package edge_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// sentFailed decodes a sent frame's per-target failures.
func sentFailed(t *testing.T, f wstest.Frame) []allspark.TargetFailure {
	t.Helper()
	var s allspark.Sent
	if err := json.Unmarshal([]byte(f.Raw), &s); err != nil {
		t.Fatalf("decode %s: %v", f.Raw, err)
	}
	return s.Failed
}

// Acceptance 3 (issue 11): a message to a client with several devices, where
// one copy cannot be stored (its node's inbox is full) and another arrives,
// is answered with what arrived and the failed target listed, never
// "rejected": "delivered" when the other copy was acked, "stored" when a
// copy waits in an inbox.
func TestPartialFailureIsNotRejected(t *testing.T) {
	c := newCluster(t)
	e := c.edge("edge-a", func(cfg *edge.Config) { cfg.InboxMaxPerNode = 1 })
	alice := c.dial(e, "alice", "alice")
	// Register every device of carol and dave, then take the offline ones away.
	carolPhone := c.dial(e, "carol-phone", "carol")
	for _, node := range []string{"carol-tablet", "carol-laptop"} {
		c.dial(e, node, "carol").Close()
	}
	davePhone := c.dial(e, "dave-phone", "dave")
	c.dial(e, "dave-tablet", "dave").Close()
	waitConns(t, e, 3)

	send := func(id string, to map[string]any) wstest.Frame {
		t.Helper()
		to["id"], to["payload"] = id, "x-"+id
		alice.Send(t, to)
		return alice.Until(t, wait, func(f wstest.Frame) bool { return f.Type == "sent" && f.ID == id })
	}
	// Fill the two tablets' inboxes (cap 1).
	for _, node := range []string{"carol-tablet", "dave-tablet"} {
		if f := send("fill-"+node, map[string]any{"dest_id": node}); f.Status != "stored" {
			t.Fatalf("filling %s: got %s, want stored", node, f.Raw)
		}
	}
	if f := send("full", map[string]any{"dest_id": "carol-tablet"}); f.Status != "rejected" || f.Error == nil || f.Error.Code != "inbox_full" {
		t.Fatalf("to a full inbox alone: got %s, want rejected inbox_full", f.Raw)
	}

	cases := []struct {
		client, status string
		online         *wstest.Client
		failed         []allspark.TargetFailure
	}{
		// phone acks, tablet full, laptop stored.
		{"carol", "stored", carolPhone, []allspark.TargetFailure{{Node: "carol-tablet", Code: allspark.CodeInboxFull}}},
		// phone acks, tablet full.
		{"dave", "delivered", davePhone, []allspark.TargetFailure{{Node: "dave-tablet", Code: allspark.CodeInboxFull}}},
	}
	for _, tc := range cases {
		id := "to-" + tc.client
		f := send(id, map[string]any{"dest_client_id": tc.client})
		if f.Status != tc.status || f.Error != nil {
			t.Errorf("to %s: got %s, want status %s without error", tc.client, f.Raw, tc.status)
		}
		if got := sentFailed(t, f); !reflect.DeepEqual(got, tc.failed) {
			t.Errorf("to %s: failed = %+v, want %+v", tc.client, got, tc.failed)
		}
		if m := tc.online.Until(t, wait, wstest.Frame.IsMessage); string(m.Payload) != fmt.Sprintf("%q", "x-"+id) {
			t.Errorf("%s's online device got %s", tc.client, m.Raw)
		}
	}
}
