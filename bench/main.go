// Command bench measures AllSpark side by side with raw NATS (the
// near-limit reference) and Centrifugo v6, with its own loopback clients:
//
//	go run ./bench -scenario all -duration 20s
//
// Scenarios: a (1:1 random pairs, max rate, then 50% of it), b (per-user
// fan-out, 3 devices), c (session fan-out: 1x1000 and 100x10), d (offline
// store then replay), e (idle connections: RSS per connection), seed
// (AllSparkRT's 50,000 messages in 20 s). Results: a Markdown table on
// stdout and in -out, and JSON beside it. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	scenarios map[string]bool
	duration  time.Duration
	clients   int
	idle      int
	systems   map[string]bool
	out       string
	cache     string
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	scen := fs.String("scenario", "all", "comma-separated: a,b,c,d,e,seed or all")
	dur := fs.Duration("duration", 20*time.Second, "length of each timed run")
	clients := fs.Int("clients", 200, "clients in the 1:1 scenario")
	idleN := fs.Int("idle", 10000, "connections in the idle scenario (100000 needs ulimit -n raised)")
	systems := fs.String("systems", "allspark,nats,centrifugo", "systems to measure")
	out := fs.String("out", "bench/results", "directory for results.md and results.json")
	home, _ := os.UserCacheDir()
	cache := fs.String("cache", filepath.Join(home, "allspark-bench"), "where Centrifugo is installed")
	profile := fs.String("profile", "", "save a CPU profile of AllSpark during the 1:1 max-rate run to this file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := options{scenarios: set(*scen), duration: *dur, clients: *clients, idle: *idleN, systems: set(*systems), out: *out, cache: *cache}
	if o.scenarios["all"] {
		o.scenarios = set("a,b,c,d,e,seed")
	}
	logf := func(f string, a ...any) { fmt.Fprintf(stderr, "\r\033[K"+f+"\n", a...) }

	dir, err := os.MkdirTemp("", "allspark-bench-*")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	logf("building edge and embedded-nats…")
	build := exec.Command("go", "build", "-o", dir+"/", "./cmd/edge", "./cmd/embedded-nats")
	if outb, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build: %v\n%s", err, outb)
	}
	var centrifugo string
	if o.systems["centrifugo"] {
		if err := os.MkdirAll(o.cache, 0o755); err == nil {
			centrifugo, err = findCentrifugo(o.cache, logf)
			if err != nil {
				logf("Centrifugo unavailable, its rows are skipped: %v", err)
			}
		}
	}
	start := func(name string) (*system, func(), error) {
		sctx, cancel := context.WithTimeout(ctx, 60*time.Second)
		defer cancel()
		switch name {
		case "allspark":
			s, base, err := startAllSpark(sctx, dir, filepath.Join(dir, "edge"))
			if err != nil {
				return nil, nil, err
			}
			return allsparkSystem(s, base, "dest_id"), s.stop, nil
		case "nats":
			s, addr, err := startNATS(sctx, dir, filepath.Join(dir, "embedded-nats"))
			if err != nil {
				return nil, nil, err
			}
			return natsSystem(s, addr), s.stop, nil
		case "centrifugo":
			if centrifugo == "" {
				return nil, nil, errSkip
			}
			s, base, err := startCentrifugo(sctx, dir, centrifugo)
			if err != nil {
				return nil, nil, err
			}
			return centrifugoSystem(s, base), s.stop, nil
		}
		return nil, nil, fmt.Errorf("unknown system %q", name)
	}
	var results []result
	add := func(r result, err error, what string) {
		if err != nil {
			logf("%s: %v", what, err)
			r.Note = "failed: " + err.Error()
		}
		results = append(results, r)
		logf("%-44s %-14s %10.0f/s p99 %6.2f ms lost %d", r.Scenario, r.System, r.Rate, r.P99, r.Lost)
	}
	progress := func(label string) func(*collector) {
		t0 := time.Now()
		return func(c *collector) {
			el := time.Since(t0)
			bar := strings.Repeat("█", min(30, int(30*el/o.duration))) + strings.Repeat("░", max(0, 30-int(30*el/o.duration)))
			fmt.Fprintf(stderr, "\r\033[K%s %s %4.0fs  received %d", label, bar, el.Seconds(), c.received.Load())
		}
	}
	each := func(what string, f func(sys *system) (result, error)) {
		for _, name := range []string{"allspark", "nats", "centrifugo"} {
			if !o.systems[name] || ctx.Err() != nil {
				continue
			}
			sys, stop, err := start(name)
			if err == errSkip {
				continue
			}
			if err != nil {
				add(result{Scenario: what, System: name}, err, what)
				continue
			}
			r, err := f(sys)
			stop()
			add(r, err, what)
		}
	}

	maxRate := map[string]float64{}
	if o.scenarios["a"] {
		what := fmt.Sprintf("a: 1:1 random pairs, %d clients, max rate", o.clients)
		each(what, func(sys *system) (result, error) {
			if *profile != "" && sys.name == "AllSpark" {
				go func() {
					time.Sleep(o.duration / 4)
					if err := sys.srv.cpuProfile(o.duration/2, *profile); err != nil {
						logf("profile: %v", err)
					}
				}()
			}
			r, err := pointToPoint(ctx, sys, what, o.clients, 0, o.duration, progress(sys.name))
			maxRate[sys.name] = r.Rate
			return r, err
		})
		what = "a: 1:1 at 50% of that system's max rate"
		each(what, func(sys *system) (result, error) {
			return pointToPoint(ctx, sys, what, o.clients, maxRate[sys.name]/2, o.duration/2, progress(sys.name))
		})
	}
	if o.scenarios["b"] && o.systems["allspark"] {
		sys, stop, err := start("allspark")
		if err == nil {
			r, err := perUser(ctx, sys, 100, 20, o.duration, progress("per-user"))
			stop()
			add(r, err, "b")
		}
	}
	if o.scenarios["c"] {
		for _, shape := range [][2]int{{1, 1000}, {100, 10}} {
			what := fmt.Sprintf("c: session fan-out, %d x %d members", shape[0], shape[1])
			each(what, func(sys *system) (result, error) {
				if sys.name == "AllSpark" {
					sys = allsparkSystem(sys.srv, sys.base, "dest_session_id")
				}
				return fanOut(ctx, sys, what, shape[0], shape[1], o.duration/2, progress(sys.name))
			})
		}
	}
	if o.scenarios["d"] && o.systems["allspark"] {
		sys, stop, err := start("allspark")
		if err == nil {
			r, err := offlineReplay(ctx, sys, 200, 100)
			stop()
			add(r, err, "d")
		}
	}
	if o.scenarios["e"] {
		each("e", func(sys *system) (result, error) { return idle(ctx, sys, o.idle) })
	}
	if o.scenarios["seed"] && o.systems["allspark"] {
		sys, stop, err := start("allspark")
		if err == nil {
			what := "seed: 50,000 messages in 20 s (2,500/s)"
			r, err := pointToPoint(ctx, sys, what, 100, 2500, 20*time.Second, progress("seed"))
			stop()
			if r.Sent > 0 {
				r.Note = fmt.Sprintf("errors %.2f%% (rejected+lost of %d sent)", 100*float64(r.Errors+r.Lost)/float64(r.Sent), r.Sent)
			}
			add(r, err, what)
		}
	}
	fmt.Fprint(stderr, "\r\033[K")
	md := markdown(results)
	fmt.Fprint(stdout, md)
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	js, _ := json.MarshalIndent(map[string]any{"machine": machine(), "results": results}, "", " ")
	if err := os.WriteFile(filepath.Join(o.out, "results.json"), js, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(o.out, "results.md"), []byte(md), 0o644)
}

