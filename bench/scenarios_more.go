package main

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// fanOut: sessions of size members each (AllSpark sessions, NATS subjects,
// Centrifugo channels); one sender per session sends for d.
// started is called as the timed window begins (after the members have
// joined and connected), to start profiles.
func fanOut(ctx context.Context, sys *system, scenario string, sessions, members int, d time.Duration, progress func(*collector), started func()) (result, error) {
	col := newCollector()
	r := result{Scenario: scenario, System: sys.name}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	if sys.name == "AllSpark" { // membership is created over HTTP first
		if err := allsparkSessions(sys.base, sessions, members); err != nil {
			return r, err
		}
	}
	for s := range sessions {
		room := "room" + strconv.Itoa(s)
		for m := range members {
			id := fmt.Sprintf("m%d-%04d", s, m)
			c, err := sys.connect(id, []string{room}, col, nil)
			if err != nil {
				return r, fmt.Errorf("connect %s: %w", id, err)
			}
			closers = append(closers, c)
		}
	}
	time.Sleep(500 * time.Millisecond)
	cpu0 := sys.srv.cpuSeconds()
	start := time.Now()
	deadline := start.Add(d)
	started()
	stop := tick(col, progress)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for s := range sessions {
		send, answered, closer, err := sys.sender(s, col)
		if err != nil {
			return r, err
		}
		closers = append(closers, closer)
		room := "room" + strconv.Itoa(s)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				if answered != nil {
					<-answered()
				}
				if err := send(room, strconv.Itoa(s)+"-"+strconv.Itoa(seq)); err != nil {
					col.rejected.Add(1)
				}
				sent.Add(1)
			}
		}()
	}
	wg.Wait()
	stop()
	r.Sent = sent.Load()
	finish(&r, col, sys.srv, start, cpu0, deadline, int64(members))
	return r, nil
}

// allsparkSessions creates sessions room0.. with members m<s>-<i>, and a
// sender member sender<s> in each.
func allsparkSessions(base string, sessions, members int) error {
	for s := range sessions {
		room := "room" + strconv.Itoa(s)
		if err := allsparkCall(base, "POST", "/v1/sessions", fmt.Sprintf("sender%04d", s), map[string]any{"session_id": room}); err != nil {
			return err
		}
		work := make(chan int)
		errs := make(chan error, members)
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for m := range work {
					errs <- allsparkCall(base, "POST", "/v1/sessions/"+room+"/join", fmt.Sprintf("m%d-%04d", s, m), nil)
				}
			}()
		}
		for m := range members {
			work <- m
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// idle opens n connections (of want asked; why says why fewer) that do
// nothing and reports the server's RSS growth per connection and, for
// AllSpark, where it goes (see memStats). profDir, if set, receives the
// edge's heap and goroutine profiles.
func idle(ctx context.Context, sys *system, want, n int, why, profDir string) (result, error) {
	r := result{Scenario: fmt.Sprintf("e: %d idle connections", want), System: sys.name}
	col := newCollector()
	time.Sleep(time.Second)
	before := sys.srv.rssKB()
	stats0, haveStats := sys.srv.memStatsOf()
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	work := make(chan int)
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				id := fmt.Sprintf("idle%06d", i)
				c, err := sys.connect(id, []string{id}, col, nil)
				mu.Lock()
				if err != nil && firstErr == nil {
					firstErr = err
				}
				if err == nil {
					closers = append(closers, c)
				}
				mu.Unlock()
			}
		}()
	}
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	if firstErr != nil {
		return r, firstErr
	}
	time.Sleep(3 * time.Second) // let the server settle
	after := sys.srv.rssKB()
	r.Sent = int64(len(closers))
	r.RSSMB = float64(after) / 1024
	r.KBPerConn = float64(after-before) / float64(len(closers))
	r.Note = fmt.Sprintf("%.1f KB RSS per connection", r.KBPerConn)
	if stats1, ok := sys.srv.memStatsOf(); ok && haveStats {
		r.Note += " (" + stats1.perConn(stats0, len(closers)) + ")"
	}
	if err := sys.srv.saveProfiles(profDir, len(closers)); err != nil {
		return r, err
	}
	if why != "" {
		r.Note += "; " + why
	}
	return r, nil
}

