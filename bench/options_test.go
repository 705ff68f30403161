package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Only a run of every scenario and system writes the committed table; any
// other goes to the partial directory, and may not be pointed at the
// committed one.
func TestPartialRunNeverWritesCommittedResults(t *testing.T) {
	cases := []struct {
		args    []string
		out     string
		wantErr string
	}{
		{nil, committedResults, ""},
		{[]string{"-scenario", "all", "-duration", "20s"}, committedResults, ""},
		{[]string{"-scenario", "a,b,c,d,e,ops,storm,big,seed", "-systems", "all"}, committedResults, ""},
		{[]string{"-scenario", "a,b,c,d,e,seed", "-systems", "all"}, partialResults, ""},
		{[]string{"-scenario", "seed"}, partialResults, ""},
		{[]string{"-scenario", "seed", "-duration", "1s"}, partialResults, ""},
		{[]string{"-systems", "allspark,nats"}, partialResults, ""},
		{[]string{"-scenario", "seed", "-out", "bench/results"}, "", "committed full table"},
		{[]string{"-scenario", "seed", "-out", "./bench/results/"}, "", "committed full table"},
		{[]string{"-scenario", "seed", "-out", "/tmp/x"}, "/tmp/x", ""},
		{[]string{"-out", "/tmp/full"}, "/tmp/full", ""},
	}
	for _, tc := range cases {
		o, err := parseOptions(tc.args, io.Discard)
		switch {
		case tc.wantErr != "":
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%v: err %v, want %q", tc.args, err, tc.wantErr)
			}
		case err != nil:
			t.Errorf("%v: %v", tc.args, err)
		case o.out != tc.out:
			t.Errorf("%v: results go to %s, want %s", tc.args, o.out, tc.out)
		}
	}
}

// -duration is honoured by every timed scenario, seed included, and
// refused loudly where nothing would use it.
func TestDurationIsHonouredOrRefused(t *testing.T) {
	label, rate := seedPlan(20 * time.Second)
	if label != "seed: 50,000 messages in 20 s (2,500/s)" || rate != 2500 {
		t.Fatalf("default seed plan: %q at %v/s", label, rate)
	}
	if label, _ := seedPlan(1500 * time.Millisecond); label != "seed: 3,750 messages in 1.5 s (2,500/s)" {
		t.Fatalf("1.5 s seed plan: %q", label)
	}
	o, err := parseOptions([]string{"-scenario", "seed", "-duration", "5s"}, io.Discard)
	if err != nil || o.duration != 5*time.Second {
		t.Fatalf("seed with -duration 5s: %+v %v", o, err)
	}

	for _, args := range [][]string{{"-scenario", "d", "-duration", "5s"}, {"-scenario", "d,e", "-duration", "1s"}, {"-scenario", "storm,big", "-duration", "1s"}} {
		if _, err := parseOptions(args, io.Discard); err == nil || !strings.Contains(err.Error(), "-duration does not apply") {
			t.Errorf("%v: err %v, want a refusal", args, err)
		}
	}
	if _, err := parseOptions([]string{"-scenario", "d"}, io.Discard); err != nil {
		t.Errorf("d without -duration: %v", err)
	}
	var note strings.Builder
	if _, err := parseOptions([]string{"-scenario", "a,d", "-duration", "5s"}, &note); err != nil || !strings.Contains(note.String(), "does not apply to scenario d") {
		t.Errorf("a,d with -duration: err %v, note %q", err, note.String())
	}
	if _, err := parseOptions([]string{"-duration", "0s"}, io.Discard); err == nil {
		t.Error("-duration 0s accepted")
	}
}

// A misspelt scenario or system is an error, not an empty run that
// writes an empty table.
func TestUnknownSelectionIsRefused(t *testing.T) {
	for _, args := range [][]string{{"-scenario", "sed"}, {"-scenario", ","}, {"-systems", "allspark,centrifuge"}, {"extra"},
		{"-idle", "10k"}, {"-idle", "0"}, {"-big", "1000001"}, {"-storm", "0"}} {
		if _, err := parseOptions(args, io.Discard); err == nil {
			t.Errorf("%v accepted", args)
		}
	}
}

func TestWriteResults(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "out")
	rs := []result{{Scenario: "seed: 2,500 messages in 1 s (2,500/s)", System: "AllSpark", Sent: 2500}}
	if err := writeResults(dir, markdown(rs), rs); err != nil {
		t.Fatal(err)
	}
	md, err1 := os.ReadFile(filepath.Join(dir, "results.md"))
	js, err2 := os.ReadFile(filepath.Join(dir, "results.json"))
	if err1 != nil || err2 != nil || !strings.Contains(string(md), "| seed: 2,500 messages") || !strings.Contains(string(js), `"sent": 2500`) {
		t.Fatalf("md %q (%v), json %q (%v)", md, err1, js, err2)
	}
}

// A full set of rows gives three SVG charts; a run with no idle rows still
// writes an (empty, labelled) RSS chart, so the README's links never break.
func TestWritePlots(t *testing.T) {
	dir := t.TempDir()
	rs := []result{
		{Scenario: "a: 1:1 random pairs, 200 clients, max rate", System: "AllSpark", Rate: 34467, P50: 55, P90: 100, P99: 148},
		{Scenario: "a: 1:1 random pairs, 200 clients, max rate", System: "NATS core", Rate: 350072, P50: 25, P90: 57, P99: 112},
		{Scenario: "a: 1:1 across two edges on one NATS, 200 clients, max rate", System: "AllSpark, 2 edges", Rate: 30000, P50: 0.6, P90: 4, P99: 19},
		{Scenario: "d: store 20000 then replay on reconnect", System: "raw JetStream", Rate: 31796, P50: 345, P90: 579, P99: 632},
		{Scenario: "e: 10000 idle connections", System: "AllSpark", KBPerConn: 25.8},
		{Scenario: "e: 10000 idle connections", System: "NATS core", KBPerConn: 36.9},
		{Scenario: "storm: 20000 clients", System: "AllSpark, 2 edges", Note: "failed: x"},
	}
	if err := writePlots(dir, rs); err != nil {
		t.Fatal(err)
	}
	for _, f := range plotFiles() {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil || !strings.Contains(string(b), "<svg") {
			t.Fatalf("%s: %v %.100q", f, err, b)
		}
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "throughput.svg")); !strings.Contains(string(b), "a: 1:1 across 2 edges") || !strings.Contains(string(b), "100k") {
		t.Errorf("throughput chart lacks a category or its log ticks")
	}
	empty := t.TempDir()
	if err := writePlots(empty, rs[:1]); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(empty, "rss.svg")); !strings.Contains(string(b), "no data in this run") {
		t.Errorf("empty RSS chart does not say so")
	}
}
