// Package testutil starts real NATS servers for tests and polls for
// conditions with a deadline instead of sleeping.
package testutil

import (
	"context"
	"fmt"
	"github.com/allspark-rt/allspark/internal/fdlimit"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
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

// RunCluster starts n JetStream servers routed into one cluster and waits
// until it can place a stream with n replicas. A clustered server is not
// ready until it meets its peers, so they start together on route ports
// reserved beforehand.
func RunCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	ports := make([]int, n)
	routes := make([]string, n)
	for i := range n {
		ports[i] = FreePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	servers := make([]*server.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		cfg := bus.ServerConfig{
			Name: fmt.Sprintf("n%d", i), Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
			ClusterName: "test-cluster", ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = bus.StartServer(cfg, nil)
		}()
	}
	wg.Wait()
	for i, s := range servers {
		if s != nil {
			t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		}
		if errs[i] != nil {
			t.Fatalf("start cluster server %d: %v", i, errs[i])
		}
	}
	nc := Connect(t, ClusterURL(servers))
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "cluster_ready", Subjects: []string{"cluster.ready"}, Replicas: n, Storage: jetstream.MemoryStorage})
		return err
	})
	nc.Close()
	return servers
}

// ClusterURL is a comma-separated client URL list for servers.
func ClusterURL(servers []*server.Server) string {
	var u string
	for i, s := range servers {
		if i > 0 {
			u += ","
		}
		u += s.ClientURL()
	}
	return u
}

// FreePort returns a loopback TCP port that was free a moment ago, for
// processes that must be told their port before they start.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// RaiseFileLimit lifts the open-file limit to want, or skips the test
// (saying why) where the machine does not allow that many.
func RaiseFileLimit(t testing.TB, want uint64) {
	t.Helper()
	if got, why := fdlimit.Raise(want); got < want {
		t.Skipf("needs %d open files: %s", want, why)
	}
}

// CounterValue sums the series of counter name in reg, failing the test if
// reg has no such metric.
func CounterValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
