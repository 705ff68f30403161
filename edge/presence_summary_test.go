package edge_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// summaryOf matches a presence_summary frame for sid saying online.
func summaryOf(sid string, online int) func(wstest.Frame) bool {
	return func(f wstest.Frame) bool {
		return f.Type == "presence_summary" && strings.Contains(f.Raw, `"session_id":"`+sid+`"`) &&
			strings.Contains(f.Raw, fmt.Sprintf(`"online":%d}`, online))
	}
}

func isSummary(f wstest.Frame) bool   { return f.Type == "presence_summary" }
func isPerMember(f wstest.Frame) bool { return f.Type == "presence" }
func isBarrier(f wstest.Frame) bool   { return f.IsMessage() && string(f.Payload) == `"barrier"` }

// summaryConfig sets the presence threshold to max members and the
// summary interval.
func summaryConfig(max int, interval time.Duration) func(*edge.Config) {
	return func(c *edge.Config) { c.PresenceMaxMembers, c.PresenceSummaryInterval = max, interval }
}

// settle waits until none of edges has presence work pending, so what a
// client sends next is published after every presence frame and count.
func settle(t *testing.T, edges ...*testEdge) {
	t.Helper()
	testutil.Eventually(t, wait, func() error {
		for _, e := range edges {
			if !edge.PresenceSettled(e.srv) {
				return fmt.Errorf("edge %s still has presence work pending", e.cfg.ID)
			}
		}
		return nil
	})
}

// roomOf creates sid on e, owned by owner, with members joined (offline).
func (c *cluster) roomOf(e *testEdge, sid, owner string, members []string) {
	c.t.Helper()
	c.mustCall(e, "POST", "/v1/sessions", owner, owner, map[string]any{"session_id": sid}, 201)
	for _, m := range members {
		c.mustCall(e, "POST", "/v1/sessions/"+sid+"/join", m, m, nil, 200)
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%02d", prefix, i)
	}
	return out
}

// beforeBarrier returns the frames r got before its first barrier.
func beforeBarrier(t *testing.T, r *recorder) []wstest.Frame {
	t.Helper()
	r.waitFor(t, "the barrier", isBarrier)
	frames := r.snapshot()
	for i, f := range frames {
		if isBarrier(f) {
			return frames[:i]
		}
	}
	return frames
}

// barrier has two members (the sender gets no echo) send a session
// message after the edges settled; every member gets at least one.
func barrier(t *testing.T, sid string, from ...*wstest.Client) {
	for _, cl := range from {
		cl.Send(t, map[string]any{"dest_session_id": sid, "payload": "barrier"})
	}
}

// A session with exactly ALLSPARK_PRESENCE_MAX_MEMBERS members keeps
// per-member presence frames and gets no summary.
func TestPresenceAtThresholdIsPerMember(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", summaryConfig(4, 20*time.Millisecond))
	members := names("m", 3)
	c.roomOf(a, "four", "owner", members) // 4 members: at the threshold
	rec := record(t, c.dial(a, "owner", "owner"))
	var cls []*wstest.Client
	for _, m := range members {
		cls = append(cls, c.dial(a, m, m))
		rec.waitFor(t, m+" online", presenceOf("four", m, true))
	}
	settle(t, a)
	barrier(t, "four", cls[0], cls[1])
	if n := countFrames(beforeBarrier(t, rec), isSummary); n != 0 {
		t.Fatalf("a session at the threshold got %d presence summaries", n)
	}
}

// Past the threshold, members get summaries of how many are online and
// no per-member frame, online or offline.
func TestPresenceAboveThresholdIsSummarised(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", summaryConfig(4, 20*time.Millisecond))
	members := names("m", 5)
	c.roomOf(a, "big", "owner", members) // 6 members
	owner := c.dial(a, "owner", "owner")
	rec := record(t, owner)
	recs := map[string]*recorder{}
	var cls []*wstest.Client
	for _, m := range members {
		cl := c.dial(a, m, m)
		cls = append(cls, cl)
		recs[m] = record(t, cl)
	}
	rec.waitFor(t, "a summary of 6 online", summaryOf("big", 6))
	for m, r := range recs {
		r.waitFor(t, m+"'s summary of 6 online", summaryOf("big", 6))
	}
	cls[4].Close()
	rec.waitFor(t, "a summary of 5 online", summaryOf("big", 5))
	settle(t, a)
	barrier(t, "big", owner, cls[0])
	for m, r := range map[string]*recorder{"owner": rec, "m01": recs["m01"], "m02": recs["m02"]} {
		if n := countFrames(beforeBarrier(t, r), isPerMember); n != 0 {
			t.Fatalf("%s got %d per-member presence frames in a session past the threshold", m, n)
		}
	}
}

