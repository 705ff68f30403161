package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"
)

// harness starts each system fresh for every scenario, runs the chosen
// scenarios and collects one result row per scenario and system.
type harness struct {
	ctx        context.Context
	o          options
	stderr     io.Writer
	dir        string // built binaries and data dirs
	centrifugo string // the Centrifugo binary, or "" (its rows are skipped)
	results    []result
	maxRate    map[string]float64 // scenario a: each system's max rate, for its 50% run
}

var errSkip = errors.New("skipped")

// newHarness builds the edge and embedded-nats binaries and finds
// Centrifugo when it is among the systems.
func newHarness(ctx context.Context, o options, stderr io.Writer) (*harness, func(), error) {
	dir, err := os.MkdirTemp("", "allspark-bench-*")
	if err != nil {
		return nil, nil, fmt.Errorf("create work dir: %w", err)
	}
	cleanup := func() { os.RemoveAll(dir) }
	h := &harness{ctx: ctx, o: o, stderr: stderr, dir: dir, maxRate: map[string]float64{}}
	h.logf("building edge and embedded-nats…")
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/edge", "./cmd/embedded-nats")
	if outb, err := build.CombinedOutput(); err != nil {
		cleanup()
		return nil, nil, fmt.Errorf("build: %w\n%s", err, outb)
	}
	if o.systems["centrifugo"] {
		if err := os.MkdirAll(o.cache, 0o755); err == nil {
			h.centrifugo, err = findCentrifugo(o.cache, h.logf)
			if err != nil {
				h.logf("Centrifugo unavailable, its rows are skipped: %v", err)
			}
		}
	}
	return h, cleanup, nil
}

func (h *harness) logf(f string, a ...any) { fmt.Fprintf(h.stderr, "\r\033[K"+f+"\n", a...) }

// runScenarios runs the chosen scenarios in the documented order.
func (h *harness) runScenarios() {
	o := h.o
	if o.scenarios["a"] {
		h.pointToPointRuns()
	}
	if o.scenarios["b"] {
		h.allsparkOnly("b", func(sys *system) (result, error) {
			return perUser(h.ctx, sys, 100, 20, o.duration, h.progress("per-user"))
		})
	}
	if o.scenarios["c"] {
		h.fanOutRuns()
	}
	if o.scenarios["d"] {
		h.replayRuns()
	}
	if o.scenarios["e"] {
		for _, want := range o.idle {
			n, why := fit(want)
			if why != "" {
				fmt.Fprintf(h.stderr, "e: %d idle connections asked, running %d: %s\n", want, n, why)
			}
			h.each("e", func(sys *system) (result, error) { return idle(h.ctx, sys, want, n, why, h.o.idleProf) })
		}
	}
	if o.scenarios["ops"] && o.systems["allspark"] {
		for _, r := range h.opsCosts() {
			h.add(r, nil, r.Scenario)
		}
	}
	if o.scenarios["storm"] && o.systems["allspark"] {
		r, err := h.storm(o.storm)
		h.add(r, err, r.Scenario)
	}
	if o.scenarios["big"] && o.systems["allspark"] {
		for _, r := range h.bigSession(o.big, o.bigAnon) {
			h.add(r, nil, r.Scenario)
		}
	}
	if o.scenarios["seed"] {
		h.seedRun()
	}
}