// perUser: users with 3 devices each; senders send to dest_client_id.
func perUser(ctx context.Context, sys *system, users, senders int, d time.Duration, progress func(*collector)) (result, error) {
	col := newCollector()
	r := result{Scenario: fmt.Sprintf("b: per-user fan-out (%d users x 3 devices)", users), System: sys.name}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	for u := range users {
		for dev := range 3 {
			id := fmt.Sprintf("user%04d-dev%d", u, dev)
			c, err := allsparkDial(sys.base, id, fmt.Sprintf("user%04d", u), func(b []byte) {
				if len(b) > 9 && string(b[:9]) == `{"msg_id"` {
					col.observe(id, b)
				}
			})
			if err != nil {
				return r, err
			}
			closers = append(closers, c.close)
		}
	}
	cpu0 := sys.srv.cpuSeconds()
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	var sent atomic.Int64
	for i := range senders {
		slots := make(chan struct{}, 32)
		for range 32 {
			slots <- struct{}{}
		}
		c, err := allsparkDial(sys.base, fmt.Sprintf("sender%04d", i), fmt.Sprintf("sender%04d", i), func(b []byte) {
			if len(b) > 14 && string(b[:14]) == `{"type":"sent"` {
				col.promised.Add(1)
				slots <- struct{}{}
			}
		})
		if err != nil {
			return r, err
		}
		closers = append(closers, c.close)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seq := 0; time.Now().Before(deadline) && ctx.Err() == nil; seq++ {
				<-slots
				u := (i*7919 + seq) % users
				_ = c.conn.WriteString(fmt.Sprintf(`{"dest_client_id":"user%04d","payload":%s}`, u, payload(strconv.Itoa(i)+"-"+strconv.Itoa(seq))))
				sent.Add(1)
			}
		}()
	}
	stop := tick(col, progress)
	wg.Wait()
	stop()
	r.Sent = sent.Load()
	finish(&r, col, sys.srv, start, cpu0, deadline, 3)
	return r, nil
}

// offlineReplay: messages for offline nodes are stored; then the nodes
// connect and everything is replayed. Rate is replayed messages per second.
// With profile set, the edge's CPU is profiled for the first 2 s of the
// replay into that file.
func offlineReplay(ctx context.Context, sys *system, nodes, perNode int, profile string) (result, error) {
	col := newCollector()
	r := result{Scenario: fmt.Sprintf("d: store %d then replay on reconnect", nodes*perNode), System: sys.name}
	sender, err := allsparkDial(sys.base, "sender", "sender", nil)
	if err != nil {
		return r, err
	}
	var stored atomic.Int64
	done := make(chan struct{})
	sender.onFrame = func(b []byte) {
		if len(b) > 14 && string(b[:14]) == `{"type":"sent"` {
			if stored.Add(1) == int64(nodes*perNode) {
				close(done)
			}
		}
	}
	storeStart := time.Now()
	for k := range perNode {
		for n := range nodes {
			_ = sender.conn.WriteString(fmt.Sprintf(`{"dest_id":"off%04d","payload":%s}`, n, payload(fmt.Sprintf("%d-%d", n, k))))
		}
	}
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		return r, fmt.Errorf("only %d of %d stored", stored.Load(), nodes*perNode)
	}
	storeRate := float64(nodes*perNode) / time.Since(storeStart).Seconds()
	sender.close()
	profiled := make(chan error, 1)
	if profile != "" {
		go func() { profiled <- sys.srv.cpuProfile(2*time.Second, profile) }()
	} else {
		profiled <- nil
	}
	cpu0 := sys.srv.cpuSeconds()
	start := time.Now()
	var closers []func()
	for n := range nodes {
		id := fmt.Sprintf("off%04d", n)
		c, err := allsparkDial(sys.base, id, id, func(b []byte) {
			if len(b) > 9 && string(b[:9]) == `{"msg_id"` {
				col.observe(id, b)
			}
		})
		if err != nil {
			return r, err
		}
		closers = append(closers, c.close)
	}
	dialed := time.Since(start)
	for col.received.Load() < int64(nodes*perNode) && time.Since(start) < 2*time.Minute && ctx.Err() == nil {
		time.Sleep(10 * time.Millisecond)
	}
	elapsed := time.Since(start)
	for _, c := range closers {
		c()
	}
	unique, dups := col.counts()
	r.Sent, r.Promised, r.Delivered, r.Duplicates = int64(nodes*perNode), stored.Load(), col.received.Load(), dups
	r.Lost = r.Promised - unique
	r.Rate = float64(r.Delivered) / elapsed.Seconds()
	r.RSSMB = float64(sys.srv.rssKB()) / 1024
	r.CPU = 100 * (sys.srv.cpuSeconds() - cpu0) / elapsed.Seconds()
	r.Note = fmt.Sprintf("stored at %.0f msg/s; the %d nodes connected one after another in %d ms; latency is store-to-replay", storeRate, nodes, dialed.Milliseconds())
	r.P50, r.P90, r.P99, r.Max = col.percentiles()
	if err := <-profiled; err != nil {
		return r, fmt.Errorf("profile the replay: %w", err)
	}
	return r, nil
}
