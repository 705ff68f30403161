package main

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// bigPhaseBudget bounds each phase of the big session (joins, connects):
	// when a phase is too slow to finish, the rows say how far it got.
	bigPhaseBudget = 4 * time.Minute
	// bigMessages is how many messages the big session's sender sends.
	bigMessages = 10
)

// bigSession is scenario big: one session of want members on two edges of
// one NATS (members alternate between the edges). Its rows: joins per
// second (HTTP joins, 64 at a time, before the members connect), and one
// member's messages fanned out to all the others (deliveries per second,
// latency send to receive). No other system has sessions with members.
//
// anonymous joins every member but the sender anonymously: anonymous
// members have no presence, so bringing 100,000 online costs no presence
// frames (named, it is n²/2 of them until presence is summarised for
// large sessions); the fan-out is the same.
func (h *harness) bigSession(want int, anonymous bool) []result {
	joinRow := result{Scenario: fmt.Sprintf("big: %d members join one session on 2 edges", want), System: "AllSpark, 2 edges"}
	fanRow := result{Scenario: fmt.Sprintf("big: fan-out to a session of %d members on 2 edges", want), System: "AllSpark, 2 edges"}
	fail := func(err error) []result {
		h.logf("big: %v", err)
		joinRow.Note = "failed: " + err.Error()
		fanRow.Note = joinRow.Note
		return []result{joinRow, fanRow}
	}
	n, why := fit(want)
	ctx, cancel := context.WithTimeout(h.ctx, 20*time.Minute)
	defer cancel()
	grp, bases, err := h.twoEdges(ctx, fmt.Sprintf("ALLSPARK_SESSION_MAX_MEMBERS=%d", max(want, 100_000)))
	if err != nil {
		return fail(err)
	}
	defer grp.stop()
	member := func(i int) string { return fmt.Sprintf("big%06d", i) }
	const sid = "big"
	joinPath := "/v1/sessions/" + sid + "/join"
	if anonymous {
		joinPath += "?anonymous=true"
		joinRow.Scenario += ", anonymous members"
		fanRow.Scenario += ", anonymous members"
	}
	if err := allsparkCall(bases[0], "POST", "/v1/sessions", member(0), map[string]any{"session_id": sid, "allow_anonymous": true}); err != nil {
		return fail(fmt.Errorf("create session: %w", err))
	}

	// Joins: members 1..n-1, alternating edges, until done or out of budget.
	cpu0 := grp.cpuSeconds()
	start := time.Now()
	jctx, jcancel := context.WithTimeout(ctx, bigPhaseBudget)
	var joined atomic.Int64
	var firstErr error
	var once sync.Once
	_ = parallel(jctx, n-1, 64, func(i int) error {
		if err := allsparkCall(bases[(i+1)%2], "POST", joinPath, member(i+1), nil); err != nil {
			once.Do(func() { firstErr = err; jcancel() })
			return err
		}
		joined.Add(1)
		return nil
	})
	jcancel()
	allsparkHTTP.CloseIdleConnections() // their descriptors go to the members
	el := time.Since(start)
	members := int(joined.Load()) + 1
	joinRow.Sent, joinRow.Promised, joinRow.Delivered = int64(n-1), joined.Load(), joined.Load()
	joinRow.Errors = int64(n-1) - joined.Load()
	joinRow.Rate = float64(joined.Load()) / el.Seconds()
	joinRow.RSSMB, joinRow.CPU = float64(grp.rssKB())/1024, 100*(grp.cpuSeconds()-cpu0)/el.Seconds()
	joinRow.Note = fmt.Sprintf("rate: joins/s; %d members in %.1f s", members, el.Seconds())
	switch {
	case firstErr != nil:
		joinRow.Note += "; stopped at the first refused join: " + firstErr.Error()
	case members < n:
		joinRow.Note += fmt.Sprintf("; stopped after the %s budget", bigPhaseBudget)
	}
	if why != "" {
		joinRow.Note += "; " + why
	}
	h.logf("big: %d members joined in %.1f s", members, el.Seconds())

	// Connect every member that joined; each connect announces presence to
	// the members already online, which the clients count.
	col := newCollector()
	var synced, presence atomic.Int64
	var closers []func()
	var mu sync.Mutex
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	cstart := time.Now()
	cctx, ccancel := context.WithTimeout(ctx, bigPhaseBudget)
	err = parallel(cctx, members-1, 64, func(i int) error {
		id := member(i + 1)
		c, err := allsparkDialBuf(bases[(i+1)%2], id, id, func(b []byte) {
			switch {
			case bytes.HasPrefix(b, []byte(`{"seq"`)):
				col.observe(id, b)
			case bytes.HasPrefix(b, []byte(`{"type":"sync_done"`)):
				synced.Add(1)
			case bytes.HasPrefix(b, []byte(`{"type":"presence"`)):
				presence.Add(1)
			}
		})
		if err != nil {
			return err
		}
		mu.Lock()
		closers = append(closers, c.close)
		mu.Unlock()
		return nil
	})
	ccancel()
	if err != nil {
		return append([]result{joinRow}, failRow(fanRow, fmt.Errorf("connect members: %d of %d connected in %.0f s: %w", len(closers), members-1, time.Since(cstart).Seconds(), err)))
	}
	if err := waitFor(ctx, bigPhaseBudget, func() bool { return synced.Load() >= int64(members-1) }); err != nil {
		return append([]result{joinRow}, failRow(fanRow, fmt.Errorf("%d of %d members synced: %w", synced.Load(), members-1, err)))
	}
	connectTime := time.Since(cstart)
	h.logf("big: %d members online in %.1f s (%d presence frames)", members-1, connectTime.Seconds(), presence.Load())

	// Fan-out: the creator sends bigMessages, at most 4 unanswered.
	slots := make(chan struct{}, 4)
	for range cap(slots) {
		slots <- struct{}{}
	}
	sender, err := allsparkDial(bases[0], member(0), member(0), func(b []byte) {
		if bytes.HasPrefix(b, []byte(`{"type":"sent"`)) {
			if bytes.Contains(b, []byte(`"rejected"`)) {
				col.rejected.Add(1)
			} else {
				col.promised.Add(1)
			}
			slots <- struct{}{}
		}
	})
	if err != nil {
		return append([]result{joinRow}, failRow(fanRow, err))
	}
	closers = append(closers, sender.close)
	cpu0 = grp.cpuSeconds()
	start = time.Now()
	for i := range bigMessages {
		<-slots
		_ = sender.conn.WriteString(`{"dest_session_id":"` + sid + `","payload":` + string(payload(fmt.Sprintf("big-%d", i))) + `}`)
	}
	fanRow.Sent = bigMessages
	settle(col, int64(bigMessages*(members-1)))
	el = time.Since(start)
	unique, dups := col.counts()
	fanRow.Promised, fanRow.Errors = col.promised.Load(), col.rejected.Load()
	fanRow.Delivered, fanRow.Duplicates = col.received.Load(), dups
	fanRow.Lost = max(0, fanRow.Promised*int64(members-1)-unique)
	fanRow.Rate = float64(fanRow.Delivered) / el.Seconds()
	fanRow.P50, fanRow.P90, fanRow.P99, fanRow.Max = col.percentiles()
	fanRow.RSSMB, fanRow.CPU = float64(grp.rssKB())/1024, 100*(grp.cpuSeconds()-cpu0)/el.Seconds()
	fanRow.Note = fmt.Sprintf("%d messages to %d other members; connecting them took %.1f s and brought %d presence frames",
		bigMessages, members-1, connectTime.Seconds(), presence.Load())
	if why != "" {
		fanRow.Note += "; " + why
	}
	return []result{joinRow, fanRow}
}

// settle waits until want frames arrived, or none for 10 s.
func settle(col *collector, want int64) {
	last, since := col.received.Load(), time.Now()
	for col.received.Load() < want && time.Since(since) < 10*time.Second {
		time.Sleep(20 * time.Millisecond)
		if n := col.received.Load(); n != last {
			last, since = n, time.Now()
		}
	}
}

func failRow(r result, err error) result {
	r.Note = "failed: " + err.Error()
	return r
}

// allsparkDialBuf is allsparkDial with a lean read buffer, for the many
// clients of the big scenarios.
func allsparkDialBuf(base, node, client string, onFrame func([]byte)) (*wsClient, error) {
	return dialWSBuf(node, "ws://"+base+"/v1/ws?auth_key="+url.QueryEscape(allsparkKey(node, client)), true, onFrame, leanReadBuffer)
}
