package edge_test

import (
	"bytes"
	"encoding/json"
	"github.com/allspark-rt/allspark/edge"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
)

// Acceptance 4: a backend publishes on allspark.send with plain nats.go.
func TestBackendSendOverNATS(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a")
	bob := c.dial(a, "bob", "bob")
	nc := testutil.Connect(t, c.ns.ClientURL())

	reply, err := nc.Request("allspark.send", []byte(`{"id":"b-1","src_id":"billing-service","dest_id":"bob","payload":{"invoice":42}}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var sent struct{ Type, ID, MsgID, Status string }
	if err := json.Unmarshal(reply.Data, &sent); err != nil {
		t.Fatal(err)
	}
	f := bob.Until(t, wait, wstest.Frame.IsMessage)
	if f.SrcID != "billing-service" || string(f.Payload) != `{"invoice":42}` {
		t.Fatalf("bob got %s", f.Raw)
	}
	if !strings.Contains(string(reply.Data), `"status":"delivered"`) || !strings.Contains(string(reply.Data), `"id":"b-1"`) || !strings.Contains(string(reply.Data), f.MsgID) {
		t.Fatalf("reply %s", reply.Data)
	}

	// A bad request gets a rejected answer, not silence.
	reply, err = nc.Request("allspark.send", []byte(`{"dest_id":"bob"}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"type":"sent","status":"rejected","error":{"code":"bad_id","message":"src_id must be a valid id"}}`; string(reply.Data) != want {
		t.Fatalf("reply %s, want %s", reply.Data, want)
	}
}

func postMessage(t *testing.T, base, key, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/messages", strings.NewReader(body))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(bytes.TrimSpace(b))
}

// Acceptance 4: POST /v1/messages does the same, and guards itself.
func TestPostMessages(t *testing.T) {
	c := newCluster(t)
	a, b := c.edge("edge-a"), c.edge("edge-b")
	bob := c.dial(b, "bob", "bob")

	status, body := postMessage(t, a.http.URL, "test-api-key", `{"src_id":"svc","dest_id":"bob","payload":"from http"}`)
	if status != 200 || !strings.Contains(body, `"status":"delivered"`) {
		t.Fatalf("%d %s", status, body)
	}
	if f := bob.Until(t, wait, wstest.Frame.IsMessage); f.SrcID != "svc" || string(f.Payload) != `"from http"` {
		t.Fatalf("bob got %s", f.Raw)
	}

	cases := []struct {
		name, key, body string
		status          int
		want            string
	}{
		{"wrong key", "nope", `{"src_id":"svc","dest_id":"bob"}`, 401, `{"error":{"code":"unauthorized","message":"wrong or missing API key"}}`},
		{"no key", "", `{"src_id":"svc","dest_id":"bob"}`, 401, `{"error":{"code":"unauthorized","message":"wrong or missing API key"}}`},
		{"not json", "test-api-key", `nope`, 400, `"code":"bad_frame"`},
		{"no dest", "test-api-key", `{"src_id":"svc"}`, 400, `"code":"bad_frame"`},
		{"two dests", "test-api-key", `{"src_id":"svc","dest_id":"bob","dest_client_id":"bob"}`, 400, `"code":"bad_frame"`},
		{"bad dest id", "test-api-key", `{"src_id":"svc","dest_id":"a\u0000b"}`, 400, `"code":"bad_id"`},
		{"too large", "test-api-key", `{"src_id":"svc","dest_id":"bob","payload":"` + strings.Repeat("x", 70000) + `"}`, 413, `"code":"too_large"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			status, body := postMessage(t, a.http.URL, tc.key, tc.body)
			if status != tc.status || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want %d %s", status, body, tc.status, tc.want)
			}
		})
	}
	bob.Quiet(t, 50*time.Millisecond)
}

// With no API key configured the endpoint is closed.
func TestPostMessagesDisabledWithoutKey(t *testing.T) {
	c := newCluster(t)
	a := c.edge("edge-a", func(cfg *edge.Config) { cfg.APIKey = "" })
	status, body := postMessage(t, a.http.URL, "", `{"src_id":"svc","dest_id":"bob"}`)
	if status != 401 || !strings.Contains(body, "ALLSPARK_API_KEY is not set") {
		t.Fatalf("%d %s", status, body)
	}
}
