package edge_test

import (
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// Acceptance (issue 11 #1): pings go out on a fixed ticker, so a session
// member that only listens (it never writes, not even acks) under steady
// traffic answers pings and stays; a client that stops answering pings is
// closed within two intervals.
func TestKeepaliveOnFixedTicker(t *testing.T) {
	const interval = 200 * time.Millisecond
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.PingInterval = interval })
	c.mustCall(a, "POST", "/v1/sessions", "talker", "talker", map[string]any{"session_id": "radio"}, 201)
	c.mustCall(a, "POST", "/v1/sessions/radio/join", "listener", "listener", nil, 200)
	talker := c.dial(a, "talker", "talker")
	listener := c.dial(a, "listener", "listener")
	listener.SetAutoAck(false) // session messages need no ack: it sends nothing at all

	const n = 60 // one every 50 ms for 3 s
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for i := range n {
		select {
		case <-listener.Closed():
			t.Fatalf("listener closed (code %d) after %d of %d messages", listener.CloseCode(), i, n)
		case <-tick.C:
		}
		talker.Send(t, map[string]any{"dest_session_id": "radio", "payload": i})
	}
	for i := range n {
		select {
		case <-listener.Closed():
			t.Fatalf("listener closed (code %d) with %d of %d messages read", listener.CloseCode(), i, n)
		default:
		}
		f := listener.Until(t, wait, wstest.Frame.IsMessage)
		if string(f.Payload) != fmt.Sprint(i) {
			t.Fatalf("listener got %s, want payload %d", f.Raw, i)
		}
	}
	select {
	case <-listener.Closed():
		t.Fatalf("listener closed with code %d", listener.CloseCode())
	default:
	}
	waitConns(t, a, 2)

	// A client that does not answer pings. The server last heard from it
	// at the handshake, which completes before Dial returns.
	quiet := wstest.Dial(t, a.wsURL("auth_key="+url.QueryEscape(c.authKey("quiet", "quiet"))))
	quiet.SetPong(false)
	start := time.Now()
	select {
	case <-quiet.Closed():
	case <-time.After(wait):
		t.Fatalf("a client that answers no ping is still open after %s", wait)
	}
	if took := time.Since(start); took > 2*interval {
		t.Fatalf("unresponsive client closed after %s, want within 2 ping intervals (%s)", took, 2*interval)
	}
	waitConns(t, a, 2)
	select {
	case <-listener.Closed():
		t.Fatalf("listener closed with code %d", listener.CloseCode())
	default:
	}
}
