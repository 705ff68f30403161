package client

import (
	"testing"
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
