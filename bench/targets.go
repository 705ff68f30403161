package main

import (
	"fmt"
	"strings"
)

// targetsTable states issue 12's targets against this run's rows, each
// with its baseline from the same run, so results.md carries the verdicts
// and nobody has to pair rows by hand. A target whose row is missing or
// failed says so.
func targetsTable(rs []result) string {
	find := func(prefix, system string) (result, bool) {
		for _, r := range rs {
			if strings.HasPrefix(r.Scenario, prefix) && r.System == system && !strings.HasPrefix(r.Note, "failed") {
				return r, true
			}
		}
		return result{}, false
	}
	var b strings.Builder
	b.WriteString("| measure | target | measured | baseline, same run | ratio | verdict |\n|---|---|---|---|---|---|\n")
	row := func(measure, target, measured, baseline, ratio, verdict string) {
		fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s |\n", measure, target, measured, baseline, ratio, verdict)
	}
	missing := func(measure, target string) { row(measure, target, "not measured in this run", "", "", "missing") }
	ratio := func(a, base float64) string {
		if base <= 0 {
			return ""
		}
		return fmt.Sprintf("%.2f×", a/base)
	}
	verdict := func(ok bool, miss string) string {
		if ok {
			return "met"
		}
		return "missed: " + miss
	}
	baseline := func(prefix, unit string, f func(result) float64) string {
		var parts []string
		for _, sys := range []string{"NATS core", "Centrifugo v6", "raw JetStream"} {
			if r, ok := find(prefix, sys); ok {
				parts = append(parts, fmt.Sprintf("%s %s%s", sys, num(f(r)), unit))
			}
		}
		return strings.Join(parts, ", ")
	}
	rate := func(r result) float64 { return r.Rate }
	p99 := func(r result) float64 { return r.P99 }

	// acked 1:1, same edge and across two edges.
	nats, _ := find("a: 1:1 random pairs", "NATS core")
	for _, t := range []struct {
		prefix, system, measure string
		want                    float64
	}{
		{"a: 1:1 random pairs", "AllSpark", "acked 1:1, sender and receiver on the same edge", 60000},
		{"a: 1:1 across two edges", "AllSpark, 2 edges", "acked 1:1 across two edges on one NATS", 40000},
	} {
		target := fmt.Sprintf("≥ %s/s, 0 lost", num(t.want))
		r, ok := find(t.prefix, t.system)
		if !ok {
			missing(t.measure, target)
			continue
		}
		row(t.measure, target, fmt.Sprintf("%s/s, %d lost", num(r.Rate), r.Lost), baseline("a: 1:1 random pairs", "/s", rate),
			ratio(r.Rate, nats.Rate)+" of NATS core", verdict(r.Rate >= t.want && r.Lost == 0, fmt.Sprintf("%.0f%% of the target, %d lost", 100*r.Rate/t.want, r.Lost)))
	}
	if r, ok := find("a: 1:1 at 50%", "AllSpark"); ok {
		row("1:1 p99 at 50% of own max rate", "< 10 ms", fmt.Sprintf("%.1f ms", r.P99), baseline("a: 1:1 at 50%", " ms", p99), "",
			verdict(r.P99 < 10, fmt.Sprintf("by %.1f ms", r.P99-10)))
	} else {
		missing("1:1 p99 at 50% of own max rate", "< 10 ms")
	}
	if r, ok := find("c: session fan-out, 1 x 1000", "AllSpark"); ok {
		n, _ := find("c: session fan-out, 1 x 1000", "NATS core")
		row("session fan-out 1 × 1,000, full harness", "≥ 1M/s, p99 < 50 ms", fmt.Sprintf("%s/s, p99 %.0f ms", num(r.Rate), r.P99),
			baseline("c: session fan-out, 1 x 1000", "/s", rate), ratio(r.Rate, n.Rate)+" of NATS core",
			verdict(r.Rate >= 1e6 && r.P99 < 50, fmt.Sprintf("%.0f%% of the rate, p99 %.0f ms", 100*r.Rate/1e6, r.P99)))
	} else {
		missing("session fan-out 1 × 1,000, full harness", "≥ 1M/s, p99 < 50 ms")
	}
	if r, ok := find("d:", "AllSpark"); ok {
		raw, _ := find("d:", "raw JetStream")
		ok := r.Rate >= 50000 && (raw.Rate == 0 || r.Rate >= 0.9*raw.Rate)
		row("offline store then replay", "≥ 50k/s replayed, ≥ 0.9× raw JetStream", fmt.Sprintf("%s/s, %d lost", num(r.Rate), r.Lost),
			baseline("d:", "/s", rate), ratio(r.Rate, raw.Rate)+" of raw JetStream",
			verdict(ok, fmt.Sprintf("%.0f%% of 50k/s", 100*r.Rate/50000)))
	} else {
		missing("offline store then replay", "≥ 50k/s replayed, ≥ 0.9× raw JetStream")
	}
	idleRows := 0
	for _, r := range rs {
		if !strings.HasPrefix(r.Scenario, "e:") || r.System != "AllSpark" || r.KBPerConn <= 0 {
			continue
		}
		idleRows++
		prefix, _, _ := strings.Cut(r.Scenario, " idle")
		measured := fmt.Sprintf("%.1f KB", r.KBPerConn)
		if strings.Contains(r.Note, "ran ") {
			measured += fmt.Sprintf(" (at %d connections: the file limit)", r.Sent)
		}
		row("RSS per idle connection, "+strings.TrimPrefix(r.Scenario, "e: "), "≤ 10 KB", measured,
			baseline(prefix, " KB", func(b result) float64 { return b.KBPerConn }), "",
			verdict(r.KBPerConn <= 10, fmt.Sprintf("%.1f×", r.KBPerConn/10)))
	}
	if idleRows == 0 {
		missing("RSS per idle connection", "≤ 10 KB")
	}
	if r, ok := find("storm:", "AllSpark, 2 edges"); ok {
		secs := 0.0
		fmt.Sscanf(r.Note, "all back and sync_done in %f s", &secs)
		row("reconnect storm: "+strings.TrimPrefix(r.Scenario, "storm: "), "all back and sync_done within 10 s; NATS operations per reconnect reported",
			fmt.Sprintf("%d of %d back in %.1f s, p99 %.0f ms", r.Delivered, r.Sent, secs, r.P99), "none (no other system has it)", "",
			verdict(r.Lost == 0 && secs <= 10, fmt.Sprintf("%.1f s, %d not back", secs, r.Lost))+"; operations per reconnect in the storm row's note")
	} else {
		missing("reconnect storm", "all back and sync_done within 10 s")
	}
	if j, ok := find("big:", "AllSpark, 2 edges"); ok && strings.Contains(j.Scenario, "join") {
		row(strings.TrimPrefix(j.Scenario, "big: "), "≥ 5k joins/s", fmt.Sprintf("%s joins/s, %d of %d joined", num(j.Rate), j.Promised, j.Sent), "none (no other system has sessions with members)", "",
			verdict(j.Rate >= 5000 && j.Errors == 0, fmt.Sprintf("%.0f%% of the rate, %d not joined", 100*j.Rate/5000, j.Errors)))
	} else {
		missing("one session of 100,000 members on 2 edges: joins", "≥ 5k joins/s")
	}
	var fan result
	for _, r := range rs {
		if strings.HasPrefix(r.Scenario, "big: fan-out") {
			fan = r
		}
	}
	if fan.Scenario != "" && !strings.HasPrefix(fan.Note, "failed") {
		row(strings.TrimPrefix(fan.Scenario, "big: "), "delivered to every member, p99 reported", fmt.Sprintf("%s deliveries/s, p99 %.0f ms, %d lost", num(fan.Rate), fan.P99, fan.Lost), "", "",
			verdict(fan.Lost == 0, fmt.Sprintf("%d lost", fan.Lost)))
	} else {
		missing("one session of 100,000 members on 2 edges: fan-out", "delivered to every member, p99 reported")
	}
	var lost, accepted int64
	for _, r := range rs {
		// Messages only: the storm's and the joins' "lost" are clients
		// not back and members not joined, stated in their own rows.
		if strings.HasPrefix(r.System, "AllSpark") && !strings.HasPrefix(r.Scenario, "storm:") && !strings.Contains(r.Scenario, " join ") {
			lost, accepted = lost+r.Lost, accepted+r.Promised
		}
	}
	row("0 lost across the whole run, counted per receiver", "0", fmt.Sprintf("%d lost of %d accepted", lost, accepted), "", "", verdict(lost == 0, fmt.Sprintf("%d lost", lost)))
	return b.String()
}

// num formats a rate: 1234 -> "1,234", 1234567 -> "1.23M".
func num(v float64) string {
	if v >= 1e6 {
		return fmt.Sprintf("%.2fM", v/1e6)
	}
	if v >= 100 {
		return thousands(int64(v + 0.5))
	}
	return fmt.Sprintf("%.1f", v)
}
