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
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		bm, err := ParseBackendMessage(b, 4096)
		if err != nil {
			if err.Code == "" {
				t.Fatalf("empty code for %q", b)
			}
			return
		}
		if !allspark.ValidID(bm.SrcID) || bm.CheckDest() != nil || bm.Seq != 0 {
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
	_, err := ParseBackendMessage([]byte(`{"src_id":"s","dest_id":"d","payload":"`+strings.Repeat("x", 100)+`"}`), 50)
	if err == nil || err.Code != allspark.CodeTooLarge {
		t.Fatalf("err = %v", err)
	}
}
