package edge_test

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// metricsText is what e's MetricsHandler serves (cmd/edge puts it on the
// ops listener).
func metricsText(t *testing.T, e *testEdge) io.Reader {
	t.Helper()
	rec := httptest.NewRecorder()
	e.srv.MetricsHandler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("metrics: %d", rec.Code)
	}
	return rec.Body
}

// scrape reads the metrics into series -> value.
func scrape(t *testing.T, e *testEdge) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	sc := bufio.NewScanner(metricsText(t, e))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// Acceptance 4 (issue 7): the counters move with traffic.
func TestMetricsMove(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	before := scrape(t, a)
	alice := c.dial(a, "alice", "alice")
	bob := c.dial(b, "bob", "bob")
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": 1})
	if s := alice.Until(t, wait, isSent); s.Status != "delivered" {
		t.Fatalf("got %s", s.Raw)
	}
	bob.Close()
	waitConns(t, b, 0)
	alice.Send(t, map[string]any{"dest_id": "bob", "payload": 2})
	if s := alice.Until(t, wait, isSent); s.Status != "stored" {
		t.Fatalf("got %s", s.Raw)
	}
	alice.SendRaw(t, "garbage")
	alice.Until(t, wait, func(f wstest.Frame) bool { return f.Type == "error" })
	c.dial(a, "bob", "bob") // replays the stored message from edge A

	want := map[string]float64{
		`allspark_connections`:                     2,
		`allspark_frames_in_total{kind="message"}`: 2,
		`allspark_frames_in_total{kind="bad"}`:     1,
		`allspark_frames_in_total{kind="ack"}`:     1, // bob acks his replayed message
		`allspark_sent_total{status="delivered"}`:  1,
		`allspark_sent_total{status="stored"}`:     1,
		`allspark_inbox_stored_total`:              1,
		`allspark_inbox_replayed_total`:            1,
		`allspark_slow_consumer_disconnects_total`: 0,
		`allspark_nats_reconnects_total`:           0,
	}
	testutil.Eventually(t, wait, func() error {
		after := scrape(t, a)
		for k, v := range want {
			if got := after[k] - before[k]; got != v && !(k == "allspark_connections" && after[k] == v) {
				return fmt.Errorf("%s moved by %v, want %v", k, got, v)
			}
		}
		return nil
	})
	if n := scrape(t, b)[`allspark_ack_latency_seconds_count`]; n != 1 {
		t.Fatalf("edge B observed %v ack latencies, want 1", n)
	}
	if scrape(t, a)["go_goroutines"] == 0 {
		t.Fatal("runtime metrics missing")
	}
}

// Issue 11: the kinds a counter's help text names are the label values it
// has (every kind is resolved at start, so all are exported at zero).
func TestMetricKindsMatchTheirHelp(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	body := metricsText(t, a)
	help := map[string][]string{}   // metric -> kinds its help names
	labels := map[string][]string{} // metric -> kind label values exported
	helpRe := regexp.MustCompile(`^# HELP (\S+) .*by kind \(([^)]*)\)`)
	seriesRe := regexp.MustCompile(`^(\S+)\{kind="([^"]*)"\}`)
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if m := helpRe.FindStringSubmatch(sc.Text()); m != nil {
			help[m[1]] = strings.Split(m[2], ", ")
		} else if m := seriesRe.FindStringSubmatch(sc.Text()); m != nil {
			labels[m[1]] = append(labels[m[1]], m[2])
		}
	}
	for _, name := range []string{"allspark_frames_in_total", "allspark_frames_out_total"} {
		named, got := slices.Sorted(slices.Values(help[name])), slices.Sorted(slices.Values(labels[name]))
		if len(named) == 0 || !slices.Equal(named, got) {
			t.Errorf("%s: help names kinds %v, series have %v", name, named, got)
		}
	}
}

// The public handler does not publish the metrics (they go on the ops
// listener): GET /metrics is an unknown endpoint there.
func TestMetricsNotPublic(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	resp, err := http.Get(a.http.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("public GET /metrics: %d, want 404", resp.StatusCode)
	}
}
