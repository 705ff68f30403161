package client_test

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go"
)

func TestServeRefusesNonServiceID(t *testing.T) {
	nc := testutil.Connect(t, testutil.RunNATS(t).ClientURL())
	for _, id := range []string{"matchmaker", "svc:", ""} {
		if err := client.Serve(context.Background(), nc, id, nil); err == nil {
			t.Errorf("Serve(%q) accepted", id)
		}
	}
}

// The raw protocol: "+" when the handler takes a message, "-" when it
// errs or panics; an inbox nudge and the start both ask for the backlog.
func TestServeProtocol(t *testing.T) {
	ns := testutil.RunNATS(t)
	nc := testutil.Connect(t, ns.ClientURL())
	edge := testutil.Connect(t, ns.ClientURL())
	tok := base64.RawURLEncoding.EncodeToString([]byte("svc:echo"))
	ready := make(chan struct{}, 16)
	if _, err := edge.Subscribe("allspark.svcready."+tok, func(*nats.Msg) { ready <- struct{}{} }); err != nil {
		t.Fatal(err)
	}
	if err := edge.Flush(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	got := make(chan *client.ServiceMessage, 16)
	go func() {
		done <- client.Serve(ctx, nc, "svc:echo", func(_ context.Context, m *client.ServiceMessage) error {
			switch string(m.Payload) {
			case `"fail"`:
				return errors.New("refused")
			case `"panic"`:
				panic("boom")
			}
			got <- m
			return nil
		})
	}()
	waitReady := func(what string) {
		t.Helper()
		select {
		case <-ready:
		case <-time.After(10 * time.Second):
			t.Fatalf("no backlog request after %s", what)
		}
	}
	waitReady("start")
	for payload, want := range map[string]string{`"ok"`: "+", `"fail"`: "-", `"panic"`: "-"} {
		reply, err := edge.Request("allspark.svc."+tok, []byte(`{"msg_id":"m","src_id":"alice","dest_id":"svc:echo","payload":`+payload+`}`), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if string(reply.Data) != want {
			t.Errorf("payload %s answered %q, want %q", payload, reply.Data, want)
		}
	}
	select {
	case m := <-got:
		if m.SrcID != "alice" || m.MsgID != "m" || string(m.Payload) != `"ok"` {
			t.Fatalf("handler got %+v", m)
		}
	default:
		t.Fatal("handler did not get the message")
	}
	if err := edge.PublishMsg(&nats.Msg{Subject: "allspark.svc." + tok, Header: nats.Header{"Allspark-Inbox": []string{"1"}}}); err != nil {
		t.Fatal(err)
	}
	waitReady("inbox nudge")
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve: %v", err)
	}
}
