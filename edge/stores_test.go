package edge_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// startEdge builds an edge on url and starts it within ctx, returning it
// (to Close) even when Start fails.
func startEdge(ctx context.Context, t testing.TB, c *cluster, url string, cfg edge.Config) (*edge.Server, error) {
	nc, err := nats.Connect(url, nats.Name(cfg.ID), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	t.Cleanup(nc.Close)
	srv, err := edge.New(cfg, edge.Deps{NATS: nc, Keys: c.keys, Logger: testutil.Logger(t)})
	if err != nil {
		return nil, err
	}
	t.Cleanup(srv.Close)
	return srv, srv.Start(ctx)
}

// More replicas than servers can never be placed: Start fails at once with
// the setting to change, instead of retrying until its context ends.
func TestStartFailsClearlyWhenReplicasExceedServers(t *testing.T) {
	c := newCluster(t)
	cfg := testConfig("edge-r3", "http://127.0.0.1:1")
	cfg.StreamReplicas = 3
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := startEdge(ctx, t, c, c.url, cfg)
	if err == nil {
		t.Fatal("an edge asking 3 replicas of a single server started")
	}
	if errors.Is(err, context.DeadlineExceeded) || ctx.Err() != nil {
		t.Fatalf("Start retried until its context ended: %v", err)
	}
	if !strings.Contains(err.Error(), "ALLSPARK_STREAM_REPLICAS=3") {
		t.Fatalf("error does not name the setting: %v", err)
	}
	t.Logf("error: %v", err)
}

// startFreshCluster starts n clustered servers together and returns as soon
// as each accepts clients, without waiting for JetStream to be usable: the
// state an edge meets when it starts with its NATS cluster.
func startFreshCluster(t testing.TB, n int) []*server.Server {
	t.Helper()
	routes := make([]string, n)
	ports := make([]int, n)
	for i := range n {
		ports[i] = testutil.FreePort(t)
		routes[i] = fmt.Sprintf("nats-route://127.0.0.1:%d", ports[i])
	}
	servers := make([]*server.Server, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			servers[i], errs[i] = bus.StartServer(bus.ServerConfig{
				Name: fmt.Sprintf("fresh-%d", i), Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
				ClusterName: "fresh", ClusterListen: fmt.Sprintf("127.0.0.1:%d", ports[i]), Routes: routes,
			}, nil)
		}()
	}
	wg.Wait()
	for i, s := range servers {
		if s != nil {
			t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
		}
		if errs[i] != nil {
			t.Fatalf("start server %d: %v", i, errs[i])
		}
	}
	return servers
}

// Issue 11 acceptance 7: three edges started together on a fresh three-server
// cluster, with R3 streams and buckets, are all ready well within the
// deadline. The time is logged, not asserted (the target is 10 s; it is
// measured on a shared machine).
func TestThreeEdgesStartOnFreshCluster(t *testing.T) {
	took, errs := startThreeOnFreshCluster(t)
	for i, err := range errs {
		if err != nil {
			t.Errorf("edge-%d not ready after %s: %v", i, took[i].Round(time.Millisecond), err)
		}
	}
	t.Logf("edges ready after %v (from the servers accepting clients)", took)
}

// BenchmarkThreeEdgesStartOnFreshCluster measures acceptance 7: the time
// from three fresh clustered servers accepting clients to three edges,
// started together with R3 stores, all being ready (ns/op).
func BenchmarkThreeEdgesStartOnFreshCluster(b *testing.B) {
	var total time.Duration
	for range b.N {
		took, errs := startThreeOnFreshCluster(b)
		for _, err := range errs {
			if err != nil {
				b.Fatal(err)
			}
		}
		total += slices.Max(took)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-ready")
}

// startThreeOnFreshCluster starts a fresh three-server cluster, then three
// edges at once with R3 stores, and returns when each was ready (or failed).
func startThreeOnFreshCluster(t testing.TB) ([]time.Duration, []error) {
	servers := startFreshCluster(t, 3)
	c := newClusterOn(t, servers[0])
	url := testutil.ClusterURL(servers)
	began := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	took := make([]time.Duration, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := testConfig(fmt.Sprintf("edge-%d", i), "http://127.0.0.1:1")
			cfg.StreamReplicas = 3
			_, errs[i] = startEdge(ctx, t, c, servers[i].ClientURL()+","+url, cfg)
			took[i] = time.Since(began)
		}()
	}
	wg.Wait()
	return took, errs
}
