package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// allScenarios and allSystems list every one, in the order they run. A
// run of all of them is a full run: only a full run writes the committed
// table.
func allScenarios() []string {
	return []string{"a", "b", "c", "d", "e", "ops", "storm", "big", "seed"}
}
func allSystems() []string { return []string{"allspark", "nats", "centrifugo"} }

// untimed reports the scenarios that do a fixed amount of work, so
// -duration does not apply to them.
func untimed(scenario string) bool {
	return scenario == "d" || scenario == "e" || scenario == "ops" || scenario == "storm" || scenario == "big"
}

const (
	committedResults = "bench/results"         // the full table the README quotes
	partialResults   = "bench/results/partial" // any other run (ignored by git)
)

type options struct {
	scenarios map[string]bool
	duration  time.Duration
	clients   int
	idle      []int // connection counts of scenario e
	storm     int   // clients of the reconnect storm
	big       int   // members of the big session
	bigAnon   bool  // the big session's members join anonymously (no presence)
	systems   map[string]bool
	out       string
	cache     string
	profile   string
	rates     []int  // scenario a: fixed total rates to run as well (-rates)
	idleProf  string // scenario e: where to save the edge's heap and goroutine profiles
	// clientProfile: a CPU profile of the harness itself (its clients)
	// during the 1 x 1000 session fan-out, to see whether they are the
	// bottleneck.
	clientProfile string
}

// full reports whether the run covers every scenario and system, the only
// kind of run whose table may replace the committed one.
func (o options) full() bool {
	return len(o.scenarios) == len(allScenarios()) && len(o.systems) == len(allSystems())
}

// parseOptions reads the flags and refuses combinations that would
// silently do something else than asked.
func parseOptions(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	scen := fs.String("scenario", "all", "comma-separated: "+strings.Join(allScenarios(), ",")+" or all")
	dur := fs.Duration("duration", 20*time.Second, "length of each timed run (a, b, c, seed; d, e, ops, storm and big are untimed)")
	clients := fs.Int("clients", 200, "clients in the 1:1 scenario")
	ratesN := fs.String("rates", "", "comma-separated total rates (messages/s) at which scenario a also runs every system, for a latency-against-load curve (e.g. 5000,10000,20000)")
	idleN := fs.String("idle", "10000,100000", "comma-separated connection counts of the idle scenario e (the harness raises RLIMIT_NOFILE where it may)")
	storm := fs.Int("storm", 20000, "clients of the reconnect storm (scenario storm)")
	big := fs.Int("big", 100000, "members of the big session on 2 edges (scenario big; at most 1000000, the largest ALLSPARK_SESSION_MAX_MEMBERS)")
	bigAnon := fs.Bool("big-anonymous", false, "the big session's members join anonymously, so connecting them sends no presence frames")
	systems := fs.String("systems", strings.Join(allSystems(), ","), "systems to measure")
	out := fs.String("out", "", "directory for results.md and results.json (default: "+committedResults+
		" for a full run, "+partialResults+" for any other; a partial run may not write "+committedResults+")")
	home, _ := os.UserCacheDir()
	cache := fs.String("cache", filepath.Join(home, "allspark-bench"), "where Centrifugo is installed")
	profile := fs.String("profile", "", "save a CPU profile of AllSpark during the 1:1 max-rate run (a), the 1 x 1000 session fan-out (c) and the first 2 s of the replay (d) to this file (c and d add -c, -d to the name when another of them runs too)")
	idleProf := fs.String("idle-profile", "", "save AllSpark's heap and goroutine profiles with the idle connections open (scenario e) to this directory")
	clientProfile := fs.String("client-profile", "", "save a CPU profile of the harness's own clients during the 1 x 1000 session fan-out (c) to this file")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })

	o := options{duration: *dur, clients: *clients, storm: *storm, big: *big, bigAnon: *bigAnon, cache: *cache, profile: *profile, idleProf: *idleProf, clientProfile: *clientProfile}
	var err error
	if *ratesN != "" {
		if o.rates, err = counts("rates", *ratesN); err != nil {
			return options{}, err
		}
	}
	if o.idle, err = counts("idle", *idleN); err != nil {
		return options{}, err
	}
	if o.storm < 1 || o.big < 2 || o.big > 1_000_000 {
		return options{}, fmt.Errorf("-storm must be positive and -big 2..1000000, got %d and %d", o.storm, o.big)
	}
	if o.scenarios, err = choose("scenario", *scen, allScenarios()); err != nil {
		return options{}, err
	}
	if o.systems, err = choose("systems", *systems, allSystems()); err != nil {
		return options{}, err
	}
	if o.duration <= 0 {
		return options{}, fmt.Errorf("-duration must be positive, got %s", o.duration)
	}
	if given["duration"] {
		if err := checkDuration(o.scenarios, stderr); err != nil {
			return options{}, err
		}
	}
	if o.out, err = outDir(*out, o.full()); err != nil {
		return options{}, err
	}
	return o, nil
}

