package client

import (
	"testing"
	"time"
)

// FuzzDecodeFrame: any bytes decode to a frame or an error, never a panic,
// and a frame that decodes has a kind.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"msg_id":"01J","src_id":"alice","dest_id":"bob","payload":"hi","ts":1}`,
		`{"msg_id":"01J","src_id":"anon-1","dest_session_id":"room","seq":4,"payload":{}}`,
		`{"type":"sent","id":"c-1","msg_id":"01J","status":"delivered"}`,
		`{"type":"sent","id":"c-2","status":"rejected","error":{"code":"bad_id"}}`,
		`{"type":"sync_done","pending":3}`, `{"type":"sync_done","session_id":"room","last_seq":9}`,
		`{"type":"presence","session_id":"room","member_id":"bob","online":true}`,
		`{"type":"error","code":"bad_frame","message":"x","id":"c-3"}`,
		`{"type":"reconnect","after_ms":0}`, `{"type":"pong"}`, `not json`, ``, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err == nil && fr.kind == 0 {
			t.Fatalf("%q decoded without a kind", b)
		}
	})
}

func TestDedupBounded(t *testing.T) {
	d := newDedup(3)
	for _, id := range []string{"a", "b", "c"} {
		if isNew, _ := d.add(id); !isNew {
			t.Fatalf("%s not new", id)
		}
	}
	d.markAcked("b")
	if isNew, acked := d.add("b"); isNew || !acked {
		t.Fatalf("b: new=%v acked=%v, want a known acked duplicate", isNew, acked)
	}
	d.add("d") // evicts a
	if d.len() != 3 {
		t.Fatalf("holds %d ids, want 3", d.len())
	}
	if isNew, _ := d.add("a"); !isNew {
		t.Fatal("a should have been forgotten")
	}
}

func TestBackoffJitteredExponential(t *testing.T) {
	c, err := New(Config{URL: "http://127.0.0.1:1", AuthKey: "k", MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for n, want := range []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond, 2 * time.Second, 2 * time.Second} {
		seen := map[time.Duration]bool{}
		for range 50 {
			d := c.backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("attempt %d: delay %s outside [%s, %s]", n, d, want/2, want)
			}
			seen[d] = true
		}
		if len(seen) < 2 {
			t.Fatalf("attempt %d: no jitter (%v)", n, seen)
		}
	}
	if d := c.backoff(1000); d > 2*time.Second || d < time.Second {
		t.Fatalf("attempt 1000: %s, want capped at 2s", d)
	}
}
