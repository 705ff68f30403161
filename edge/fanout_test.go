package edge_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// A session message reaches every member intact whatever its length: the
// frame is encoded for the wire once per message (see edge/fanout.go), with
// the 1-, 2- and 8-byte length forms of RFC 6455.
func TestSessionFanOutFrameLengths(t *testing.T) {
	c := newCluster(t)
	big := func(cfg *edge.Config) { cfg.MaxFrameBytes, cfg.SendQueueBytes = 1<<18, 1<<20 }
	a := c.edge("edge-a", big)
	c.mustCall(a, "POST", "/v1/sessions", "sender", "sender", map[string]any{"session_id": "lengths"}, 201)
	members := []string{"m1", "m2", "m3"}
	for _, m := range members {
		c.mustCall(a, "POST", "/v1/sessions/lengths/join", m, m, nil, 200)
	}
	sender := c.dial(a, "sender", "sender")
	recs := map[string]*recorder{}
	for _, m := range members {
		recs[m] = record(t, c.dial(a, m, m))
	}
	sizes := []int{0, 90, 300, 70_000} // frames under 126, under 65,536 and over
	want := map[string]bool{}
	for i, n := range sizes {
		p, _ := json.Marshal(strings.Repeat("é", n/2)) // two bytes each: UTF-8 beyond ASCII
		want[string(p)] = true
		sender.Send(t, map[string]any{"id": fmt.Sprint(i), "dest_session_id": "lengths", "payload": json.RawMessage(p)})
	}
	for m, r := range recs {
		r.waitFor(t, m+"'s messages", func(wstest.Frame) bool { return len(sessionMsgs(r.snapshot(), "lengths")) == len(sizes) })
		for _, f := range sessionMsgs(r.snapshot(), "lengths") {
			if !want[string(f.Payload)] {
				t.Fatalf("%s got a payload of %d bytes that was not sent: %.80s", m, len(f.Payload), f.Payload)
			}
		}
	}
}

// A member that comes online after the session's members here were listed
// for a delivery gets the next message: the list is rebuilt after every
// join and leave.
func TestSessionFanOutReachesLateMember(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	c.mustCall(a, "POST", "/v1/sessions", "sender", "sender", map[string]any{"session_id": "late"}, 201)
	for _, m := range []string{"early", "late", "gone"} {
		c.mustCall(a, "POST", "/v1/sessions/late/join", m, m, nil, 200)
	}
	sender := c.dial(a, "sender", "sender")
	early := record(t, c.dial(a, "early", "early"))
	gone := c.dial(a, "gone", "gone")
	sender.Send(t, map[string]any{"id": "1", "dest_session_id": "late", "payload": "first"})
	early.waitFor(t, "the first message", func(f wstest.Frame) bool { return f.IsMessage() && string(f.Payload) == `"first"` })
	gone.Close()
	late := record(t, c.dial(a, "late", "late"))
	sender.Send(t, map[string]any{"id": "2", "dest_session_id": "late", "payload": "second"})
	late.waitFor(t, "the second message", func(f wstest.Frame) bool { return f.IsMessage() && string(f.Payload) == `"second"` })
	early.waitFor(t, "the second message", func(f wstest.Frame) bool { return f.IsMessage() && string(f.Payload) == `"second"` })
}
