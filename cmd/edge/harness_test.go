package main

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// runningEdge is an edge started through run(), as `edge serve` would be.
type runningEdge struct {
	addr, ops, natsURL string // from its log
	mu                 sync.Mutex
	log                []string // guarded by mu
}

func (e *runningEdge) logged(substr string) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, l := range e.log {
		if strings.Contains(l, substr) {
			return l
		}
	}
	return ""
}

// startEdge runs the edge with env until the end of the test, waiting for
// its "ready" log line; the test fails if run returns an error.
func startEdge(t *testing.T, env map[string]string) *runningEdge {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, envOf(env), pw); pw.Close() }()
	e := &runningEdge{}
	ready := make(chan struct{})
	readyRe := regexp.MustCompile(`msg="allspark edge ready" listen=(\S+) .*ops=(\S+)`)
	natsRe := regexp.MustCompile(`msg="embedded NATS with JetStream running" client_url=(\S+)`)
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			e.mu.Lock()
			e.log = append(e.log, line)
			e.mu.Unlock()
			if m := natsRe.FindStringSubmatch(line); m != nil {
				e.natsURL = m[1]
			}
			if m := readyRe.FindStringSubmatch(line); m != nil {
				e.addr, e.ops = m[1], m[2]
				close(ready)
			}
		}
	}()
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("edge: %v", err)
			}
		case <-time.After(60 * time.Second):
			t.Error("edge did not stop within 60s")
		}
		<-scanned
	}
	select {
	case <-ready:
	case err := <-done:
		pw.Close()
		<-scanned
		e.mu.Lock()
		defer e.mu.Unlock()
		t.Fatalf("run returned before ready: %v\n%s", err, strings.Join(e.log, "\n"))
	case <-time.After(60 * time.Second):
		stop()
		t.Fatal("edge not ready within 60s")
	}
	t.Cleanup(stop)
	return e
}

func slogDiscard() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
