package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// rawReplay is scenario d's baseline: JetStream alone doing the reads an
// edge does to replay an inbox. It stores perNode messages for each of
// nodes subjects in one file-backed stream (as the inbox stream is), then
// reads every node's back, all nodes at once, a page per request as the
// edge's Inbox.Page reads them: a batched direct get of up to rawPage
// messages of the subject at or after seq (and at most rawPageBytes, half
// the edge's default send queue), answered by the messages and an
// end-of-batch status. No websocket, no acks, no deletes: the ceiling of
// the read path the edge's replay is a ratio to.
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
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "bench_inbox", Subjects: []string{"bench.inbox.>"}, Storage: jetstream.FileStorage,
		Replicas: 1, Discard: jetstream.DiscardNew, AllowDirect: true,
	}); err != nil {
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
			if err := rawReadPages(ctx, nc, "bench_inbox", subject(n), func(data []byte) { col.observe(id, data) }); err != nil {
				failed.Add(1)
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
	r.Note = fmt.Sprintf("baseline: the same batched direct gets (%d a page), no websocket; stored at %.0f msg/s", rawPage, storeRate)
	return r, nil
}

// rawPage and rawPageBytes are the edge's default page: ALLSPARK_INBOX_PAGE
// and half of ALLSPARK_SEND_QUEUE_BYTES.
const rawPage, rawPageBytes = 256, 1 << 19

// rawReadPages reads every message of subject from the stream, a batched
// direct get per page, each answered on the reader's own subscription.
func rawReadPages(ctx context.Context, nc *nats.Conn, stream, subject string, got func([]byte)) error {
	reply := nc.NewInbox()
	sub, err := nc.SubscribeSync(reply)
	if err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	for seq := uint64(1); ; {
		req := fmt.Sprintf(`{"seq":%d,"next_by_subj":%q,"batch":%d,"max_bytes":%d}`, seq, subject, rawPage, rawPageBytes)
		if err := nc.PublishRequest("$JS.API.DIRECT.GET."+stream, reply, []byte(req)); err != nil {
			return fmt.Errorf("request page: %w", err)
		}
		for {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			m, err := sub.NextMsgWithContext(rctx)
			cancel()
			if err != nil {
				return fmt.Errorf("read page: %w", err)
			}
			switch m.Header.Get("Status") {
			case "":
				got(m.Data)
				s, err := strconv.ParseUint(m.Header.Get(jetstream.SequenceHeader), 10, 64)
				if err != nil {
					return fmt.Errorf("read page: sequence: %w", err)
				}
				seq = s + 1
				continue
			case "204":
				if m.Header.Get("Nats-Num-Pending") == "0" {
					return nil
				}
			case "404":
				return nil
			default:
				return fmt.Errorf("read page: status %s", m.Header.Get("Status"))
			}
			break
		}
	}
}
