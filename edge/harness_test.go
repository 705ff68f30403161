package edge_test

import (
	"fmt"
	"log/slog"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/edgetest"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const testSecret = "edge-test-secret-0123456789"

// cluster is one NATS server and the edges started on it in a test.
type cluster struct {
	t    testing.TB
	ns   *server.Server
	url  string // NATS URL(s) edges connect to; default ns's
	keys *auth.Keys
	// logs, if set, receives every edge's log records (see logs_test.go).
	logs *logRecorder
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	return newClusterOn(t, testutil.RunNATS(t))
}

// newClusterOn uses a NATS server the test started itself.
func newClusterOn(t testing.TB, ns *server.Server) *cluster {
	t.Helper()
	keys, err := auth.NewKeys(testSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, ns: ns, url: ns.ClientURL(), keys: keys}
}

type testEdge struct {
	srv  *edge.Server
	http *httptest.Server
	nc   *nats.Conn
	cfg  edge.Config
	stop func() // edgetest.Edge.Kill
}

func testConfig(id, publicURL string) edge.Config { return edgetest.Config(id, publicURL) }

// edge starts an edge on the cluster's NATS; mods adjust its config.
func (c *cluster) edge(id string, mods ...func(*edge.Config)) *testEdge {
	c.t.Helper()
	logger := testutil.Logger(c.t)
	if c.logs != nil {
		logger = slog.New(c.logs)
	}
	e := edgetest.Start(c.t, c.url, c.keys, logger, id, mods...)
	return &testEdge{srv: e.Srv, http: e.HTTP, nc: e.NC, cfg: e.Cfg, stop: e.Kill}
}

// inboxLeader names the server leading the inbox stream.
func inboxLeader(t *testing.T, c *cluster) string {
	t.Helper()
	nc := testutil.Connect(t, c.url)
	js, _ := jetstream.New(nc)
	st, err := js.Stream(t.Context(), "allspark_inbox")
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context())
	if err != nil || info.Cluster == nil || info.Cluster.Leader == "" {
		t.Fatalf("inbox stream leader: %v %+v", err, info)
	}
	return info.Cluster.Leader
}

// kill stops the edge abruptly, as if its process died.
func (e *testEdge) kill() { e.stop() }

func (c *cluster) authKey(node, client string) string {
	c.t.Helper()
	k, err := c.keys.MintAuthKey(auth.Identity{NodeID: node, ClientID: client}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}

// ws is the edge's websocket URL without a query.
func (e *testEdge) ws() string { return "ws://" + e.http.Listener.Addr().String() + "/v1/ws" }

func (e *testEdge) wsURL(query string) string {
	return "ws://" + e.http.Listener.Addr().String() + "/v1/ws?" + query
}

// dial connects node (of client) to edge e with an auth_key and waits for
// the initial sync_done, as a real client does before it counts as online.
func (c *cluster) dial(e *testEdge, node, client string) *wstest.Client {
	c.t.Helper()
	cl, _ := c.dialSynced(e, node, client)
	return cl
}

// dialSynced is dial, also returning the messages replayed from the inbox
// and the sync_done frame that ended the replay.
func (c *cluster) dialSynced(e *testEdge, node, client string) (*wstest.Client, []wstest.Frame) {
	c.t.Helper()
	cl := wstest.Dial(c.t, e.wsURL("auth_key="+url.QueryEscape(c.authKey(node, client))))
	var got []wstest.Frame
	for {
		f := cl.Next(c.t, 10*time.Second)
		got = append(got, f)
		if f.Type == "sync_done" {
			return cl, got
		}
		if !f.IsMessage() {
			c.t.Fatalf("%s got %s before sync_done", node, f.Raw)
		}
	}
}

// waitConns waits until e holds n connections.
func waitConns(t testing.TB, e *testEdge, n int) {
	t.Helper()
	testutil.Eventually(t, 5*time.Second, func() error {
		if got := e.srv.Connections(); got != n {
			return fmt.Errorf("edge %s has %d connections, want %d", e.cfg.ID, got, n)
		}
		return nil
	})
}
