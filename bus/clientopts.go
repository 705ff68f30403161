package bus

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"

	"github.com/nats-io/nats.go"
)

// ClientAuth is how an AllSpark process proves itself to an external NATS
// and checks the server: a .creds file (decentralised JWT auth) and TLS.
// A user and password go in the URL (nats://user:pass@host:4222). The env
// tags are read with the ALLSPARK_ prefix by cmd/edge and cmd/push-worker.
type ClientAuth struct {
	// CredsFile is a NATS .creds file (user JWT and nkey seed).
	CredsFile string `env:"NATS_CREDS"`
	// CAFile holds the PEM certificates that NATS's server certificate must
	// chain to; empty uses the system roots (when the URL is tls://).
	CAFile string `env:"NATS_CA_FILE"`
	// CertFile and KeyFile are a client certificate for servers that
	// verify clients (mutual TLS); both or neither.
	CertFile string `env:"NATS_CERT_FILE"`
	KeyFile  string `env:"NATS_KEY_FILE"`
}

// Options checks the files now, so a mistake is reported at startup under
// the variable's name, and returns the nats.go options that use them.
// Any TLS file also makes the connection require TLS.
func (a ClientAuth) Options() ([]nats.Option, error) {
	var opts []nats.Option
	if a.CredsFile != "" {
		if _, err := os.Stat(a.CredsFile); err != nil {
			return nil, fmt.Errorf("ALLSPARK_NATS_CREDS: %w", err)
		}
		opts = append(opts, nats.UserCredentials(a.CredsFile))
	}
	if (a.CertFile == "") != (a.KeyFile == "") {
		return nil, errors.New("ALLSPARK_NATS_CERT_FILE and ALLSPARK_NATS_KEY_FILE: set both or neither")
	}
	if a.CAFile == "" && a.CertFile == "" {
		return opts, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if a.CAFile != "" {
		pem, err := os.ReadFile(a.CAFile)
		if err != nil {
			return nil, fmt.Errorf("ALLSPARK_NATS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ALLSPARK_NATS_CA_FILE: no PEM certificate in %s", a.CAFile)
		}
		tc.RootCAs = pool
	}
	if a.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(a.CertFile, a.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("ALLSPARK_NATS_CERT_FILE/ALLSPARK_NATS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	// nats.Secure sets the TLS config and requires TLS even on a nats:// URL.
	return append(opts, nats.Secure(tc)), nil
}
