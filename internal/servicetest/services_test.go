package servicetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats.go/jetstream"
)

// inboxMsgs is the number of messages pending in all inboxes.
func (c *cluster) inboxMsgs(t *testing.T, e *testEdge) uint64 {
	t.Helper()
	js, _ := jetstream.New(e.nc)
	st, err := js.Stream(t.Context(), "allspark_inbox")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// Issue 14, acceptance 2: messages to a service no replica ever claimed
// are stored like an offline node's; a replica started later (on the
// backend NATS user) receives them all, in order per sender, and the
// backlog is gone afterwards.
func TestServiceBacklogDrainsInOrderToLateReplica(t *testing.T) {
	c := newCluster(t)
	window := func(cfg *edge.Config) { cfg.ServiceDrainWindow = 3 } // ALLSPARK_SERVICE_DRAIN_WINDOW
	e1, e2 := c.edge("e1", window), c.edge("e2", window)
	const senders, per = 4, 50
	var clients []*wstest.Client
	for i := range senders {
		e := e1
		if i%2 == 1 {
			e = e2
		}
		clients = append(clients, c.dial(e, fmt.Sprintf("sender-%d", i)))
	}
	statuses := sendAll(t, clients, "svc:orders", per, 10, nil)
	for id, st := range statuses {
		if st != "stored" {
			t.Fatalf("message %s to a service with no replica: %s, want stored", id, st)
		}
	}

	var mu sync.Mutex
	got := map[string][]int{} // sender -> payload i, in handling order
	seen := map[string]int{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- client.Serve(ctx, c.backend(), "svc:orders", func(_ context.Context, m *client.ServiceMessage) error {
			var p struct{ I int }
			if err := json.Unmarshal(m.Payload, &p); err != nil {
				return err
			}
			mu.Lock()
			defer mu.Unlock()
			got[m.SrcID] = append(got[m.SrcID], p.I)
			seen[m.MsgID]++
			return nil
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	testutil.Eventually(t, 60*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(seen) < senders*per {
			return fmt.Errorf("replica has %d of %d stored messages", len(seen), senders*per)
		}
		return nil
	})
	mu.Lock()
	for id := range statuses {
		if seen[id] == 0 {
			t.Errorf("stored message %s never reached the replica", id)
		}
	}
	for src, is := range got {
		for k := 1; k < len(is); k++ {
			if is[k] <= is[k-1] {
				t.Errorf("%s: message %d handled after %d", src, is[k], is[k-1])
			}
		}
	}
	mu.Unlock()
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := c.inboxMsgs(t, e1); n != 0 {
			return fmt.Errorf("%d messages still in the inbox", n)
		}
		return nil
	})

	// Live now: a new message is delivered straight to the replica.
	clients[0].Send(t, map[string]any{"id": "live", "dest_id": "svc:orders", "payload": map[string]int{"i": per}})
	f := clients[0].Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" && f.ID == "live" })
	if f.Status != "delivered" {
		t.Fatalf("live message to a served service: %s", f.Raw)
	}
}

// Issue 14, bad input: a handler error or panic leaves the message
// stored, and it is offered again (here to the same replica).
func TestServiceHandlerErrorStoresAndRetries(t *testing.T) {
	c := newCluster(t)
	e := c.edge("e1")
	var calls atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	up := make(chan struct{})
	go func() {
		done <- client.Serve(ctx, c.backend(), "svc:flaky", func(context.Context, *client.ServiceMessage) error {
			switch calls.Add(1) {
			case 1:
				return errors.New("not now")
			case 2:
				panic("nor now")
			}
			return nil
		}, client.WithServiceOptions(client.ServiceOptions{OnSubscribed: func() { close(up) }}))
	}()
	defer func() { cancel(); <-done }()
	<-up
	cl := c.dial(e, "alice")
	cl.Send(t, map[string]any{"id": "1", "dest_id": "svc:flaky", "payload": 1})
	f := cl.Until(t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sent" })
	if f.Status != "stored" {
		t.Fatalf("refused by the handler: %s, want stored", f.Raw)
	}
	testutil.Eventually(t, 30*time.Second, func() error {
		if n := calls.Load(); n < 3 {
			return fmt.Errorf("handler called %d times, want 3 (refuse, panic, take)", n)
		}
		if n := c.inboxMsgs(t, e); n != 0 {
			return fmt.Errorf("%d messages still stored", n)
		}
		return nil
	})
}

// Issue 14, acceptance 1: three replica processes of one service, 10,000
// messages from 50 websocket clients over two edges, one replica SIGKILLed
// mid-stream. Every message answered delivered or stored reaches some
// replica's handler; duplicates are counted.
func TestServiceReplicasSurviveSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs processes")
	}
	dir := t.TempDir()
	build := exec.Command("go", "build", "-o", filepath.Join(dir, "replica"), "./replica")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build replica: %v\n%s", err, out)
	}
	c := newCluster(t)
	edges := []*testEdge{c.edge("e1"), c.edge("e2")}
	const service = "svc:matchmaker"

	type replica struct {
		cmd  *exec.Cmd
		out  string
		done chan struct{}
	}
	var replicas []*replica
	for i := range 3 {
		r := &replica{out: filepath.Join(dir, fmt.Sprintf("replica-%d.out", i)), done: make(chan struct{})}
		logf, err := os.Create(filepath.Join(dir, fmt.Sprintf("replica-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		r.cmd = exec.Command(filepath.Join(dir, "replica"))
		r.cmd.Env = append(os.Environ(), "NATS_URL="+c.backendURL(), "SERVICE_ID="+service, "OUT="+r.out)
		r.cmd.Stdout, r.cmd.Stderr = logf, logf
		if err := r.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { _ = r.cmd.Wait(); logf.Close(); close(r.done) }()
		t.Cleanup(func() { _ = r.cmd.Process.Kill(); <-r.done })
		replicas = append(replicas, r)
	}
	for i, r := range replicas {
		testutil.Eventually(t, 30*time.Second, func() error {
			if _, up, _ := readRecords(r.out); !up {
				return fmt.Errorf("replica %d not subscribed yet", i)
			}
			return nil
		})
	}

	const senders, per = 50, 200
	var clients []*wstest.Client
	for i := range senders {
		clients = append(clients, c.dial(edges[i%2], fmt.Sprintf("player-%d", i)))
	}
	var answered atomic.Int64
	killed := make(chan struct{})
	statuses := sendAll(t, clients, service, per, 20, func() {
		if answered.Add(1) == senders*per/3 {
			_ = replicas[0].cmd.Process.Signal(syscall.SIGKILL)
			close(killed)
		}
	})
	<-killed
	<-replicas[0].done
	count := map[string]int{}
	for id, st := range statuses {
		count[st]++
		if st != "delivered" && st != "stored" {
			t.Errorf("message %s answered %s", id, st)
		}
	}
	var handled map[string]int
	testutil.Eventually(t, 120*time.Second, func() error {
		handled = map[string]int{}
		for _, r := range replicas {
			recs, _, err := readRecords(r.out)
			if err != nil {
				return err
			}
			for _, rec := range recs {
				handled[rec[0]]++
			}
		}
		missing := 0
		for id := range statuses {
			if handled[id] == 0 {
				missing++
			}
		}
		if missing > 0 {
			return fmt.Errorf("%d of %d answered messages have reached no replica", missing, len(statuses))
		}
		return nil
	})
	dups := 0
	for _, n := range handled {
		dups += n - 1
	}
	t.Logf("%d messages: %d delivered, %d stored (then drained to the surviving replicas); 0 lost; %d duplicates",
		len(statuses), count["delivered"], count["stored"], dups)
	if len(statuses) != senders*per {
		t.Fatalf("%d distinct msg_ids answered, want %d", len(statuses), senders*per)
	}
}

// Issue 14, bad input: a websocket client cannot claim a service id with
// an ordinary auth_key.
func TestWebsocketCannotClaimServiceID(t *testing.T) {
	c := newCluster(t)
	e := c.edge("e1")
	key, err := c.keys.MintAuthKey(auth.Identity{NodeID: "svc:matchmaker"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, resp, err := wstest.DialErr("ws://" + e.http.Listener.Addr().String() + "/v1/ws?auth_key=" + url.QueryEscape(key))
	if err == nil {
		t.Fatal("connected as a service id")
	}
	if resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("dial as svc:matchmaker: %v %+v", err, resp)
	}
}
