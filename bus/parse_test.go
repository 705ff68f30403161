package bus

import (
	"strings"
	"testing"

	"github.com/allspark-rt/allspark"
)

func FuzzParseBackendMessage(f *testing.F) {
	for _, s := range []string{
		`{"id":"b-1","src_id":"billing","dest_id":"bob","payload":{"invoice":42}}`,
		`{"src_id":"svc","dest_client_id":"acme","payload1":[1],"payload2":"x"}`,
		`{"src_id":"svc","dest_session_id":"room","msg_id":"01J"}`,
		`{"dest_id":"bob"}`, `{}`, `nope`,
		`{"src_id":"svc","dest_id":"bob","paylod":{"invoice":42}}`, `{"src_id":"svc","dest_id":"bob"} {}`,
		`{"src_id":"svc","dest_session_id":"room","member_id":"anon-1","seq":3,"ts":1}`,
		`{"src_id":"svc","dest_id":"bob","payload":` + strings.Repeat("{\"a\":", 65) + "1" + strings.Repeat("}", 65) + `}`,
		`{"src_id":"svc","dest_id":7}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bm, err := ParseBackendMessage(b, 4096, allspark.DefaultMaxJSONDepth)
		if err != nil {
			if err.Code == "" || strings.Contains(err.Message, "Go ") {
				t.Fatalf("empty code for %q", b)
			}
			return
		}
		if !allspark.ValidID(bm.SrcID) || bm.CheckDest() != nil || bm.Seq != 0 || allspark.CheckDepth(b, allspark.DefaultMaxJSONDepth) != nil {
			t.Fatalf("accepted invalid message %+v", bm)
		}
	})
}

func FuzzTokenRoundTrip(f *testing.F) {
	for _, s := range []string{"bob", "a.b.*.>", "with space", "ünï", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		tok := Token(id)
		if strings.ContainsAny(tok, ".*> \t\r\n") {
			t.Fatalf("token %q of %q is not one subject token", tok, id)
		}
		back, err := ParseToken(tok)
		if err != nil || back != id {
			t.Fatalf("round trip %q -> %q -> %q, %v", id, tok, back, err)
		}
	})
}

func TestParseBackendMessageTooLarge(t *testing.T) {
	_, err := ParseBackendMessage([]byte(`{"src_id":"s","dest_id":"d","payload":"`+strings.Repeat("x", 100)+`"}`), 50, allspark.DefaultMaxJSONDepth)
	if err == nil || err.Code != allspark.CodeTooLarge {
		t.Fatalf("err = %v", err)
	}
}

// A field a backend message does not have is rejected, naming it, instead
// of the message being stored without it.
func TestParseBackendMessageRejectsUnknownFields(t *testing.T) {
	for in, field := range map[string]string{
		`{"src_id":"billing","dest_id":"bob","paylod":{"invoice":42}}`:  `"paylod"`,
		`{"src_id":"billing","dest_id":"bob","payload":1,"payload3":2}`: `"payload3"`,
		`{"src_id":"billing","destid":"bob"}`:                           `"destid"`,
		`{"src_id":"billing","dest_id":"bob","SrcNode":"x"}`:            `"SrcNode"`,
	} {
		_, err := ParseBackendMessage([]byte(in), 4096, allspark.DefaultMaxJSONDepth)
		if err == nil || err.Code != allspark.CodeBadFrame || !strings.Contains(err.Message, "unknown field "+field) {
			t.Errorf("%s: err %v, want bad_frame naming %s", in, err, field)
		}
	}
	if _, err := ParseBackendMessage([]byte(`{"src_id":"billing","dest_id":"bob"} {"x":1}`), 4096, allspark.DefaultMaxJSONDepth); err == nil {
		t.Error("data after the object accepted")
	}
}

// Every field of a backend message stays accepted.
func TestParseBackendMessageAcceptsEveryField(t *testing.T) {
	in := `{"id":"b-1","msg_id":"01J","src_id":"billing","src_client_id":"acme","dest_session_id":"room","member_id":"anon-1",` +
		`"payload":{"a":1},"payload1":[1],"payload2":"two","seq":7,"ts":1}`
	bm, err := ParseBackendMessage([]byte(in), 4096, allspark.DefaultMaxJSONDepth)
	if err != nil {
		t.Fatal(err)
	}
	if bm.ID != "b-1" || bm.MsgID != "01J" || bm.SrcClientID != "acme" || bm.MemberID != "anon-1" ||
		string(bm.Payload) != `{"a":1}` || string(bm.Payload1) != `[1]` || string(bm.Payload2) != `"two"` || bm.Seq != 0 {
		t.Fatalf("parsed %+v", bm)
	}
}
