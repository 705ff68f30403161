package bus_test

import (
	"crypto/tls"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testcert"
	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"
)

func startRaw(t *testing.T, opts *server.Options) *server.Server {
	t.Helper()
	opts.Host, opts.Port, opts.NoSigs, opts.NoLog = "127.0.0.1", server.RANDOM_PORT, true, true
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s
}

func connectWith(t *testing.T, url string, a bus.ClientAuth) (*nats.Conn, error) {
	t.Helper()
	opts, err := a.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(opts, nats.Timeout(10*time.Second))...)
	if err == nil {
		t.Cleanup(nc.Close)
	}
	return nc, err
}

// ALLSPARK_NATS_CA_FILE, _CERT_FILE and _KEY_FILE reach a NATS server that
// demands TLS and a client certificate; without the certificate, or
// without trusting the server's CA, the connection is refused.
func TestClientAuthMutualTLS(t *testing.T) {
	ca := testcert.NewCA(t)
	srvCert, cli := ca.Issue(t, "nats"), ca.Issue(t, "client")
	s := startRaw(t, &server.Options{TLS: true, TLSVerify: true, TLSTimeout: 10, TLSConfig: &tls.Config{
		Certificates: []tls.Certificate{srvCert.TLS}, ClientCAs: ca.Pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12,
	}})
	url := s.ClientURL()
	nc, err := connectWith(t, url, bus.ClientAuth{CAFile: ca.File, CertFile: cli.CertFile, KeyFile: cli.KeyFile})
	if err != nil {
		t.Fatalf("connect with CA and client certificate: %v", err)
	}
	if !nc.TLSRequired() {
		t.Fatal("connection is not TLS")
	}
	if err := nc.Publish("x", nil); err != nil {
		t.Fatal(err)
	}
	if err := nc.FlushTimeout(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if _, err := connectWith(t, url, bus.ClientAuth{CAFile: ca.File}); err == nil {
		t.Fatal("connected without a client certificate")
	}
	other := testcert.NewCA(t)
	if _, err := connectWith(t, url, bus.ClientAuth{CAFile: other.File, CertFile: cli.CertFile, KeyFile: cli.KeyFile}); err == nil {
		t.Fatal("connected to a server whose CA is not trusted")
	}
}

// ALLSPARK_NATS_CREDS authenticates to a server in operator (JWT) mode.
func TestClientAuthCredsFile(t *testing.T) {
	okp, _ := nkeys.CreateOperator()
	opub, _ := okp.PublicKey()
	ojwt, err := jwt.NewOperatorClaims(opub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	oc, err := jwt.DecodeOperatorClaims(ojwt)
	if err != nil {
		t.Fatal(err)
	}
	akp, _ := nkeys.CreateAccount()
	apub, _ := akp.PublicKey()
	ajwt, err := jwt.NewAccountClaims(apub).Encode(okp)
	if err != nil {
		t.Fatal(err)
	}
	ukp, _ := nkeys.CreateUser()
	upub, _ := ukp.PublicKey()
	ujwt, err := jwt.NewUserClaims(upub).Encode(akp)
	if err != nil {
		t.Fatal(err)
	}
	seed, _ := ukp.Seed()
	creds, err := jwt.FormatUserConfig(ujwt, seed)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "user.creds")
	if err := os.WriteFile(path, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	res := &server.MemAccResolver{}
	if err := res.Store(apub, ajwt); err != nil {
		t.Fatal(err)
	}
	s := startRaw(t, &server.Options{TrustedOperators: []*jwt.OperatorClaims{oc}, AccountResolver: res})

	if _, err := connectWith(t, s.ClientURL(), bus.ClientAuth{CredsFile: path}); err != nil {
		t.Fatalf("connect with .creds: %v", err)
	}
	if _, err := connectWith(t, s.ClientURL(), bus.ClientAuth{}); err == nil {
		t.Fatal("connected without credentials")
	}
}

func TestClientAuthBadFilesNameTheVariable(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	for want, a := range map[string]bus.ClientAuth{
		"ALLSPARK_NATS_CREDS":     {CredsFile: missing},
		"ALLSPARK_NATS_CA_FILE":   {CAFile: missing},
		"ALLSPARK_NATS_KEY_FILE":  {CertFile: missing},
		"ALLSPARK_NATS_CERT_FILE": {CertFile: missing, KeyFile: missing},
	} {
		if _, err := a.Options(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%+v: err = %v, want mention of %s", a, err, want)
		}
	}
}
