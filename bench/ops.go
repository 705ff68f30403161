package main

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"time"
)

// opsMessages is how many messages each operation of scenario ops sends.
const opsMessages = 2000

// opsCosts is scenario ops: what one operation costs NATS, counted on an
// in-process NATS server with two edges (the same counters as the storm):
// a connect, a 1:1 message on one edge, across two edges, to an offline
// node (stored), and a session message to 20 members on two edges. These
// are the per-operation costs of the capacity model in ARCHITECTURE.md.
// Messages are sent one window of 32 at a time; the rate is not the point.
func (h *harness) opsCosts() []result {
	const sys = "AllSpark, 2 edges"
	fail := func(what string, err error) []result {
		return []result{failRow(result{Scenario: "ops: " + what, System: sys}, err)}
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Minute)
	defer cancel()
	creds, err := newNATSCreds()
	if err != nil {
		return fail("setup", err)
	}
	ns, natsURL, err := startNATSInProcess(h.dir, creds)
	if err != nil {
		return fail("setup", err)
	}
	defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
	var bases [2]string
	for i, id := range []string{"ops-a", "ops-b"} {
		e, base, err := startEdge(ctx, h.dir, filepath.Join(h.dir, "edge"), id, natsURL)
		if err != nil {
			return fail("setup", err)
		}
		defer e.stop()
		bases[i] = base
	}
	tap, err := newWiretap(natsURL)
	if err != nil {
		return fail("setup", err)
	}
	defer tap.close()
	settleNATS := func() counters { time.Sleep(time.Second); return natsCounters(ns, tap) }

	col := newCollector()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	connect := func(base, id string) error {
		c, err := allsparkDial(base, id, id, func(b []byte) {
			if bytes.HasPrefix(b, []byte(`{"msg_id"`)) || bytes.HasPrefix(b, []byte(`{"seq"`)) {
				col.observe(id, b)
			}
		})
		if err == nil {
			closers = append(closers, c.close)
		}
		return err
	}
	var rows []result

	// Connects: 100 nodes on edge A (the storm reports reconnects).
	before := settleNATS()
	for i := range 100 {
		if err := connect(bases[0], fmt.Sprintf("ra%03d", i)); err != nil {
			return fail("connect", err)
		}
	}
	for i := range 100 {
		if err := connect(bases[1], fmt.Sprintf("rb%03d", i)); err != nil {
			return fail("connect", err)
		}
	}
	after := settleNATS()
	rows = append(rows, result{Scenario: "ops: NATS cost of one connect", System: sys, Sent: 200, Note: "per connect: " + after.minus(before).per(200)})

	// Session of 20: ra000-ra009 on A, rb000-rb009 on B; the sender joins too.
	if err := allsparkCall(bases[0], "POST", "/v1/sessions", "opsender", map[string]any{"session_id": "ops"}); err != nil {
		return fail("session", err)
	}
	for i := range 10 {
		for j, p := range []string{"ra", "rb"} {
			if err := allsparkCall(bases[j], "POST", "/v1/sessions/ops/join", fmt.Sprintf("%s%03d", p, i), nil); err != nil {
				return fail("session", err)
			}
		}
	}

	// answered counts every answer, accepted those that promise the
	// message (delivered or stored): only those count toward lost.
	var answered, accepted atomic.Int64
	slots := make(chan struct{}, 32)
	sender, err := allsparkDial(bases[0], "opsender", "opsender", func(b []byte) {
		if bytes.HasPrefix(b, []byte(`{"type":"sent"`)) {
			answered.Add(1)
			if !bytes.Contains(b, []byte(`"status":"rejected"`)) {
				accepted.Add(1)
			}
			slots <- struct{}{}
		}
	})
	if err != nil {
		return fail("sender", err)
	}
	closers = append(closers, sender.close)
	run := func(what string, fanout int64, frame func(i int) string) {
		for range cap(slots) {
			slots <- struct{}{}
		}
		answered.Store(0)
		accepted.Store(0)
		got0 := col.received.Load()
		before := settleNATS()
		t0 := time.Now()
		for i := range opsMessages {
			<-slots
			_ = sender.conn.WriteString(frame(i))
		}
		_ = waitFor(ctx, time.Minute, func() bool {
			return answered.Load() >= opsMessages && col.received.Load()-got0 >= accepted.Load()*fanout
		})
		h.logf("ops: %s: %d messages in %.1f s", what, opsMessages, time.Since(t0).Seconds())
		for len(slots) > 0 {
			<-slots
		}
		after := settleNATS()
		rows = append(rows, result{Scenario: "ops: NATS cost of " + what, System: sys, Sent: opsMessages, Promised: accepted.Load(),
			Errors: answered.Load() - accepted.Load(), Delivered: col.received.Load() - got0, Lost: max(0, accepted.Load()*fanout-(col.received.Load()-got0)),
			Note: "per message: " + after.minus(before).per(opsMessages)})
	}
	msg := func(field, dest, key string) string {
		return `{"` + field + `":"` + dest + `","payload":` + string(payload(key)) + `}`
	}
	run("a 1:1 message on one edge", 1, func(i int) string { return msg("dest_id", fmt.Sprintf("ra%03d", i%100), fmt.Sprintf("same-%d", i)) })
	run("a 1:1 message across two edges", 1, func(i int) string { return msg("dest_id", fmt.Sprintf("rb%03d", i%100), fmt.Sprintf("cross-%d", i)) })
	run("a 1:1 message to an offline node (stored)", 0, func(i int) string {
		return msg("dest_id", fmt.Sprintf("off%03d", i%100), fmt.Sprintf("off-%d", i))
	})
	stored := accepted.Load() // what the replay owes
	// Replay: the offline nodes come online on edge B and read it all back.
	got0 := col.received.Load()
	before = settleNATS()
	for i := range 100 {
		if err := connect(bases[1], fmt.Sprintf("off%03d", i)); err != nil {
			return fail("replay", err)
		}
	}
	_ = waitFor(ctx, time.Minute, func() bool { return col.received.Load()-got0 >= stored })
	after = settleNATS()
	replayed := col.received.Load() - got0
	connects := after.minus(before)
	rows = append(rows, result{Scenario: "ops: NATS cost of replaying a stored message (100 connects included)", System: sys,
		Sent: opsMessages, Promised: stored, Delivered: replayed, Lost: max(0, stored-replayed),
		Note: "per replayed message: " + connects.per(max(replayed, 1))})
	run("a session message to 20 members on 2 edges", 20, func(i int) string { return msg("dest_session_id", "ops", fmt.Sprintf("sess-%d", i)) })
	return rows
}
