// Package servicetest tests service nodes, lifecycle events and webhooks
// (issue 14) end to end: a NATS server with the service and backend
// users, edges as in production, service replicas on the backend user
// (in-process with client.Serve, or as processes), websocket clients.
package servicetest

import (
	"bufio"
	"fmt"
	"github.com/allspark-rt/allspark/internal/edgetest"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/internal/wstest"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	testSecret = "service-test-secret-0123456789"
	svcUser    = "allspark"
	svcPass    = "svc-pw-0123456789"
	beUser     = "backend"
	bePass     = "be-pw-0123456789"
	apiKey     = "test-api-key"
)

type cluster struct {
	t    testing.TB
	ns   *server.Server
	keys *auth.Keys
}

func newCluster(t testing.TB) *cluster {
	t.Helper()
	ns, err := bus.StartServer(bus.ServerConfig{Name: "svc-test", Listen: "127.0.0.1:0", StoreDir: t.TempDir(),
		Users: []bus.NATSUser{{Name: svcUser, Password: svcPass, Role: bus.RoleService}, {Name: beUser, Password: bePass, Role: bus.RoleBackend}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	keys, err := auth.NewKeys(testSecret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &cluster{t: t, ns: ns, keys: keys}
}

// backendURL is the NATS URL with the backend user's credentials.
func (c *cluster) backendURL() string {
	return bus.NATSUser{Name: beUser, Password: bePass}.URL(c.ns.ClientURL())
}

// backend connects as the backend role, closed at cleanup.
func (c *cluster) backend() *nats.Conn {
	c.t.Helper()
	return c.connect(c.backendURL())
}

// connect dials url until it succeeds or natsConnectTimeout has passed:
// the server checks each password against its bcrypt hash, which under
// -race on a busy 2-core machine can outlast a handshake (CI saw "i/o
// timeout" connecting as the backend, twice).
func (c *cluster) connect(url string) *nats.Conn {
	c.t.Helper()
	var nc *nats.Conn
	testutil.Eventually(c.t, natsConnectTimeout, func() (err error) {
		nc, err = nats.Connect(url, nats.MaxReconnects(-1), nats.Timeout(5*time.Second))
		return err
	})
	c.t.Cleanup(nc.Close)
	return nc
}

// service connects as the service role (an edge's or push worker's),
// closed at cleanup.
func (c *cluster) service() *nats.Conn {
	c.t.Helper()
	return c.connect(bus.NATSUser{Name: svcUser, Password: svcPass}.URL(c.ns.ClientURL()))
}

type testEdge struct {
	srv  *edge.Server
	http *httptest.Server
	nc   *nats.Conn
	cfg  edge.Config
}

func (c *cluster) edge(id string, mods ...func(*edge.Config)) *testEdge {
	t := c.t
	t.Helper()
	base := func(cfg *edge.Config) { cfg.APIKey, cfg.InboxMaxPerNode, cfg.Events = apiKey, 20000, true }
	e := edgetest.Start(t, bus.NATSUser{Name: svcUser, Password: svcPass}.URL(c.ns.ClientURL()), c.keys,
		testutil.Logger(t), id, append([]func(*edge.Config){base}, mods...)...)
	select {
	case <-e.Srv.ServicesReady():
	case <-time.After(20 * time.Second):
		t.Fatal("edge services (events stream, drainer) not open")
	}
	return &testEdge{srv: e.Srv, http: e.HTTP, nc: e.NC, cfg: e.Cfg}
}

func (e *testEdge) base() string { return "http://" + e.http.Listener.Addr().String() }

func (c *cluster) authKey(node string) string {
	c.t.Helper()
	k, err := c.keys.MintAuthKey(auth.Identity{NodeID: node}, time.Hour)
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}

// dial connects node to e and waits for its initial sync_done.
func (c *cluster) dial(e *testEdge, node string) *wstest.Client {
	c.t.Helper()
	cl := wstest.Dial(c.t, "ws://"+e.http.Listener.Addr().String()+"/v1/ws?auth_key="+url.QueryEscape(c.authKey(node)))
	cl.Until(c.t, 10*time.Second, func(f wstest.Frame) bool { return f.Type == "sync_done" })
	return cl
}

// readRecords parses replica output files: "<msg_id> <src_id>" lines.
func readRecords(path string) ([][2]string, bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	var recs [][2]string
	up := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if line == "up" {
			up = true
			continue
		}
		if id, src, ok := strings.Cut(line, " "); ok {
			recs = append(recs, [2]string{id, src})
		}
	}
	return recs, up, sc.Err()
}

// sendAll has each client send n messages to dest, window at a time, and
// returns the status of every msg_id answered.
func sendAll(t testing.TB, clients []*wstest.Client, dest string, n, window int, progress func()) map[string]string {
	t.Helper()
	type res struct {
		msgID, status string
		err           error
	}
	results := make(chan res, len(clients)*n)
	for ci, cl := range clients {
		go func() {
			sent, answered := 0, 0
			for answered < n {
				for sent < n && sent-answered < window {
					if err := cl.Write(map[string]any{"id": fmt.Sprintf("%d-%d", ci, sent), "dest_id": dest,
						"payload": map[string]int{"i": sent}}); err != nil {
						results <- res{err: err}
						return
					}
					sent++
				}
				select {
				case f := <-cl.Frames():
					if f.Type != "sent" {
						continue
					}
					answered++
					results <- res{msgID: f.MsgID, status: f.Status}
				case <-time.After(60 * time.Second):
					results <- res{err: fmt.Errorf("client %d: no answer after %d of %d", ci, answered, n)}
					return
				}
			}
		}()
	}
	out := map[string]string{}
	for range len(clients) * n {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		out[r.msgID] = r.status
		if progress != nil {
			progress()
		}
	}
	return out
}

// natsConnectTimeout bounds the tests' own NATS clients' connect retries.
const natsConnectTimeout = 60 * time.Second
