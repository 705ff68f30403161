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
		`{"type":"presence_summary","session_id":"room","online":42}`,
		`{"type":"presence_summary","session_id":"room","online":-1}`,
		`{"type":"martian","online":"x","status":5}`, `{"type":5}`,
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

// Presence frames: online is a bool in presence and a count in
// presence_summary; a malformed one is an error, as is malformed JSON, but a
// well-formed frame of an unknown type (even reusing a field with another
// JSON type) decodes as kindUnknown, to be ignored.
func TestDecodePresenceAndUnknownTypes(t *testing.T) {
	for _, tc := range []struct {
		in     string
		kind   kind
		online bool
		count  int
	}{
		{in: `{"type":"presence_summary","session_id":"room-1","online":42}`, kind: kindPresenceSummary, count: 42},
		{in: `{"type":"presence_summary","session_id":"room-1","online":0,"extra":[1]}`, kind: kindPresenceSummary},
		{in: `{"type":"presence","session_id":"room-1","member_id":"bob","online":true}`, kind: kindPresence, online: true},
		{in: `{"type":"presence","session_id":"room-1","member_id":"bob"}`, kind: kindPresence},
		{in: `{"type":"martian"}`, kind: kindUnknown},
		{in: ` {"type":"martian","online":"x","status":5,"pending":"p"}`, kind: kindUnknown},
		{in: `{"type":"presence_summary"}`},
		{in: `{"type":"presence_summary","online":3}`},
		{in: `{"type":"presence_summary","session_id":"r"}`},
		{in: `{"type":"presence_summary","session_id":"r","online":null}`},
		{in: `{"type":"presence_summary","session_id":"r","online":-1}`},
		{in: `{"type":"presence_summary","session_id":"r","online":1.5}`},
		{in: `{"type":"presence_summary","session_id":"r","online":"3"}`},
		{in: `{"type":"presence_summary","session_id":"r","online":true}`},
		{in: `{"type":"presence_summary","session_id":7,"online":3}`},
		{in: `{"type":"presence","session_id":"r","member_id":"bob","online":1}`},
		{in: `{"type":"sent","status":5}`},
		{in: `{"type":5}`},
		{in: `{"type":"martian"`},
		{in: `["martian"]`},
	} {
		fr, err := decodeFrame([]byte(tc.in))
		if tc.kind == 0 {
			if err == nil {
				t.Errorf("%s: decoded as kind %d, want an error", tc.in, fr.kind)
			}
			continue
		}
		if err != nil || fr.kind != tc.kind || fr.online != tc.online || fr.count != tc.count {
			t.Errorf("%s: kind %d online %v count %d err %v, want kind %d online %v count %d",
				tc.in, fr.kind, fr.online, fr.count, err, tc.kind, tc.online, tc.count)
		}
	}
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