// pointToPointRuns is scenario a: max rate, then 50% of each system's own max.
func (h *harness) pointToPointRuns() {
	o := h.o
	what := fmt.Sprintf("a: 1:1 random pairs, %d clients, max rate", o.clients)
	h.each(what, func(sys *system) (result, error) {
		if sys.name == "AllSpark" {
			h.profileMiddle(sys, o.duration, o.profile)
		}
		r, err := pointToPoint(h.ctx, sys, what, o.clients, 0, o.duration, h.progress(sys.name))
		h.maxRate[sys.name] = r.Rate
		return r, err
	})
	what = "a: 1:1 at 50% of that system's max rate"
	h.each(what, func(sys *system) (result, error) {
		return pointToPoint(h.ctx, sys, what, o.clients, h.maxRate[sys.name]/2, o.duration/2, h.progress(sys.name))
	})
	for _, rate := range o.rates {
		what := fmt.Sprintf("a: 1:1 at %d/s (fixed rate, -rates)", rate)
		h.each(what, func(sys *system) (result, error) {
			return pointToPoint(h.ctx, sys, what, o.clients, float64(rate), o.duration/2, h.progress(sys.name))
		})
	}
	if !o.systems["allspark"] || h.ctx.Err() != nil {
		return
	}
	// The same load with senders on edge 1 and receivers on edge 2: every
	// message and its ack cross NATS. Its baseline is the NATS core row
	// above (NATS has no edges to cross).
	what = fmt.Sprintf("a: 1:1 across two edges on one NATS, %d clients, max rate", o.clients)
	grp, bases, err := h.twoEdges(h.ctx)
	if err != nil {
		h.add(result{Scenario: what, System: "AllSpark, 2 edges"}, err, what)
		return
	}
	sys := allsparkSystemOn(grp, bases[1], bases[0], "dest_id")
	sys.name = grp.name
	r, err := pointToPoint(h.ctx, sys, what, o.clients, 0, o.duration, h.progress(sys.name))
	grp.stop()
	h.add(r, err, what)
}

// profileMiddle saves a CPU profile of sys's server over the middle half
// of a run of length d to file, if file is set.
func (h *harness) profileMiddle(sys *system, d time.Duration, file string) {
	if file == "" {
		return
	}
	go func() {
		time.Sleep(d / 4) // profile the steady middle of the run
		if err := sys.srv.cpuProfile(max(d/2, time.Second), file); err != nil {
			h.logf("profile: %v", err)
		}
	}()
}

// profileSelf saves a CPU profile of the harness process (its clients) over
// the middle half of a run of length d to file, if file is set.
func (h *harness) profileSelf(d time.Duration, file string) {
	if file == "" {
		return
	}
	go func() {
		time.Sleep(d / 4)
		f, err := os.Create(file)
		if err != nil {
			h.logf("client profile: %v", err)
			return
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			h.logf("client profile: %v", err)
			return
		}
		time.Sleep(max(d/2, time.Second))
		pprof.StopCPUProfile()
	}()
}

// profileFor is where scenario sc's edge profile goes: -profile itself
// when sc is the only profiled scenario of the run (a, c, d), else the
// same name with "-<sc>" before its extension (a keeps the plain name).
func (h *harness) profileFor(sc string) string {
	if h.o.profile == "" || sc == "a" {
		return h.o.profile
	}
	others := 0
	for _, o := range []string{"a", "c", "d"} {
		if o != sc && h.o.scenarios[o] {
			others++
		}
	}
	if others == 0 {
		return h.o.profile
	}
	ext := filepath.Ext(h.o.profile)
	return strings.TrimSuffix(h.o.profile, ext) + "-" + sc + ext
}

// replayRuns is scenario d: AllSpark's offline store and replay, and raw
// JetStream doing the same reads (get next message by subject) as the
// baseline it is a ratio to.
func (h *harness) replayRuns() {
	const nodes, perNode = 200, 100
	h.allsparkOnly("d", func(sys *system) (result, error) { return offlineReplay(h.ctx, sys, nodes, perNode, h.profileFor("d")) })
	if !h.o.systems["allspark"] && !h.o.systems["nats"] || h.ctx.Err() != nil {
		return
	}
	what := fmt.Sprintf("d: store %d then replay on reconnect", nodes*perNode)
	creds, err := newNATSCreds()
	if err != nil {
		h.add(result{Scenario: what, System: "raw JetStream"}, err, what)
		return
	}
	sctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	ns, url, err := startNATSProc(sctx, h.dir, filepath.Join(h.dir, "embedded-nats"), "nats-raw", creds)
	cancel()
	if err != nil {
		h.add(result{Scenario: what, System: "raw JetStream"}, err, what)
		return
	}
	r, err := rawReplay(h.ctx, ns, url, what, nodes, perNode)
	ns.stop()
	h.add(r, err, what)
}

