package edge_test

import (
	"context"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkStoreAndReplay: alice sends b.N messages to offline bob (each is
// stored in the inbox), then bob connects and receives them all, acking.
// Reported as messages per second over the whole store + replay.
func BenchmarkStoreAndReplay(b *testing.B) {
	c := newCluster(b)
	big := func(cfg *edge.Config) { cfg.InboxMaxPerNode = 1 << 22 }
	a, e2 := c.edge("edge-a", big), c.edge("edge-b", big)
	alice := c.dial(a, "alice", "alice")
	const payload = `"hello, this is a typical chat message of about a hundred bytes in size....."`
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		alice.SendRaw(b, `{"dest_id":"bob","payload":`+payload+`}`)
	}
	for i := 0; i < b.N; i++ {
		if f := alice.Until(b, 30*time.Second, isSent); f.Status != "stored" {
			b.Fatalf("got %s", f.Raw)
		}
	}
	stored := time.Since(start)
	bob := wstest.Dial(b, e2.wsURL("auth_key="+url.QueryEscape(c.authKey("bob", "bob"))))
	got := 0
	for {
		f := bob.Next(b, 30*time.Second)
		if f.Type == "sync_done" {
			break
		}
		got++
	}
	b.StopTimer()
	if got != b.N {
		b.Fatalf("replayed %d of %d", got, b.N)
	}
	total := time.Since(start)
	b.ReportMetric(float64(b.N)/total.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/stored.Seconds(), "stored/s")
	b.ReportMetric(float64(b.N)/(total-stored).Seconds(), "replayed/s")
}

// BenchmarkJetStreamStoreAndReadBaseline is the floor under the benchmark
// above: the same messages published to the same kind of stream with plain
// async publishes, then read back with the same get-next-by-subject calls.
func BenchmarkJetStreamStoreAndReadBaseline(b *testing.B) {
	ns := testutil.RunNATS(b)
	nc := testutil.Connect(b, ns.ClientURL())
	js, _ := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(1<<14))
	ctx := context.Background()
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{Name: "base", Subjects: []string{"base.*"}, Storage: jetstream.FileStorage, Duplicates: 2 * time.Minute})
	if err != nil {
		b.Fatal(err)
	}
	frame := []byte(`{"msg_id":"01J000000000000000000000","src_id":"alice","dest_id":"bob","payload":"hello, this is a typical chat message of about a hundred bytes in size.....","ts":1}`)
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		if _, err := js.PublishAsync("base.bob", frame, jetstream.WithMsgID(fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	<-js.PublishAsyncComplete()
	stored := time.Since(start)
	next := uint64(1)
	for i := 0; i < b.N; i++ {
		m, err := st.GetMsg(ctx, next, jetstream.WithGetMsgSubject("base.bob"))
		if err != nil {
			b.Fatal(err)
		}
		next = m.Sequence + 1
	}
	b.StopTimer()
	total := time.Since(start)
	b.ReportMetric(float64(b.N)/total.Seconds(), "msgs/s")
	b.ReportMetric(float64(b.N)/stored.Seconds(), "stored/s")
	b.ReportMetric(float64(b.N)/(total-stored).Seconds(), "replayed/s")
}
