package main

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/edgetest"
	"github.com/allspark-rt/allspark/internal/testutil"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer // guarded by mu
}

func (s *syncBuf) Write(p []byte) (int, error) { s.mu.Lock(); defer s.mu.Unlock(); return s.b.Write(p) }
func (s *syncBuf) String() string              { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

func noEnv(string) string { return "" }

// failingReader fails the test if -listen ever reads stdin.
type failingReader struct{ t *testing.T }

func (f failingReader) Read([]byte) (int, error) {
	f.t.Error("-listen read stdin")
	return 0, fmt.Errorf("read")
}

// The walkthrough: Bob listens without stdin, Alice sends and sees
// delivered, Bob prints the message.
func TestListenAndSend(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	bobOut, bobErr := &syncBuf{}, &syncBuf{}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan int)
	go func() {
		done <- run(ctx, []string{"-key", c.AuthKey("bob", "bob", time.Hour), "-listen", e.URL()}, noEnv, failingReader{t}, bobOut, bobErr)
	}()
	testutil.Eventually(t, 20*time.Second, func() error {
		if !strings.Contains(bobErr.String(), "connected") {
			return fmt.Errorf("bob not connected: %q", bobErr.String())
		}
		return nil
	})
	var aliceOut, aliceErr bytes.Buffer
	code := run(context.Background(), []string{"-key", c.AuthKey("alice", "alice", time.Hour), "-send", `{"id":"c-1","dest_id":"bob","payload":"hi bob"}`, e.URL()},
		noEnv, strings.NewReader(""), &aliceOut, &aliceErr)
	if code != exitOK || !strings.Contains(aliceOut.String(), `"status":"delivered"`) || !strings.Contains(aliceOut.String(), `"id":"c-1"`) {
		t.Fatalf("alice: exit %d, out %q, err %q", code, aliceOut.String(), aliceErr.String())
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if !strings.Contains(bobOut.String(), `"payload":"hi bob"`) {
			return fmt.Errorf("bob printed %q", bobOut.String())
		}
		return nil
	})
	stop()
	if code := <-done; code != exitOK {
		t.Fatalf("listen exit %d", code)
	}
}

func TestExitCodes(t *testing.T) {
	c := edgetest.New(t)
	e := c.Edge("edge-a")
	key := c.AuthKey("alice", "alice", time.Hour)
	for _, tc := range []struct {
		name  string
		args  []string
		stdin string
		want  int
		out   string
	}{
		{"stdin frames", []string{"-key", key, e.URL()}, `{"dest_id":"bob","payload":1}` + "\n" + `{"dest_id":"carol","payload":2}` + "\n", exitOK, `"status":"stored"`},
		{"rejected", []string{"-key", key, e.URL()}, `{"dest_id":"bad\u0001id"}`, exitRejected, `"code":"bad_id"`},
		{"not a message", []string{"-key", key, e.URL()}, `{"type":"sync","session_id":"x"}`, exitUsage, ""},
		{"not json", []string{"-key", key, "-send", "hello", e.URL()}, "", exitUsage, ""},
		{"no key", []string{e.URL()}, "", exitUsage, ""},
		{"bad key", []string{"-key", "nope", e.URL()}, "", exitConnect, ""},
		{"old ws URL form", []string{"-send", `{"dest_id":"bob"}`, strings.Replace(e.URL(), "http", "ws", 1) + "/v1/ws?auth_key=" + key}, "", exitOK, `"status":"stored"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(context.Background(), append([]string{"-timeout", "10s"}, tc.args...), noEnv, strings.NewReader(tc.stdin), &out, &errb)
			if code != tc.want || !strings.Contains(out.String(), tc.out) {
				t.Fatalf("exit %d (want %d), out %q, err %q", code, tc.want, out.String(), errb.String())
			}
		})
	}
}