// The summary adds up the members online on every edge; an edge whose
// members leave retracts its count, and an edge that dies is forgotten
// once the registry drops it.
func TestPresenceSummaryAcrossEdges(t *testing.T) {
	c := newCluster(t)
	cfg := summaryConfig(4, 20*time.Millisecond)
	a, b := c.edge("edge-a", cfg), c.edge("edge-b", cfg)
	onA, onB := names("a", 3), names("b", 4)
	c.roomOf(a, "wide", "owner", append(append([]string{}, onA...), onB...)) // 8 members
	recA := record(t, c.dial(a, "owner", "owner"))
	for _, m := range onA {
		c.dial(a, m, m)
	}
	var clsB []*wstest.Client
	for _, m := range onB {
		clsB = append(clsB, c.dial(b, m, m))
	}
	recB := record(t, clsB[0])
	recA.waitFor(t, "8 online, on edge a", summaryOf("wide", 8))
	recB.waitFor(t, "8 online, on edge b", summaryOf("wide", 8))

	clsB[3].Close()
	clsB[2].Close()
	recA.waitFor(t, "6 online after two members left edge b", summaryOf("wide", 6))

	// As if its process died: with its NATS connection cut first, edge b
	// retracts nothing, and edge a must forget its 2 by itself.
	b.nc.Close()
	b.kill()
	recA.waitFor(t, "4 online once edge b is forgotten", summaryOf("wide", 4))
}

// Bringing n members of a large session online costs O(n) presence frames
// in all (the per-member frames cost n(n-1)/2): with a summary interval
// longer than the test, each member gets the total when it connects and
// at most one more.
func TestPresenceFramesGrowLinearly(t *testing.T) {
	for _, n := range []int{20, 40} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			c := newCluster(t)
			a := c.edge("edge-a", summaryConfig(10, time.Hour))
			members := names("m", n-1)
			c.roomOf(a, "crowd", "owner", members)
			recs := []*recorder{record(t, c.dial(a, "owner", "owner"))}
			var cls []*wstest.Client
			for _, m := range members {
				cl := c.dial(a, m, m)
				cls = append(cls, cl)
				recs = append(recs, record(t, cl))
			}
			settle(t, a)
			barrier(t, "crowd", cls[0], cls[1])
			total, perMember := 0, 0
			for _, r := range recs {
				before := beforeBarrier(t, r)
				total += countFrames(before, func(f wstest.Frame) bool { return isSummary(f) || isPerMember(f) })
				perMember += countFrames(before, isPerMember)
			}
			t.Logf("%d members online: %d presence frames (%d per-member)", n, total, perMember)
			if perMember != 0 || total > 2*n {
				t.Fatalf("%d members online cost %d presence frames (%d per-member); want at most %d, none per-member",
					n, total, perMember, 2*n)
			}
		})
	}
}

// The presence limits are validated by name.
func TestPresenceConfigValidated(t *testing.T) {
	for name, mod := range map[string]func(*edge.Config){
		"ALLSPARK_PRESENCE_MAX_MEMBERS":      func(c *edge.Config) { c.PresenceMaxMembers = -1 },
		"ALLSPARK_PRESENCE_SUMMARY_INTERVAL": func(c *edge.Config) { c.PresenceSummaryInterval = time.Millisecond },
		"ALLSPARK_PRESENCE_SIZE_TTL":         func(c *edge.Config) { c.PresenceSizeTTL = -time.Second },
		"ALLSPARK_PRESENCE_SIZE_CACHE":       func(c *edge.Config) { c.PresenceSizeCache = -1 },
		"ALLSPARK_PRESENCE_SIZE_READS":       func(c *edge.Config) { c.PresenceSizeReads = -1 },
	} {
		cfg := testConfig("edge-x", "http://127.0.0.1:1")
		mod(&cfg)
		if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s out of range: %v, want an error naming it", name, err)
		}
	}
}
