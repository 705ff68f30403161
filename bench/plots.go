package main

import (
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// The charts written next to results.md. Throughput and latency span four
// orders of magnitude, so their axes are logarithmic: bars are drawn as
// log10(value/floor), with ticks labelled in the real unit.

// plotFiles names the charts writePlots makes, for the README.
func plotFiles() []string { return []string{"throughput.svg", "latency.svg", "rss.svg"} }

// writePlots draws the charts of rs into dir.
func writePlots(dir string, rs []result) error {
	var ok []result
	for _, r := range rs {
		if !strings.HasPrefix(r.Note, "failed") || r.Rate > 0 {
			ok = append(ok, r)
		}
	}
	if err := throughputChart(filepath.Join(dir, "throughput.svg"), ok); err != nil {
		return fmt.Errorf("throughput chart: %w", err)
	}
	if err := latencyChart(filepath.Join(dir, "latency.svg"), ok); err != nil {
		return fmt.Errorf("latency chart: %w", err)
	}
	if err := rssChart(filepath.Join(dir, "rss.svg"), ok); err != nil {
		return fmt.Errorf("rss chart: %w", err)
	}
	return nil
}

// shortLabel names a row's scenario in a few words.
func shortLabel(scenario string) string {
	s := scenario
	switch {
	case strings.HasPrefix(s, "a: 1:1 random pairs"):
		return "a: 1:1 max rate"
	case strings.HasPrefix(s, "a: 1:1 at 50%"):
		return "a: 1:1 at 50% of max"
	case strings.HasPrefix(s, "a: 1:1 across two edges"):
		return "a: 1:1 across 2 edges"
	case strings.HasPrefix(s, "b:"):
		return "b: per-user fan-out"
	case strings.HasPrefix(s, "c:"):
		return "c: fan-out " + strings.TrimSuffix(strings.TrimPrefix(s, "c: session fan-out, "), " members")
	case strings.HasPrefix(s, "d:"):
		return "d: replay (msg/s)"
	case strings.HasPrefix(s, "storm:"):
		return "storm (reconnects/s)"
	case strings.HasPrefix(s, "big:") && strings.Contains(s, "join"):
		return "big: joins/s"
	case strings.HasPrefix(s, "big:"):
		return "big: fan-out"
	case strings.HasPrefix(s, "seed:"):
		return "seed: 2,500/s"
	}
	return s
}

// systemSeries puts AllSpark's one-edge and two-edge rows in one series.
func systemSeries(system string) string {
	if strings.HasPrefix(system, "AllSpark") {
		return "AllSpark"
	}
	return system
}

type series struct {
	name string
	vals []float64 // one per category; 0: none
}

func throughputChart(file string, rs []result) error {
	var cats []string
	var names []string
	val := map[[2]string]float64{}
	for _, r := range rs {
		if r.Rate <= 0 || strings.HasPrefix(r.Scenario, "e:") {
			continue
		}
		sys := systemSeries(r.System)
		c := shortLabel(r.Scenario) + " · " + r.System
		if !slices.Contains(cats, c) {
			cats = append(cats, c)
		}
		if !slices.Contains(names, sys) {
			names = append(names, sys)
		}
		val[[2]string{c, sys}] = r.Rate
	}
	var ss []series
	for _, n := range names {
		s := series{name: n}
		for _, c := range cats {
			s.vals = append(s.vals, val[[2]string{c, n}])
		}
		ss = append(ss, s)
	}
	return barChart(file, "Throughput per scenario and system (deliveries/s unless named)", "per second (log scale)", cats, ss, 100, false)
}

func latencyChart(file string, rs []result) error {
	var cats []string
	p := [3]series{{name: "p50"}, {name: "p90"}, {name: "p99"}}
	for _, r := range rs {
		if r.P99 <= 0 {
			continue
		}
		label, _, _ := strings.Cut(shortLabel(r.Scenario), " (")
		cats = append(cats, label+" · "+r.System)
		for i, v := range []float64{r.P50, r.P90, r.P99} {
			p[i].vals = append(p[i].vals, v)
		}
	}
	return barChart(file, "Latency percentiles, send to receive (storm: kill to sync_done)", "ms (log scale)", cats, p[:], 0.1, true)
}

func rssChart(file string, rs []result) error {
	var cats, names []string
	val := map[[2]string]float64{}
	for _, r := range rs {
		if r.KBPerConn <= 0 {
			continue
		}
		c := strings.TrimPrefix(r.Scenario, "e: ")
		if r.Sent > 0 { // what ran, which the file limit may have capped
			c = fmt.Sprintf("%d connections", r.Sent)
		}
		if !slices.Contains(cats, c) {
			cats = append(cats, c)
		}
		if !slices.Contains(names, r.System) {
			names = append(names, r.System)
		}
		val[[2]string{c, r.System}] = r.KBPerConn
	}
	var ss []series
	for _, n := range names {
		s := series{name: n}
		for _, c := range cats {
			s.vals = append(s.vals, val[[2]string{c, n}])
		}
		ss = append(ss, s)
	}
	return barChart(file, "Server RSS per idle connection", "KB per connection", cats, ss, 0, true)
}

// barChart draws horizontal bars, one group per category when grouped,
// else one bar per category (each category has a value in one series
// only, whose colour it takes). With floor > 0 the value axis is
// logarithmic from floor up.
func barChart(file, title, unit string, cats []string, ss []series, floor float64, grouped bool) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = unit
	p.Legend.Top = true
	if len(cats) == 0 || len(ss) == 0 {
		p.Title.Text += ": no data in this run"
		return p.Save(8*vg.Inch, 2*vg.Inch, file)
	}
	tr := func(v float64) float64 { return v }
	if floor > 0 {
		tr = func(v float64) float64 {
			if v <= floor {
				return 0
			}
			return math.Log10(v / floor)
		}
	}
	p.Add(plotter.NewGrid())
	perCat := 1
	if grouped {
		perCat = len(ss)
	}
	w := vg.Points(min(14, 42/float64(perCat)))
	top := 0.0
	for i, s := range ss {
		vals := make(plotter.Values, len(s.vals))
		for j, v := range s.vals {
			k := len(vals) - 1 - j // categories top to bottom in run order
			vals[k] = tr(v)
			top = max(top, vals[k])
		}
		b, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return err
		}
		b.Horizontal = true
		b.LineStyle.Width = 0
		b.Color = plotutil.Color(i)
		if grouped {
			b.Offset = vg.Length(float64(len(ss)-1)/2-float64(i)) * w // first series on top
		}
		p.Add(b)
		p.Legend.Add(s.name, b)
	}
	rev := slices.Clone(cats)
	slices.Reverse(rev)
	p.NominalY(rev...)
	p.X.Min = 0
	if floor > 0 {
		var ticks plot.ConstantTicks
		for e := 0; float64(e) <= math.Ceil(top); e++ {
			ticks = append(ticks, plot.Tick{Value: float64(e), Label: human(floor * math.Pow(10, float64(e)))})
		}
		p.X.Tick.Marker = ticks
		p.X.Max = math.Ceil(top)
	}
	p.X.Max = max(p.X.Max, top) * 1.25 // room for the legend
	h := vg.Length(float64(len(cats))*float64(perCat)*float64(w)*1.5) + 1.5*vg.Inch
	return p.Save(9*vg.Inch, h, file)
}

// human formats a tick: 0.1, 1, 10, 100, 1k, 10k, 100k, 1M.
func human(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%gM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%gk", v/1e3)
	}
	return fmt.Sprintf("%g", v)
}
