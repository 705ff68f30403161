package main

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
)

// result is one row of the report.
type result struct {
	Scenario   string  `json:"scenario"`
	System     string  `json:"system"`
	Sent       int64   `json:"sent"`
	Promised   int64   `json:"promised"` // accepted by the system (delivered/stored/published)
	Delivered  int64   `json:"delivered"`
	Lost       int64   `json:"lost"`
	Duplicates int64   `json:"duplicates"`
	Errors     int64   `json:"errors"`
	Rate       float64 `json:"deliveries_per_s"`
	P50        float64 `json:"p50_ms"`
	P90        float64 `json:"p90_ms"`
	P99        float64 `json:"p99_ms"`
	Max        float64 `json:"max_ms"`
	RSSMB      float64 `json:"server_rss_mb"`
	CPU        float64 `json:"server_cpu_percent"`
	Note       string  `json:"note,omitempty"`
	// KBPerConn is scenario e's measure: the server's RSS growth per idle connection.
	KBPerConn float64 `json:"kb_per_connection,omitempty"`
}

// system is one server under test, driven the same way for each scenario.
type system struct {
	name     string
	srv      *server
	base     string
	sendBase string // AllSpark: where senders connect
	// connect opens a receiver for user id subscribed to channels (AllSpark:
	// its node, or the sessions it joined), reporting frames to col.
	connect func(id string, channels []string, col *collector, answers func([]byte)) (closer func(), err error)
	// sender returns a send function for sender i, which the caller paces.
	sender func(i int, col *collector) (send func(dest, key string) error, answered func() <-chan struct{}, closer func(), err error)
}

// finish waits for deliveries to settle and fills the counts.
// Each promised send should make fanout deliveries.
func finish(r *result, col *collector, srv *server, start time.Time, cpu0 float64, deadline time.Time, fanout int64) {
	last, quiet := col.received.Load(), 0
	for quiet < 10 && time.Now().Before(deadline.Add(10*time.Second)) {
		time.Sleep(100 * time.Millisecond)
		if n := col.received.Load(); n == last {
			quiet++
		} else {
			last, quiet = n, 0
		}
	}
	elapsed := time.Since(start) - time.Second // the quiet tail
	unique, dups := col.counts()
	r.Promised, r.Errors = col.promised.Load(), col.rejected.Load()
	r.Delivered, r.Duplicates = col.received.Load(), dups
	if r.Lost = r.Promised*fanout - unique; r.Lost < 0 {
		r.Lost = 0
	}
	r.Rate = float64(r.Delivered) / elapsed.Seconds()
	r.P50, r.P90, r.P99, r.Max = col.percentiles()
	r.RSSMB = float64(srv.rssKB()) / 1024
	r.CPU = 100 * (srv.cpuSeconds() - cpu0) / elapsed.Seconds()
}

// pointToPoint: n clients; each sends to random others at rate (0: as fast
// as a window of 32 unanswered sends allows) for d.
func pointToPoint(ctx context.Context, sys *system, scenario string, n int, rate float64, d time.Duration, progress func(*collector)) (result, error) {
	col := newCollector()
	r := result{Scenario: scenario, System: sys.name}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	ids := make([]string, n)
	for i := range n {
		ids[i] = fmt.Sprintf("u%04d", i)
		c, err := sys.connect(ids[i], []string{ids[i]}, col, nil)
		if err != nil {
			return r, fmt.Errorf("connect %s: %w", ids[i], err)
		}
		closers = append(closers, c)
	}
	time.Sleep(200 * time.Millisecond) // let subscriptions settle
	cpu0 := sys.srv.cpuSeconds()
	start := time.Now()
	deadline := start.Add(d)
	var sent atomic.Int64
	var wg sync.WaitGroup
	stopProgress := tick(col, progress)
	for i := range n {
		send, answered, closer, err := sys.sender(i, col)
		if err != nil {
			return r, err
		}
		closers = append(closers, closer)
		wg.Add(1)
		go func() {
			defer wg.Done()
			var tick *time.Ticker
			if rate > 0 {
				tick = time.NewTicker(time.Duration(float64(n) / rate * float64(time.Second)))
				defer tick.Stop()
			}
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				if tick != nil {
					<-tick.C
				} else if answered != nil {
					<-answered() // window slot
				}
				j := rand.IntN(n - 1)
				if j >= i {
					j++
				}
				if err := send(ids[j], strconv.Itoa(i)+"-"+strconv.Itoa(seq)); err != nil {
					col.rejected.Add(1)
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	stopProgress()
	r.Sent = sent.Load()
	finish(&r, col, sys.srv, start, cpu0, deadline, 1)
	return r, nil
}

// tick calls progress every half second until the returned stop is called.
func tick(col *collector, progress func(*collector)) (stop func()) {
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case <-time.After(500 * time.Millisecond):
				progress(col)
			}
		}
	}()
	return func() { close(done) }
}

