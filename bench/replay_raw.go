package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rawReplay is scenario d's baseline: JetStream alone doing the reads an
// edge does to replay an inbox. It stores perNode messages for each of
// nodes subjects in one file-backed stream (as the inbox stream is), then
// reads every node's back, all nodes at once, one "get the next message
// for this subject at or after seq" request per message (the edge's
// Inbox.Next). No websocket, no acks, no deletes: the ceiling of the
// read path the edge's replay is a ratio to.
func rawReplay(ctx context.Context, srv *server, url, scenario string, nodes, perNode int) (result, error) {
	r := result{Scenario: scenario, System: "raw JetStream"}
	nc, err := nats.Connect(url)
	if err != nil {
		return r, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(4096))
	if err != nil {
		return r, err
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "bench_inbox", Subjects: []string{"bench.inbox.>"}, Storage: jetstream.FileStorage,
		Replicas: 1, Discard: jetstream.DiscardNew,
	})
	if err != nil {
		return r, fmt.Errorf("create stream: %w", err)
	}
	subject := func(n int) string { return fmt.Sprintf("bench.inbox.off%04d", n) }
	storeStart := time.Now()
	for k := range perNode {
		for n := range nodes {
			if _, err := js.PublishAsync(subject(n), payload(fmt.Sprintf("%d-%d", n, k))); err != nil {
				return r, fmt.Errorf("store: %w", err)
			}
		}
	}
	select {
	case <-js.PublishAsyncComplete():
	case <-time.After(2 * time.Minute):
		return r, errors.New("stores not acknowledged in 2 minutes")
	}
	storeRate := float64(nodes*perNode) / time.Since(storeStart).Seconds()

	col := newCollector()
	cpu0 := srv.cpuSeconds()
	start := time.Now()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := fmt.Sprintf("off%04d", n)
			for seq := uint64(1); ctx.Err() == nil; {
				m, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject(n)))
				if errors.Is(err, jetstream.ErrMsgNotFound) {
					return
				}
				if err != nil {
					failed.Add(1)
					return
				}
				col.observe(id, m.Data)
				seq = m.Sequence + 1
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	unique, dups := col.counts()
	r.Sent, r.Promised, r.Delivered, r.Duplicates, r.Errors = int64(nodes*perNode), int64(nodes*perNode), col.received.Load(), dups, failed.Load()
	r.Lost = max(0, r.Promised-unique)
	r.Rate = float64(r.Delivered) / elapsed.Seconds()
	r.RSSMB = float64(srv.rssKB()) / 1024
	r.CPU = 100 * (srv.cpuSeconds() - cpu0) / elapsed.Seconds()
	r.P50, r.P90, r.P99, r.Max = col.percentiles()
	r.Note = fmt.Sprintf("baseline: the same get-next-by-subject reads, no websocket; stored at %.0f msg/s", storeRate)
	return r, nil
}
