// Package edgetest starts real edges in-process for tests outside package
// edge: an embedded NATS server with JetStream in a temp dir, and edges
// served by httptest on loopback. Tests of package edge keep their own
// harness; this one is for clients of the edge (the Go client, wscat).
package edgetest

import (
	"context"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/envconfig"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Secret signs every auth_key a Cluster mints.
const Secret = "edgetest-secret-0123456789"

// Cluster is one NATS server and the edges a test starts on it.
type Cluster struct {
	t    testing.TB
	NS   *server.Server
	Keys *auth.Keys
}

// New starts a NATS server for the test.
func New(t testing.TB) *Cluster {
	t.Helper()
	keys, err := auth.NewKeys(Secret, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	return &Cluster{t: t, NS: testutil.RunNATS(t), Keys: keys}
}

// Edge is one running edge.
type Edge struct {
	Srv  *edge.Server
	HTTP *httptest.Server
	NC   *nats.Conn
	Cfg  edge.Config
}

// Config is the edge configuration tests start from: every documented
// default (so a limit added to edge.Config is in force in tests too), with
// small, fast timeouts where tests need them.
func Config(id, publicURL string) edge.Config {
	var cfg edge.Config
	if err := envconfig.Load(&cfg, func(string) string { return "" }); err != nil {
		panic(fmt.Sprintf("edge.Config defaults do not parse: %v", err)) // a bug in the struct tags
	}
	cfg.ID, cfg.PublicURL, cfg.APIKey = id, publicURL, "test-api-key"
	cfg.ValidationTTL, cfg.Heartbeat, cfg.WriteTimeout = time.Minute, 200*time.Millisecond, 5*time.Second
	cfg.DrainTimeout, cfg.InboxTTL, cfg.HistoryTTL = 5*time.Second, time.Hour, time.Hour
	return cfg
}

// Edge starts an edge on the cluster's NATS; mods adjust its config. It
// is killed at the end of the test.
func (c *Cluster) Edge(id string, mods ...func(*edge.Config)) *Edge {
	c.t.Helper()
	return Start(c.t, c.NS.ClientURL(), c.Keys, testutil.Logger(c.t), id, mods...)
}

// Start starts an edge named id on the NATS at url, behind an httptest
// server, with Config's settings adjusted by mods. It is killed at the end
// of the test.
func Start(t testing.TB, url string, keys *auth.Keys, log *slog.Logger, id string, mods ...func(*edge.Config)) *Edge {
	t.Helper()
	hs := httptest.NewUnstartedServer(nil)
	cfg := Config(id, "http://"+hs.Listener.Addr().String())
	for _, m := range mods {
		m(&cfg)
	}
	nc, err := nats.Connect(url, nats.Name(id), nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond),
		// A bcrypt login under -race on a busy machine can outlast the 2 s
		// default handshake (CI: "i/o timeout" starting an edge).
		nats.Timeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := edge.New(cfg, edge.Deps{NATS: nc, Keys: keys, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	hs.Config.Handler = srv.Handler()
	hs.Start()
	e := &Edge{Srv: srv, HTTP: hs, NC: nc, Cfg: cfg}
	t.Cleanup(e.Kill)
	return e
}

// URL is the edge's base HTTP URL.
func (e *Edge) URL() string { return e.HTTP.URL }

// Kill stops the edge abruptly, as if its process died: connections are
// cut without a close frame. Calling it again does nothing.
func (e *Edge) Kill() {
	e.HTTP.CloseClientConnections()
	e.HTTP.Close()
	e.Srv.Close()
	e.NC.Close()
}

// AuthKey mints an auth_key for node (of client) valid for ttl.
func (c *Cluster) AuthKey(node, client string, ttl time.Duration) string {
	c.t.Helper()
	k, err := c.Keys.MintAuthKey(auth.Identity{NodeID: node, ClientID: client}, ttl)
	if err != nil {
		c.t.Fatal(err)
	}
	return k
}
