package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/allspark-rt/allspark/internal/testcert"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// The all-in-one edge's embedded NATS admits only its users: a client
// without credentials is refused; the backend URL `edge nats-credentials`
// prints may send through allspark.send but not read anyone's messages.
func TestEmbeddedNATSNeedsCredentials(t *testing.T) {
	env := map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(),
		"ALLSPARK_EMBEDDED_NATS_BACKEND_USER": "billing",
	}
	e := startEdge(t, env)
	if e.natsURL == "" {
		t.Fatal("the edge did not log its embedded NATS client_url")
	}
	if nc, err := nats.Connect(e.natsURL, nats.Timeout(10*time.Second)); err == nil {
		nc.Close()
		t.Fatal("a client without credentials connected to the embedded NATS")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect without credentials: %v, want an authorization violation", err)
	}

	u, err := url.Parse(e.natsURL)
	if err != nil {
		t.Fatal(err)
	}
	env["ALLSPARK_EMBEDDED_NATS_LISTEN"] = u.Host
	var both, out strings.Builder
	if err := run(context.Background(), []string{"nats-credentials"}, envOf(env), &both); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(both.String(), "backend nats://billing:") || !strings.Contains(both.String(), "service nats://allspark:") {
		t.Fatalf("nats-credentials printed %q", both.String())
	}
	if err := run(context.Background(), []string{"nats-credentials", "--backend"}, envOf(env), &out); err != nil {
		t.Fatal(err)
	}
	backendURL := strings.TrimSpace(out.String())

	asyncErrs := make(chan error, 16)
	nc, err := nats.Connect(backendURL, nats.Timeout(10*time.Second),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) { asyncErrs <- err }))
	if err != nil {
		t.Fatalf("connect with the backend URL: %v", err)
	}
	defer nc.Close()
	reply, err := nc.Request("allspark.send", []byte(`{"id":"r1","src_id":"billing","dest_id":"bob","payload":"hi"}`), 20*time.Second)
	if err != nil {
		t.Fatalf("request on allspark.send: %v", err)
	}
	var sent allspark.Sent
	if err := json.Unmarshal(reply.Data, &sent); err != nil || sent.Type != "sent" || sent.ID != "r1" || sent.Error != nil {
		t.Fatalf("allspark.send answered %s (%v), want a sent answer without error", reply.Data, err)
	}

	if _, err := nc.SubscribeSync("allspark.node.>"); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-asyncErrs:
		if !errors.Is(err, nats.ErrPermissionViolation) {
			t.Fatalf("subscribe allspark.node.>: async error %v, want a permissions violation", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("subscribing to allspark.node.> as the backend user raised no permissions violation within 30s")
	}
}

func TestNATSCredentialsNeedsAKnownPort(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"port 0":   {"ALLSPARK_EMBEDDED_NATS_LISTEN": "127.0.0.1:0"},
		"external": {"ALLSPARK_NATS_URL": "nats://127.0.0.1:4222", "ALLSPARK_AUTH_SECRET": strings.Repeat("s", 32)},
	} {
		env["ALLSPARK_DATA_DIR"] = t.TempDir()
		if err := run(context.Background(), []string{"nats-credentials"}, envOf(env), &strings.Builder{}); err == nil {
			t.Errorf("%s: nats-credentials printed URLs", name)
		}
	}
}

// An edge reaches an external NATS that requires a password (in
// ALLSPARK_NATS_URL), TLS and a client certificate.
func TestExternalNATSWithCredentialsAndTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	natsCert, edgeCert := ca.Issue(t, "nats"), ca.Issue(t, "edge")
	opts := &server.Options{
		Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
		Users: []*server.User{{Username: "allspark", Password: "svc-password"}},
		TLS:   true, TLSVerify: true, TLSTimeout: 10,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{natsCert.TLS}, ClientCAs: ca.Pool,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12},
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	ns.Start()
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats not ready")
	}
	u, _ := url.Parse(ns.ClientURL())
	e := startEdge(t, map[string]string{
		"ALLSPARK_LISTEN": "127.0.0.1:0", "ALLSPARK_DATA_DIR": t.TempDir(), "ALLSPARK_AUTH_SECRET": strings.Repeat("k", 32),
		"ALLSPARK_NATS_URL":       "nats://allspark:svc-password@" + u.Host,
		"ALLSPARK_NATS_CA_FILE":   ca.File,
		"ALLSPARK_NATS_CERT_FILE": edgeCert.CertFile, "ALLSPARK_NATS_KEY_FILE": edgeCert.KeyFile,
	})
	testutil.Eventually(t, 60*time.Second, func() error {
		resp, err := http.Get("http://" + e.addr + "/readyz")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return errors.New("readyz " + resp.Status)
		}
		return nil
	})
	if n := ns.NumClients(); n == 0 {
		t.Fatal("the edge is ready but not connected to the NATS server")
	}
}
