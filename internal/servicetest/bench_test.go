package servicetest

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/webhook"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkServiceMessages measures messages/s to a service with 1 and 3
// in-process replicas: 64 backend senders on allspark.send, each waiting
// for its "sent" answer (delivered = a replica's handler took it).
func BenchmarkServiceMessages(b *testing.B) { benchService(b, 0) }

// BenchmarkServiceMessagesSlowHandler is the same with a handler that
// takes 1 ms (a database write, say), where replicas add throughput.
func BenchmarkServiceMessagesSlowHandler(b *testing.B) { benchService(b, time.Millisecond) }

func benchService(b *testing.B, work time.Duration) {
	for _, replicas := range []int{1, 3} {
		b.Run(fmt.Sprintf("replicas=%d", replicas), func(b *testing.B) {
			c := newCluster(b)
			c.edge("e1")
			var handled atomic.Int64
			ctx, cancel := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range replicas {
				up := make(chan struct{})
				wg.Add(1)
				go func() {
					defer wg.Done()
					_ = client.Serve(ctx, c.backend(), "svc:bench", func(context.Context, *client.ServiceMessage) error {
						handled.Add(1)
						if work > 0 {
							time.Sleep(work) // simulated handler work, not a wait for an event
						}
						return nil
					}, client.WithServiceOptions(client.ServiceOptions{OnSubscribed: func() { close(up) }}))
				}()
				<-up
			}
			be := c.backend()
			const senders = 64
			var next, notDelivered atomic.Int64
			body := []byte(`{"src_id":"bench","dest_id":"svc:bench","payload":"x"}`)
			b.ResetTimer()
			start := time.Now()
			var sw sync.WaitGroup
			for range senders {
				sw.Add(1)
				go func() {
					defer sw.Done()
					for next.Add(1) <= int64(b.N) {
						m, err := be.Request("allspark.send", body, 10*time.Second)
						var s struct{ Status string }
						if err != nil || json.Unmarshal(m.Data, &s) != nil || s.Status != "delivered" {
							notDelivered.Add(1)
						}
					}
				}()
			}
			sw.Wait()
			el := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			if n := notDelivered.Load(); n > 0 {
				b.Logf("%d of %d not answered delivered", n, b.N)
			}
			cancel()
			wg.Wait()
		})
	}
}

// BenchmarkWebhookForwarder measures events/s through the forwarder: b.N
// events wait in the stream, then the forwarder posts them (batches of
// 100) to a loopback endpoint that verifies every signature.
func BenchmarkWebhookForwarder(b *testing.B) {
	ns := testutil.RunNATS(b)
	nc := testutil.Connect(b, ns.ClientURL())
	js, _ := jetstream.New(nc)
	subj, _ := bus.NewSubjects("allspark")
	st, err := bus.OpenEventsStream(context.Background(), js, subj, bus.EventsConfig{MaxAge: time.Hour})
	if err != nil {
		b.Fatal(err)
	}
	ev := bus.NewEvents(nc, subj, "e1", time.Now, testutil.Logger(b))
	for i := range b.N {
		ev.NodePresence(fmt.Sprintf("node-%d", i), i%2 == 0)
	}
	testutil.Eventually(b, 120*time.Second, func() error {
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs < uint64(b.N) {
			return fmt.Errorf("%d of %d events stored", info.State.Msgs, b.N)
		}
		return nil
	})
	var got atomic.Int64
	all := make(chan struct{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if webhook.Verify(hookSecret, r.Header.Get(webhook.HeaderTimestamp), r.Header.Get(webhook.HeaderSignature), body, time.Now(), time.Minute) != nil {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var bd webhook.Body
		_ = json.Unmarshal(body, &bd)
		if got.Add(int64(len(bd.Events))) == int64(b.N) {
			close(all)
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer hook.Close()
	f, err := webhook.New(webhook.Config{URL: hook.URL, Secret: hookSecret, BatchSize: 100, BatchWait: 20 * time.Millisecond,
		Timeout: 5 * time.Second, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, Consumer: "bench"},
		webhook.Deps{JS: js, Subjects: subj})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	b.ResetTimer()
	start := time.Now()
	go func() { defer close(done); _ = f.Run(ctx) }()
	select {
	case <-all:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%d of %d events forwarded", got.Load(), b.N)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "events/s")
	cancel()
	<-done
}
