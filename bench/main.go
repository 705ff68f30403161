// Command bench measures AllSpark side by side with raw NATS (the
// near-limit reference) and Centrifugo v6, with its own loopback clients:
//
//	go run ./bench -scenario all -duration 20s
//
// Scenarios: a (1:1 random pairs, max rate, then 50% of it), b (per-user
// fan-out, 3 devices), c (session fan-out: 1x1000 and 100x10), d (offline
// store then replay), e (idle connections: RSS per connection), seed
// (AllSparkRT's 2,500 messages/s; 50,000 in the default 20 s). Results: a
// Markdown table on stdout, and results.md and results.json in bench/results
// for a full run (every scenario, every system) or in -out (default
// bench/results/partial) for any other. See bench/README.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
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

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, stderr)
	if err != nil {
		return err
	}
	h, cleanup, err := newHarness(ctx, o, stderr)
	if err != nil {
		return err
	}
	defer cleanup()
	h.runScenarios()
	fmt.Fprint(stderr, "\r\033[K")
	md := markdown(h.results)
	fmt.Fprint(stdout, md)
	if err := writeResults(o.out, md, h.results); err != nil {
		return err
	}
	fmt.Fprintf(stderr, "results written to %s\n", o.out)
	return nil
}

// writeResults saves the table and its JSON in dir.
func writeResults(dir, md string, results []result) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create results dir: %w", err)
	}
	js, err := json.MarshalIndent(map[string]any{"machine": machine(), "results": results}, "", " ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), js, 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.md"), []byte(md), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return writePlots(dir, results)
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
	b.WriteString("\n### Targets of issue 12, against this run\n\n")
	b.WriteString(targetsTable(rs))
	return b.String()
}
