package servicetest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
)

func presenceHTTP(t *testing.T, e *testEdge, key string, body string) (int, bus.PresenceAnswer, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.base()+"/v1/presence", bytes.NewReader([]byte(body)))
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var raw map[string]any
	var ans bus.PresenceAnswer
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	_ = json.Unmarshal(buf.Bytes(), &raw)
	_ = json.Unmarshal(buf.Bytes(), &ans)
	return resp.StatusCode, ans, raw
}

// Issue 14: online status for backends, over NATS (backend user) and HTTP
// (API key), with the edge count; ALLSPARK_PRESENCE_MAX_NODES is enforced.
func TestPresenceForBackends(t *testing.T) {
	c := newCluster(t)
	small := func(cfg *edge.Config) { cfg.PresenceMaxNodes = 3 }
	e1, e2 := c.edge("e1", small), c.edge("e2", small)
	c.dial(e1, "alice")
	c.dial(e2, "alice")
	c.dial(e1, "bob")
	want := []bus.NodePresence{{NodeID: "alice", Online: true, Edges: 2}, {NodeID: "bob", Online: true, Edges: 1},
		{NodeID: "carol", Online: false, Edges: 0}}
	q := `{"nodes":["alice","bob","carol"]}`

	be := c.backend()
	testutil.Eventually(t, 10*time.Second, func() error {
		m, err := be.Request("allspark.presence.nodes", []byte(q), 5*time.Second)
		if err != nil {
			return err
		}
		var a bus.PresenceAnswer
		if err := json.Unmarshal(m.Data, &a); err != nil {
			return err
		}
		if !reflect.DeepEqual(a.Nodes, want) {
			return fmt.Errorf("nats answer %s", m.Data)
		}
		return nil
	})
	status, a, _ := presenceHTTP(t, e2, apiKey, q)
	if status != 200 || !reflect.DeepEqual(a.Nodes, want) {
		t.Fatalf("POST /v1/presence: %d %+v", status, a)
	}

	for name, tc := range map[string]struct {
		key, body string
		status    int
		code      string
	}{
		"no key":    {"", q, 401, "unauthorized"},
		"wrong key": {"nope", q, 401, "unauthorized"},
		"too many":  {apiKey, `{"nodes":["a","b","c","d"]}`, 413, "too_large"},
		"bad id":    {apiKey, `{"nodes":[""]}`, 400, "bad_id"},
		"bad json":  {apiKey, `nodes`, 400, "bad_request"},
	} {
		status, _, raw := presenceHTTP(t, e1, tc.key, tc.body)
		code := ""
		if e, ok := raw["error"].(map[string]any); ok {
			code, _ = e["code"].(string)
		}
		if status != tc.status || code != tc.code {
			t.Errorf("%s: %d %v, want %d %s", name, status, raw, tc.status, tc.code)
		}
	}
	m, err := be.Request("allspark.presence.nodes", []byte(`{"nodes":["a","b","c","d"]}`), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	var bad bus.PresenceAnswer
	if err := json.Unmarshal(m.Data, &bad); err != nil || bad.Error == nil || bad.Error.Code != "too_large" {
		t.Fatalf("too many nodes over NATS: %s", m.Data)
	}
}
