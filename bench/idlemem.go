package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// memStats is what scenario e reads from the edge's pprof (heap?debug=1
// ends with runtime.MemStats, some as "name = inuse / sys"; goroutine?debug=1 starts with the count), to
// say where the RSS of an idle connection goes.
type memStats struct {
	heapInuse  int64 // bytes in in-use heap spans: live objects and their fragmentation
	heapAlloc  int64 // bytes of live (and not yet swept) objects
	stackInuse int64 // goroutine stacks
	other      int64 // MSpanInuse + MCacheInuse + GCSys + OtherSys + BuckHashSys: runtime metadata
	goroutines int64
}

// memStatsOf reads s's memory statistics after a forced GC (heap?gc=1), so
// heapAlloc is the live heap. Only AllSpark serves pprof; ok is false for
// the other systems.
func (s *server) memStatsOf() (m memStats, ok bool) {
	if s.pprof == "" {
		return m, false
	}
	body, err := httpGet(fmt.Sprintf("http://%s/debug/pprof/heap?debug=1&gc=1", s.pprof))
	if err != nil {
		return m, false
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, found := strings.Cut(strings.TrimPrefix(sc.Text(), "# "), " = ")
		if !found {
			continue
		}
		// "Stack = inuse / sys", "MSpan = inuse / sys": the first number.
		val, _, _ = strings.Cut(val, "/")
		n, err := strconv.ParseInt(strings.TrimSpace(val), 10, 64)
		if err != nil {
			continue
		}
		switch name {
		case "HeapInuse":
			m.heapInuse = n
		case "HeapAlloc":
			m.heapAlloc = n
		case "Stack":
			m.stackInuse = n
		case "MSpan", "MCache", "GCSys", "OtherSys", "BuckHashSys":
			m.other += n
		}
	}
	g, err := httpGet(fmt.Sprintf("http://%s/debug/pprof/goroutine?debug=1", s.pprof))
	if err != nil {
		return m, false
	}
	first, _, _ := strings.Cut(g, "\n")
	if _, v, ok := strings.Cut(first, "total "); ok {
		m.goroutines, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	}
	return m, true
}

// perConn is the growth from before to after, per connection, in KB (and
// goroutines per connection).
func (m memStats) perConn(before memStats, n int) string {
	kb := func(a, b int64) float64 { return float64(a-b) / 1024 / float64(n) }
	return fmt.Sprintf("live heap %.1f KB (heap in use %.1f KB), stacks %.1f KB, runtime metadata %.1f KB, %.2f goroutines",
		kb(m.heapAlloc, before.heapAlloc), kb(m.heapInuse, before.heapInuse), kb(m.stackInuse, before.stackInuse),
		kb(m.other, before.other), float64(m.goroutines-before.goroutines)/float64(n))
}

// saveProfiles writes the edge's heap (inuse, after a GC) and goroutine
// profiles to dir, named for the connection count, for `go tool pprof`.
func (s *server) saveProfiles(dir string, n int) error {
	if s.pprof == "" || dir == "" {
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create profile dir: %w", err)
	}
	for _, p := range []struct{ path, file string }{
		{"heap?gc=1", fmt.Sprintf("idle-%d-heap.pprof", n)},
		{"goroutine", fmt.Sprintf("idle-%d-goroutine.pprof", n)},
	} {
		body, err := httpGet(fmt.Sprintf("http://%s/debug/pprof/%s", s.pprof, p.path))
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, p.file), []byte(body), 0o644); err != nil {
			return fmt.Errorf("write profile: %w", err)
		}
	}
	return nil
}

func httpGet(url string) (string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return "", fmt.Errorf("get %s: %w", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", fmt.Errorf("read %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("get %s: %s", url, resp.Status)
	}
	return string(b), nil
}
