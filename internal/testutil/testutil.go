// Package testutil starts real NATS servers for tests and polls for
// conditions with a deadline instead of sleeping.
package testutil

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Logger returns a logger for tests: quiet unless ALLSPARK_TEST_LOG=debug|info.
func Logger(t testing.TB) *slog.Logger {
	t.Helper()
	var w io.Writer = io.Discard
	level := slog.LevelWarn
	switch os.Getenv("ALLSPARK_TEST_LOG") {
	case "debug":
		w, level = os.Stderr, slog.LevelDebug
	case "info":
		w, level = os.Stderr, slog.LevelInfo
	case "warn":
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level})).With("test", t.Name())
}

// RunNATS starts a JetStream-enabled nats-server on a random loopback port
// with its store in a temp dir, shut down at the end of the test.
func RunNATS(t testing.TB) *server.Server {
	t.Helper()
	return RunNATSAt(t, t.TempDir(), "127.0.0.1:0")
}

// RunNATSAt starts a server on a given store dir and address, so a test can
// restart one on the same store.
func RunNATSAt(t testing.TB, dir, listen string) *server.Server {
	t.Helper()
	s, err := bus.StartServer(bus.ServerConfig{Name: "test-" + fmt.Sprint(time.Now().UnixNano()), Listen: listen, StoreDir: dir}, nil)
	if err != nil {
		t.Fatalf("start nats: %v", err)
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

// Connect opens a plain nats.go connection closed at the end of the test.
func Connect(t testing.TB, url string) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatalf("connect nats: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Eventually polls f every few milliseconds until it returns nil, and fails
// the test with f's last error once timeout has passed.
func Eventually(t testing.TB, timeout time.Duration, f func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("condition not met after %s: %v", timeout, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
