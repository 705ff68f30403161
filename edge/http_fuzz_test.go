package edge_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
)

// FuzzHTTPBodies sends arbitrary bodies to the edge's JSON endpoints
// through its real handler (on a real NATS): nothing panics, and no answer
// is a 5xx other than 503 (a dependency briefly unavailable); every
// error answer is JSON.
func FuzzHTTPBodies(f *testing.F) {
	c := newCluster(f)
	e := c.edge("fuzz-edge")
	h := e.srv.Handler()
	auth := "Bearer " + c.authKey("alice", "alice-phone")
	endpoints := []struct{ path, auth string }{
		{"/v1/sessions", auth},
		{"/v1/push-tokens", auth},
		{"/v1/messages", "Bearer " + e.cfg.APIKey},
	}
	for i, s := range []string{
		`{"session_id":"room-1","members":["alice","bob"]}`, `{"members":["alice"]}`, `{}`,
		`{"platform":"apns","token":"abcdef0123456789"}`, `{"platform":"fcm","token":"t","topic":"x"}`,
		`{"id":"b-1","src_id":"billing","dest_id":"bob","payload":{"invoice":42}}`,
		`{"src_id":"svc","dest_session_id":"room-1","payload":"hi"}`,
		`null`, `[]`, `"x"`, `{"members":null}`, `{"session_id":""}`, "\xff\xfe", `{"token":` + `"` + string(bytes.Repeat([]byte("a"), 5000)) + `"}`,
	} {
		f.Add(uint8(i), []byte(s))
	}
	f.Fuzz(func(t *testing.T, which uint8, body []byte) {
		ep := endpoints[int(which)%len(endpoints)]
		req := httptest.NewRequest("POST", ep.path, bytes.NewReader(body))
		req.Header.Set("Authorization", ep.auth)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("POST %s %q: %d %s", ep.path, body, rec.Code, rec.Body)
		}
		if rec.Code >= 400 && rec.Header().Get("Content-Type") != "application/json" {
			t.Fatalf("POST %s %q: %d with content type %q", ep.path, body, rec.Code, rec.Header().Get("Content-Type"))
		}
	})
}