// allsparkSystem drives the edge over websockets; destField is dest_id
// (1:1) or dest_session_id (fan-out).
func allsparkSystem(srv *server, base, destField string) *system {
	return allsparkSystemOn(srv, base, base, destField)
}

// allsparkSystemOn connects receivers to base and senders to sendBase.
func allsparkSystemOn(srv *server, base, sendBase, destField string) *system {
	return &system{name: "AllSpark", srv: srv, base: base, sendBase: sendBase,
		connect: func(id string, _ []string, col *collector, answers func([]byte)) (func(), error) {
			c, err := allsparkDial(base, id, id, func(b []byte) {
				if bytes.HasPrefix(b, []byte(`{"type":"sent"`)) {
					if answers != nil {
						answers(b)
					}
					return
				}
				if bytes.HasPrefix(b, []byte(`{"msg_id"`)) || bytes.HasPrefix(b, []byte(`{"seq"`)) {
					col.observe(id, b)
				}
			})
			if err != nil {
				return nil, err
			}
			return c.close, nil
		},
		sender: func(i int, col *collector) (func(dest, key string) error, func() <-chan struct{}, func(), error) {
			slots := make(chan struct{}, 32)
			for range 32 {
				slots <- struct{}{}
			}
			c, err := allsparkDial(sendBase, fmt.Sprintf("sender%04d", i), fmt.Sprintf("sender%04d", i), func(b []byte) {
				if !bytes.HasPrefix(b, []byte(`{"type":"sent"`)) {
					return
				}
				if bytes.Contains(b, []byte(`"status":"rejected"`)) {
					col.rejected.Add(1)
				} else {
					col.promised.Add(1)
				}
				select {
				case slots <- struct{}{}:
				default:
				}
			})
			if err != nil {
				return nil, nil, nil, err
			}
			send := func(dest, key string) error {
				return c.conn.WriteString(`{"` + destField + `":"` + dest + `","payload":` + string(payload(key)) + `}`)
			}
			return send, func() <-chan struct{} { return slots }, c.close, nil
		}}
}

// natsSystem is the near-limit reference: core NATS pub/sub, one
// connection per client, no acks, no storage.
func natsSystem(srv *server, url string) *system {
	return &system{name: "NATS core", srv: srv, base: url,
		connect: func(id string, channels []string, col *collector, _ func([]byte)) (func(), error) {
			nc, err := nats.Connect(url, nats.SetCustomDialer(dialerFor(id)))
			if err != nil {
				return nil, err
			}
			for _, ch := range channels {
				sub, err := nc.Subscribe("bench."+ch, func(m *nats.Msg) { col.observe(id, m.Data) })
				if err != nil {
					return nil, err
				}
				_ = sub.SetPendingLimits(-1, -1)
			}
			_ = nc.Flush()
			return nc.Close, nil
		},
		sender: func(i int, col *collector) (func(dest, key string) error, func() <-chan struct{}, func(), error) {
			nc, err := nats.Connect(url)
			if err != nil {
				return nil, nil, nil, err
			}
			n := 0
			send := func(dest, key string) error {
				if err := nc.Publish("bench."+dest, payload(key)); err != nil {
					return err
				}
				col.promised.Add(1)
				if n++; n%64 == 0 {
					return nc.Flush() // a round trip bounds what is in flight, like the others' windows
				}
				return nil
			}
			return send, nil, nc.Close, nil
		}}
}

// centrifugoSystem: clients subscribed by their token; sends are HTTP API
// publishes (Centrifugo's server-side publish path).
func centrifugoSystem(srv *server, base string) *system {
	return &system{name: "Centrifugo v6", srv: srv, base: base,
		connect: func(id string, channels []string, col *collector, _ func([]byte)) (func(), error) {
			c, err := centrifugoDial(base, id, channels, func(b []byte) {
				if bytes.Contains(b, []byte(`"pub"`)) {
					col.observe(id, b)
				}
			})
			if err != nil {
				return nil, err
			}
			return c.close, nil
		},
		sender: func(i int, col *collector) (func(dest, key string) error, func() <-chan struct{}, func(), error) {
			send := func(dest, key string) error {
				if err := centrifugoPublish(base, dest, payload(key)); err != nil {
					return err
				}
				col.promised.Add(1)
				return nil
			}
			return send, nil, func() {}, nil
		}}
}
