package edge

import (
	"reflect"
	"strings"
	"testing"

	"github.com/allspark-rt/allspark"
)

// FuzzFastParseMatchesJSON: wherever the hand-written parser accepts a
// frame, encoding/json (the strict decoder) accepts it too and decodes
// exactly the same fields.
func FuzzFastParseMatchesJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"c-17","dest_id":"bob","payload":"hi","payload1":{"n":1},"payload2":[1,2]}`,
		`{"dest_client_id":"acme-user-7","payload":{"a":[1,2,3]}}`,
		`{"dest_session_id":"room-1","payload":null}`, `{"dest_id":"bob","payload":1}`,
		`{"dest_id":"bob","payload":-1.5e3 }`, `{"dest_id":"bob","payload":true}`,
		`{"dest_id":"bob","payload":"a\"}b"}`, `{"dest_id":"bob","payload":{"}":"]"}}`,
		`{"type":"ack","msg_id":"01J9ZXK"}`, `{"type":"ack","msg_ids":["a","b"]}`, `{"type":"ack","msg_ids":[]}`,
		`{"type":"sync","session_id":"room-1","after_seq":120,"limit":100}`,
		`{}`, ` { } `, `{"type":"ping"}`, `{"dest_id":"","dest_client_id":"x"}`, `{"type":7}`,
		`{"dest_session_id":"room-1","member_id":"anon-1","payload":1}`,
		`{"id":"c-1","dest_id":"bob","paylod":"hi"}`, `{"dest_id":"bob"} {}`, `{"dest_id":"bob",}`,
		`{"Payload":1,"DEST_ID":"bob"}`, `{"dest_id":"bob","dest_id":"al"}`, `{"dest_id":"b\u00e9"}`,
		`{"dest_id":"bob","payload":01}`, `{"dest_id":"bob","payload":[1,]}`, `{"dest_id":"bob","payload":}`,
		`{"dest_id":"bob","payload":"` + strings.Repeat("x", 300) + `"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var fast inFrame
		if !fastParse(b, &fast) {
			return
		}
		var slow inFrame
		if err := allspark.DecodeObjectDepth(b, &slow, 1<<20); err != nil {
			t.Fatalf("fast parse accepted %q, encoding/json refused it: %v", b, err)
		}
		if !reflect.DeepEqual(fast, slow) {
			t.Fatalf("%q:\nfast %+v\njson %+v", b, fast, slow)
		}
	})
}

// The fast path takes the frames of a 1:1 message and its ack.
func TestFastParseTakesCommonFrames(t *testing.T) {
	for _, s := range []string{
		`{"id":"c-17","dest_id":"bob","payload":{"k":"v","t":123}}`,
		`{"type":"ack","msg_id":"01J9ZXK"}`,
	} {
		var in inFrame
		if !fastParse([]byte(s), &in) {
			t.Errorf("fast path refused %s", s)
		}
	}
}