var errSkip = fmt.Errorf("skipped")

func set(csv string) map[string]bool {
	m := map[string]bool{}
	for _, s := range strings.Split(csv, ",") {
		if s = strings.TrimSpace(s); s != "" {
			m[s] = true
		}
	}
	return m
}

func machine() string {
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		mem = strings.Fields(strings.SplitN(string(b), "\n", 2)[0])[1] + " kB RAM"
	}
	return fmt.Sprintf("%d cores, %s, %s/%s, %s, %s", runtime.NumCPU(), mem, runtime.GOOS, runtime.GOARCH, runtime.Version(), time.Now().Format("2006-01-02"))
}

func markdown(rs []result) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s. Clients run in the same process on the same cores as the server.\n\n", machine())
	b.WriteString("| scenario | system | sent | accepted | delivered | lost | dup | errors | deliveries/s | p50 ms | p90 ms | p99 ms | max ms | server RSS MB | server CPU % | note |\n")
	b.WriteString("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rs {
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d | %d | %.0f | %.2f | %.2f | %.2f | %.1f | %.0f | %.0f | %s |\n",
			r.Scenario, r.System, r.Sent, r.Promised, r.Delivered, r.Lost, r.Duplicates, r.Errors, r.Rate, r.P50, r.P90, r.P99, r.Max, r.RSSMB, r.CPU, r.Note)
	}
	return b.String()
}
