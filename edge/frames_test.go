package edge

import (
	"encoding/json"
	"strings"
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
		f, err := decodeFrame([]byte(c.in), allspark.DefaultMaxJSONDepth)
		if err != nil || f.kind != c.kind {
			t.Errorf("%s: kind %d err %v, want kind %d", c.in, f.kind, err, c.kind)
		}
	}
}

// A field no frame has is rejected, naming it, instead of being dropped
// (a misspelt "paylod" used to store the message with no payload). The
// correlation id still reaches the error frame.
func TestDecodeFrameRejectsUnknownFields(t *testing.T) {
	cases := []struct{ in, field, id string }{
		{`{"id":"c-1","dest_id":"bob","paylod":"hi"}`, `"paylod"`, "c-1"},
		{`{"dest_id":"bob","payload":"hi","paylod1":"x","id":"c-2"}`, `"paylod1"`, "c-2"},
		{`{"paylod":"a ping with a typo"}`, `"paylod"`, ""},
		{`{"type":"ack","msg_id":"01J","msgids":["a"]}`, `"msgids"`, ""},
		{`{"type":"sync","session_id":"room-1","afterseq":3}`, `"afterseq"`, ""},
		{`{"dest_id":"bob","src_id":"mallory"}`, `"src_id"`, ""},
		{`{"dest_id":"bob","nested":{"payload":1}}`, `"nested"`, ""},
	}
	for _, c := range cases {
		f, err := decodeFrame([]byte(c.in), allspark.DefaultMaxJSONDepth)
		if err == nil || err.Code != allspark.CodeBadFrame || !strings.Contains(err.Message, "unknown field "+c.field) {
			t.Errorf("%s: err %v, want bad_frame naming %s", c.in, err, c.field)
		}
		if f.id != c.id {
			t.Errorf("%s: id %q, want %q", c.in, f.id, c.id)
		}
	}
	for _, in := range []string{`{"dest_id":"bob"} {}`, `{"dest_id":"bob"}x`, `{"dest_id":"bob"}}`} {
		if _, err := decodeFrame([]byte(in), allspark.DefaultMaxJSONDepth); err == nil || err.Code != allspark.CodeBadFrame {
			t.Errorf("%s: err %v, want bad_frame", in, err)
		}
	}
}

// Every field the protocol documents for a client frame stays accepted,
// and the payloads arrive intact.
func TestDecodeFrameAcceptsEveryDocumentedField(t *testing.T) {
	cases := []struct {
		in   string
		kind frameKind
	}{
		{`{"type":"message","id":"c-1","dest_id":"bob","payload":{"a":1},"payload1":[1],"payload2":"two"}`, kindMessage},
		{`{"dest_client_id":"acme","payload":null}`, kindMessage},
		{`{"dest_session_id":"room-1","member_id":"anon-1","payload":"x"}`, kindMessage},
		{`{"type":"ack","msg_id":"a","msg_ids":["b","c"],"session_id":"room-1","seq":4}`, kindAck},
		{`{"type":"sync","id":"s-1","session_id":"room-1","after_seq":1,"limit":10}`, kindSync},
		{`{"type":"ping","id":"p-1"}`, kindPing},
	}
	for _, c := range cases {
		f, err := decodeFrame([]byte(c.in), allspark.DefaultMaxJSONDepth)
		if err != nil || f.kind != c.kind {
			t.Errorf("%s: kind %v err %v, want %v", c.in, f.kind, err, c.kind)
		}
	}
	f, _ := decodeFrame([]byte(cases[0].in), allspark.DefaultMaxJSONDepth)
	if m := f.msg; string(m.Payload) != `{"a":1}` || string(m.Payload1) != `[1]` || string(m.Payload2) != `"two"` {
		t.Fatalf("payloads %s %s %s", m.Payload, m.Payload1, m.Payload2)
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
		`{"dest_session_id":"room-1","member_id":"anon-1","payload":1}`,
		`{"type":"ack","session_id":"room-1","seq":9}`,
		`{"id":"c-1","dest_id":"bob","paylod":"hi"}`, `{"paylod":1}`, `{"dest_id":"bob"} {}`,
		`{"Payload":1,"DEST_ID":"bob"}`,
		`{"dest_id":"bob","payload":` + strings.Repeat("[", 65) + strings.Repeat("]", 65) + `}`,
		`{"dest_id":"bob","payload":"` + strings.Repeat("[", 65) + `"}`, `{"type":"sync","session_id":"s","limit":"x"}`,
		`{"type":"sync","session_id":"s","after_seq":18446744073709551615}`,
	} {
		f.Add([]byte(s))
	}
	known := map[allspark.Code]bool{allspark.CodeBadFrame: true, allspark.CodeBadID: true, allspark.CodeUnknownType: true}
	f.Fuzz(func(t *testing.T, b []byte) {
		fr, err := decodeFrame(b, allspark.DefaultMaxJSONDepth)
		if err != nil {
			if !known[err.Code] || err.Message == "" || strings.Contains(err.Message, "Go ") {
				t.Fatalf("error %v for %q", err, b)
			}
			return
		}
		if allspark.CheckDepth(b, allspark.DefaultMaxJSONDepth) != nil {
			t.Fatalf("accepted a frame nested past the limit: %q", b)
		}
		var fields map[string]json.RawMessage
		if json.Unmarshal(b, &fields) == nil {
			for k := range fields {
				if !frameField(k) {
					t.Fatalf("accepted unknown field %q in %q", k, b)
				}
			}
		}
		switch fr.kind {
		case kindMessage:
			if e := fr.msg.CheckDest(); e != nil {
				t.Fatalf("accepted message with bad destination %+v: %v", fr.msg, e)
			}
		case kindAck:
			if (len(fr.ackIDs) == 0 && fr.sessionID == "") || len(fr.ackIDs) > maxAckBatch {
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

// frameField reports whether k names a field of a client frame, matched as
// encoding/json matches them (without regard to case).
func frameField(k string) bool {
	for _, f := range [...]string{"type", "id", "dest_id", "dest_client_id", "dest_session_id", "payload", "payload1", "payload2",
		"msg_id", "msg_ids", "session_id", "after_seq", "seq", "member_id", "limit"} {
		if strings.EqualFold(k, f) {
			return true
		}
	}
	return false
}
