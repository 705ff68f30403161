package edge_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A burst of connects shares presence queries: while one scatter-gather is
// out, the nodes asked meanwhile wait and go together in the next. A
// "ghost" edge listed in the registry that never answers makes every query
// last its full timeout, so 40 connects at once would be 40 queries of
// 500 ms each without batching; with it they are a handful, and every
// node is still asked.
func TestPresenceQueriesAreBatched(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	nc := testutil.Connect(t, c.url)
	js, _ := jetstream.New(nc)
	reg, err := bus.OpenRegistry(t.Context(), js, bus.RegistryConfig{Bucket: "allspark_edges", StaleAfter: time.Minute}, time.Now, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var ghost sync.WaitGroup
	ghost.Add(1)
	go func() { // announced like a live edge for as long as the test runs
		defer ghost.Done()
		for {
			_ = reg.Announce(t.Context(), bus.EdgeInfo{ID: "ghost", WSURL: "ws://127.0.0.1:1/v1/ws"})
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}()
	defer func() { close(stop); ghost.Wait() }()

	var queries atomic.Int64
	asked := map[string]bool{}
	var mu sync.Mutex
	sub, err := nc.Subscribe("allspark.presence.query", func(m *nats.Msg) {
		var nodes []string
		_ = json.Unmarshal(m.Data, &nodes)
		queries.Add(1)
		mu.Lock()
		for _, n := range nodes {
			asked[n] = true
		}
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = nc.Flush()
	defer func() { _ = sub.Unsubscribe() }()

	const n = 40
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			node := fmt.Sprintf("n%02d", i)
			c.dial(a, node, node)
		}()
	}
	wg.Wait()
	testutil.Eventually(t, 10*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(asked) < n {
			return fmt.Errorf("%d of %d connected nodes asked about", len(asked), n)
		}
		return nil
	})
	if q := queries.Load(); q > n/2 {
		t.Fatalf("%d connects made %d presence queries; want them batched (at most %d)", n, q, n/2)
	}
	t.Logf("%d connects, %d presence queries", n, queries.Load())
}