// choose parses a comma-separated selection of known names ("all": every one).
func choose(flagName, csv string, known []string) (map[string]bool, error) {
	m := map[string]bool{}
	for _, s := range strings.Split(csv, ",") {
		switch s = strings.TrimSpace(s); {
		case s == "":
		case s == "all":
			for _, k := range known {
				m[k] = true
			}
		case slices.Contains(known, s):
			m[s] = true
		default:
			return nil, fmt.Errorf("-%s: unknown %q (want %s or all)", flagName, s, strings.Join(known, ","))
		}
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("-%s: nothing selected", flagName)
	}
	return m, nil
}

// counts parses a comma-separated list of positive integers.
func counts(flagName, csv string) ([]int, error) {
	var out []int
	for _, s := range strings.Split(csv, ",") {
		if s = strings.TrimSpace(s); s == "" {
			continue
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: want positive counts, got %q", flagName, s)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-%s: nothing selected", flagName)
	}
	return out, nil
}

// checkDuration refuses an explicit -duration when no chosen scenario is
// timed, and says which chosen ones ignore it.
func checkDuration(scenarios map[string]bool, stderr io.Writer) error {
	var ignored []string
	for _, s := range allScenarios() {
		if scenarios[s] && untimed(s) {
			ignored = append(ignored, s)
		}
	}
	if len(ignored) == len(scenarios) {
		return fmt.Errorf("-duration does not apply to scenario %s (a fixed amount of work); leave it out", strings.Join(ignored, ","))
	}
	if len(ignored) > 0 {
		fmt.Fprintf(stderr, "note: -duration does not apply to scenario %s (a fixed amount of work)\n", strings.Join(ignored, ","))
	}
	return nil
}

// outDir picks where results go. The committed table is only ever
// replaced by a full run.
func outDir(out string, full bool) (string, error) {
	switch {
	case out == "" && full:
		return committedResults, nil
	case out == "":
		return partialResults, nil
	case !full && samePath(out, committedResults):
		return "", fmt.Errorf("-out %s holds the committed full table; a partial run (not every scenario and system) may not replace it: "+
			"leave -out unset (it writes %s) or choose another directory", out, partialResults)
	}
	return out, nil
}

func samePath(a, b string) bool {
	aa, err1 := filepath.Abs(a)
	bb, err2 := filepath.Abs(b)
	return err1 == nil && err2 == nil && aa == bb
}

// seedPlan is AllSparkRT's headline load, 2,500 messages per second, over
// d (50,000 messages in the default 20 s).
func seedPlan(d time.Duration) (label string, rate float64) {
	const seedRate = 2500
	n := int64(seedRate * d.Seconds())
	return fmt.Sprintf("seed: %s messages in %s (2,500/s)", thousands(n), seconds(d)), seedRate
}

// thousands formats n with comma separators: 50000 -> "50,000".
func thousands(n int64) string {
	s := fmt.Sprint(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// seconds formats d as the table has always shown it: "20 s", "1.5 s".
func seconds(d time.Duration) string {
	return strings.TrimSuffix(strings.TrimRight(fmt.Sprintf("%.3f", d.Seconds()), "0"), ".") + " s"
}
