package edge

import (
	"testing"

	"github.com/allspark-rt/allspark"
)

func TestDecodeFrameKinds(t *testing.T) {
	cases := []struct {
		in   string
		kind frameKind
	}{
		{`{}`, kindPing},
		{` {"payload":"just a ping"} `, kindPing},
		{`{"type":"ping"}`, kindPing},
		{`{"id":"c-17","dest_id":"bob","payload":"hi","payload1":1,"payload2":null}`, kindMessage},
		{`{"type":"message","dest_client_id":"acme"}`, kindMessage},
		{`{"dest_session_id":"room-1"}`, kindMessage},
		{`{"type":"ack","msg_id":"01J"}`, kindAck},
		{`{"type":"ack","msg_ids":["a","b"]}`, kindAck},
		{`{"type":"sync","session_id":"room-1","after_seq":120,"limit":100}`, kindSync},
	}
	for _, c := range cases {
		f, err := decodeFrame([]byte(c.in))
		if err != nil || f.kind != c.kind {
			t.Errorf("%s: kind %d err %v, want kind %d", c.in, f.kind, err, c.kind)
		}
	}
}

// FuzzDecodeFrame: no input panics; every accepted message has exactly one
// valid destination, and every rejection carries a catalogued code.
func FuzzDecodeFrame(f *testing.F) {
	for _, s := range []string{
		`{"id":"c-17","dest_id":"bob","payload":"hi","payload1":"…","payload2":"…"}`,
		`{"dest_client_id":"acme-user-7","payload":{"a":[1,2,3]}}`,
		`{"dest_session_id":"room-1","payload":null}`,
		`{"type":"ack","msg_id":"01J9ZXK"}`, `{"type":"ack","msg_ids":["a","b"]}`,
		`{"type":"sync","session_id":"room-1","after_seq":120,"limit":100}`,
		`{}`, `{"type":"ping"}`, `{"dest_id":"","dest_client_id":"x"}`, `[]`, `null`, `"x"`, `{"type":7}`,
	} {
		f.Add([]byte(s))
	}
	known := map[allspark.Code]bool{allspark.CodeBadFrame: true, allspark.CodeBadID: true, allspark.CodeUnknownType: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b)
		if err != nil {
			if !known[err.Code] || err.Message == "" {
				t.Fatalf("error %v for %q", err, b)
			}
			return
		}
		switch fr.kind {
		case kindMessage:
			if e := fr.msg.CheckDest(); e != nil {
				t.Fatalf("accepted message with bad destination %+v: %v", fr.msg, e)
			}
		case kindAck:
			if len(fr.ackIDs) == 0 || len(fr.ackIDs) > maxAckBatch {
				t.Fatalf("ack with %d ids", len(fr.ackIDs))
			}
		case kindSync:
			if !allspark.ValidID(fr.sessionID) {
				t.Fatalf("sync with bad session %q", fr.sessionID)
			}
		case kindPing:
		default:
			t.Fatalf("no kind for %q", b)
		}
	})
}