// fanOutRuns is scenario c: one big session, then many small ones.
func (h *harness) fanOutRuns() {
	for _, shape := range [][2]int{{1, 1000}, {100, 10}} {
		what := fmt.Sprintf("c: session fan-out, %d x %d members", shape[0], shape[1])
		h.each(what, func(sys *system) (result, error) {
			d := h.o.duration / 2
			started := func() {}
			if sys.name == "AllSpark" {
				sys = allsparkSystem(sys.srv, sys.base, "dest_session_id")
				if shape[0] == 1 {
					started = func() {
						h.profileMiddle(sys, d, h.profileFor("c"))
						h.profileSelf(d, h.o.clientProfile)
					}
				}
			}
			return fanOut(h.ctx, sys, what, shape[0], shape[1], d, h.progress(sys.name), started)
		})
	}
}

// seedRun is AllSparkRT's headline load at its rate for -duration.
func (h *harness) seedRun() {
	what, rate := seedPlan(h.o.duration)
	h.allsparkOnly(what, func(sys *system) (result, error) {
		r, err := pointToPoint(h.ctx, sys, what, 100, rate, h.o.duration, h.progress("seed"))
		if r.Sent > 0 {
			r.Note = fmt.Sprintf("errors %.2f%% (rejected+lost of %d sent)", 100*float64(r.Errors+r.Lost)/float64(r.Sent), r.Sent)
		}
		return r, err
	})
}

// start runs a fresh instance of the named system.
func (h *harness) start(name string) (*system, func(), error) {
	sctx, cancel := context.WithTimeout(h.ctx, 60*time.Second)
	defer cancel()
	switch name {
	case "allspark":
		s, base, err := startAllSpark(sctx, h.dir, filepath.Join(h.dir, "edge"))
		if err != nil {
			return nil, nil, err
		}
		return allsparkSystem(s, base, "dest_id"), s.stop, nil
	case "nats":
		s, addr, err := startNATS(sctx, h.dir, filepath.Join(h.dir, "embedded-nats"))
		if err != nil {
			return nil, nil, err
		}
		return natsSystem(s, addr), s.stop, nil
	case "centrifugo":
		if h.centrifugo == "" {
			return nil, nil, errSkip
		}
		s, base, err := startCentrifugo(sctx, h.dir, h.centrifugo)
		if err != nil {
			return nil, nil, err
		}
		return centrifugoSystem(s, base), s.stop, nil
	}
	return nil, nil, fmt.Errorf("unknown system %q", name)
}

// each runs f once per chosen system, each on a fresh instance.
func (h *harness) each(what string, f func(sys *system) (result, error)) {
	for _, name := range allSystems() {
		if h.o.systems[name] {
			h.one(name, what, f)
		}
	}
}

// allsparkOnly runs a scenario that only AllSpark has (it needs acks,
// client ids or storage), when AllSpark is among the systems.
func (h *harness) allsparkOnly(what string, f func(sys *system) (result, error)) {
	if h.o.systems["allspark"] {
		h.one("allspark", what, f)
	}
}

func (h *harness) one(name, what string, f func(sys *system) (result, error)) {
	if h.ctx.Err() != nil {
		return
	}
	sys, stop, err := h.start(name)
	if errors.Is(err, errSkip) {
		return
	}
	if err != nil {
		h.add(result{Scenario: what, System: name}, err, what)
		return
	}
	r, err := f(sys)
	stop()
	h.add(r, err, what)
}

func (h *harness) add(r result, err error, what string) {
	if err != nil {
		h.logf("%s: %v", what, err)
		r.Note = strings.TrimSuffix("failed: "+err.Error()+"; "+r.Note, "; ")
	}
	h.results = append(h.results, r)
	h.logf("%-44s %-14s %10.0f/s p99 %6.2f ms lost %d", r.Scenario, r.System, r.Rate, r.P99, r.Lost)
}

// progress draws a progress bar of a timed run on stderr.
func (h *harness) progress(label string) func(*collector) {
	t0 := time.Now()
	d := h.o.duration
	return func(c *collector) {
		el := time.Since(t0)
		bar := strings.Repeat("█", min(30, int(30*el/d))) + strings.Repeat("░", max(0, 30-int(30*el/d)))
		fmt.Fprintf(h.stderr, "\r\033[K%s %s %4.0fs  received %d", label, bar, el.Seconds(), c.received.Load())
	}
}
