package client_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/client"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/lxzan/gws"
)

// fakeEdge answers /v1/connect and, on the websocket, sends the frames in
// script (a text frame each, or a binary one for a "bin:" prefix).
type fakeEdge struct {
	script []string
	up     *gws.Upgrader
}

type fakeEvents struct{ gws.BuiltinEventHandler }

func (f *fakeEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/v1/connect":
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"node_id":"bob","client_id":"bob","validation_token":"vt","edge":{"id":"fake","ws_url":""}}`)
	case "/v1/ws":
		socket, err := f.up.Upgrade(w, r)
		if err != nil {
			return
		}
		go func() {
			for _, s := range f.script {
				if b, ok := strings.CutPrefix(s, "bin:"); ok {
					_ = socket.WriteMessage(gws.OpcodeBinary, []byte(b))
				} else {
					_ = socket.WriteString(s)
				}
			}
			socket.ReadLoop()
		}()
	default:
		http.NotFound(w, r)
	}
}

// dialFake connects a client with r's handlers to a fake edge sending script.
func dialFake(t *testing.T, script []string, r *recorder, mods ...func(*client.Config)) *client.Client {
	t.Helper()
	fe := &fakeEdge{script: script, up: gws.NewUpgrader(fakeEvents{}, nil)}
	srv := httptest.NewServer(fe)
	t.Cleanup(srv.Close)
	cfg := client.Config{URL: srv.URL, AuthKey: "k"}
	r.config(&cfg)
	for _, m := range mods {
		m(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return cl
}

// Frame types the client does not know are ignored (the protocol may add
// some), even when they give a known field another JSON type; the frames
// around them arrive in order. The message sent last is the barrier: the
// frames before it were all read when it reaches the handler.
func TestUnknownFrameTypesIgnored(t *testing.T) {
	script := []string{
		`{"type":"sync_done","pending":0}`,
		`{"type":"martian"}`, `{"type":"martian","online":"many","status":5,"pending":"x"}`,
		`{"type":"presence_summary","session_id":"room-1","online":42}`,
		`{"type":"typing","session_id":"room-1","member_id":"bob"}`,
		`{"type":"presence","session_id":"room-1","member_id":"carol","online":true}`,
		`{"msg_id":"m1","src_id":"alice","dest_id":"bob","payload":"ok"}`,
	}
	r := newRecorder()
	var order []string // guarded by r.mu
	dialFake(t, script, r, func(cfg *client.Config) {
		onSummary, onPresence, onMessage := cfg.OnPresenceSummary, cfg.OnPresence, cfg.OnMessage
		cfg.OnPresenceSummary = func(p client.PresenceSummary) {
			r.mu.Lock()
			order = append(order, "summary")
			r.mu.Unlock()
			onSummary(p)
		}
		cfg.OnPresence = func(p client.Presence) {
			r.mu.Lock()
			order = append(order, "presence")
			r.mu.Unlock()
			onPresence(p)
		}
		cfg.OnMessage = func(ctx context.Context, m *client.Message) {
			r.mu.Lock()
			order = append(order, "message")
			r.mu.Unlock()
			onMessage(ctx, m)
		}
	})
	r.waitMessages(t, 1)
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.errs) != 0 {
		t.Fatalf("error events for unknown frame types: %v", r.errs)
	}
	if want := []client.PresenceSummary{{SessionID: "room-1", Online: 42}}; !slices.Equal(r.summary, want) {
		t.Fatalf("summaries %v, want %v", r.summary, want)
	}
	if want := []string{"summary", "presence", "message"}; !slices.Equal(order, want) {
		t.Fatalf("events in order %v, want %v", order, want)
	}
}

// A server that sends garbage gets error events; the connection stays and
// the valid frames after the garbage still arrive.
func TestMalformedFramesAreErrors(t *testing.T) {
	garbage := []string{
		`not json`, `[1,2]`, `{"type":`, `{"type":5}`, `{"type":"martian"`, `{"msg_id":"m0"}`,
		`{"type":"presence_summary"}`, `{"type":"presence_summary","session_id":"r","online":-1}`,
		`{"type":"presence_summary","session_id":"r","online":"3"}`, `{"type":"presence_summary","online":3}`,
		`{"type":"sent","status":"maybe"}`, `{"type":"presence"}`, `{"type":"error"}`,
		`{"payload":"no id","dest_id":"bob"}`, `{"type":"reconnect","after_ms":-5}`, "bin:\x00\x01", `""`, `null`,
		`{"msg_id":7,"dest_id":"bob"}`,
	}
	// And random bytes, which must never reach the handler or end the
	// connection. The first byte is never '{' so none is a valid frame.
	rng := rand.New(rand.NewChaCha8([32]byte{7}))
	for range 200 {
		b := make([]byte, 1+rng.IntN(300))
		for i := range b {
			b[i] = byte(rng.UintN(256))
		}
		if b[0] == '{' || b[0] == ' ' || b[0] == '\t' || b[0] == '\n' || b[0] == '\r' {
			b[0] = 'x'
		}
		garbage = append(garbage, string(b))
	}
	script := append([]string{`{"type":"sync_done","pending":0}`}, garbage...)
	script = append(script, `{"msg_id":"m1","src_id":"alice","dest_id":"bob","payload":"ok"}`)
	fe := &fakeEdge{script: script, up: gws.NewUpgrader(fakeEvents{}, nil)}
	srv := httptest.NewServer(fe)
	defer srv.Close()

	r := newRecorder()
	cfg := client.Config{URL: srv.URL, AuthKey: "k"}
	r.config(&cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cl, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r.waitMessages(t, 1)
	testutil.Eventually(t, 10*time.Second, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.errs) != len(garbage) {
			return fmt.Errorf("%d error events, want %d: %v", len(r.errs), len(garbage), r.errs)
		}
		return nil
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, err := range r.errs {
		var fe *client.FrameError
		if !errors.As(err, &fe) {
			t.Errorf("error event %v is not a FrameError", err)
		}
	}
	if n := len(r.states); n != 2 || r.states[1].State != client.Connected {
		t.Fatalf("states %v: the connection did not stay", r.states)
	}
}
