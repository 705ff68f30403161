package edge

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

// Acks for several requests of one sending edge go back as one NATS
// message, and only the requests listed in it are answered acked: the one
// left out times out.
func TestAckBatcherOneMessagePerSender(t *testing.T) {
	ns := testutil.RunNATS(t)
	sender, target := testutil.Connect(t, ns.ClientURL()), testutil.Connect(t, ns.ClientURL())
	req, err := bus.NewRequester(sender, 500*time.Millisecond, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	reqs, err := target.SubscribeSync("node.x")
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Flush(); err != nil { // the interest is at the server before the requests
		t.Fatal(err)
	}
	var prefix string
	const n = 4
	replies := make([]string, n)
	var mu sync.Mutex
	got := map[int]string{}
	done := make(chan struct{}, n)
	for i := range n {
		err := req.Request(&nats.Msg{Subject: "node.x"}, func(m *nats.Msg, err error) {
			mu.Lock()
			if err != nil {
				got[i] = err.Error()
			} else {
				got[i] = string(m.Data)
			}
			mu.Unlock()
			done <- struct{}{}
		})
		if err != nil {
			t.Fatal(err)
		}
		m, err := reqs.NextMsg(5 * time.Second)
		if err != nil {
			t.Fatal(err)
		}
		replies[i] = m.Reply
		prefix = m.Reply[:strings.LastIndexByte(m.Reply, '.')+1]
	}
	batches, err := target.SubscribeSync(prefix + ">")
	if err != nil {
		t.Fatal(err)
	}
	if err := target.Flush(); err != nil {
		t.Fatal(err)
	}

	b := newAckBatcher(target)
	b.publish([]string{replies[0], replies[2], replies[3]}) // 1 is not acked
	for range n {
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("answers so far: %v", got)
		}
	}
	want := map[int]string{0: "+", 1: nats.ErrTimeout.Error(), 2: "+", 3: "+"}
	mu.Lock()
	defer mu.Unlock()
	for i, w := range want {
		if got[i] != w {
			t.Errorf("request %d answered %q, want %q", i, got[i], w)
		}
	}
	if c, _, _ := batches.Pending(); c != 1 {
		t.Errorf("%d reply messages for 3 acks, want 1", c)
	}
}
