package bus_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// BenchmarkJoin measures joins into a session that already has `members`
// members, 32 joins in flight (as an edge under a join storm). A session
// of up to 10,000 is written directly in the first (inline) format, which
// every version reads, so the same benchmark runs against the inline
// store for a before/after comparison; a larger one is joined into first.
// record_B is the size of the session's record key afterwards: the inline
// store rewrote it on every join.
func BenchmarkJoin(b *testing.B) {
	for _, existing := range []int{1_000, 10_000, 50_000} {
		b.Run(fmt.Sprintf("members=%d", existing), func(b *testing.B) { benchJoin(b, existing) })
	}
}

func benchJoin(b *testing.B, existing int) {
	nc := testutil.Connect(b, testutil.RunNATS(b).ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		b.Fatal(err)
	}
	subj, _ := bus.NewSubjects("allspark")
	ctx := context.Background()
	s, err := bus.OpenSessions(ctx, js, subj, bus.SessionsConfig{MaxMembers: 1_000_000}, time.Now)
	if err != nil {
		b.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, "allspark_sessions")
	if err != nil {
		b.Fatal(err)
	}
	if existing <= 10_000 {
		members := make(map[string]bus.Member, existing)
		for i := range existing {
			n := fmt.Sprintf("old%06d", i)
			members[n] = bus.Member{MemberID: n}
		}
		rec, _ := json.Marshal(map[string]any{"id": "big", "created_by": "old000000", "created_at": 1, "members": members})
		if _, err := kv.Create(ctx, bus.Token("big"), rec); err != nil {
			b.Fatal(err)
		}
	} else {
		if err := s.Create(ctx, "big", "old000000", false); err != nil {
			b.Fatal(err)
		}
		parallelJoins(b, s, 1, existing, "old")
	}
	if _, _, err := s.Join(ctx, "big", "warm", false); err != nil { // a first-format record migrates here
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	parallelJoins(b, s, 0, b.N, "new")
	b.StopTimer()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "joins/s")
	if e, err := kv.Get(ctx, bus.Token("big")); err == nil {
		b.ReportMetric(float64(len(e.Value())), "record_B")
	}
}

// parallelJoins joins nodes prefix[from..to) into "big", 32 at a time.
func parallelJoins(b *testing.B, s *bus.Sessions, from, to int, prefix string) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(to); i = next.Add(1) - 1 {
				if _, _, err := s.Join(context.Background(), "big", fmt.Sprintf("%s%06d", prefix, i), false); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
