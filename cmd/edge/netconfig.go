package main

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/allspark-rt/allspark/bus"
)

// NetConfig is the edge's exposure to the network: credentials for NATS,
// TLS on the public listener, HTTP timeouts and the ops listener.
type NetConfig struct {
	// ClientAuth reaches an external NATS (ALLSPARK_NATS_CREDS, _CA_FILE,
	// _CERT_FILE, _KEY_FILE); a user and password go in ALLSPARK_NATS_URL.
	bus.ClientAuth

	// The embedded NATS's users; unset names and passwords are generated
	// once and kept in DATA_DIR/nats_credentials.json.
	EmbeddedNATSUser            string `env:"EMBEDDED_NATS_USER"`
	EmbeddedNATSPassword        string `env:"EMBEDDED_NATS_PASSWORD"`
	EmbeddedNATSBackendUser     string `env:"EMBEDDED_NATS_BACKEND_USER"`
	EmbeddedNATSBackendPassword string `env:"EMBEDDED_NATS_BACKEND_PASSWORD"`

	// TLSCertFile and TLSKeyFile make the public listener HTTPS/WSS; the
	// files are re-read when they change, so a renewed certificate needs
	// no restart.
	TLSCertFile string `env:"TLS_CERT_FILE"`
	TLSKeyFile  string `env:"TLS_KEY_FILE"`

	// HTTP timeouts of the public listener. ReadHeaderTimeout bounds a
	// request's headers (and the TLS handshake), ReadTimeout the whole
	// request, BodyTimeout a request body from the moment the headers are
	// in, IdleTimeout a kept-alive connection between requests. Websockets
	// set their own deadlines once upgraded.
	HTTPReadHeaderTimeout time.Duration `env:"HTTP_READ_HEADER_TIMEOUT" envDefault:"10s"`
	HTTPReadTimeout       time.Duration `env:"HTTP_READ_TIMEOUT" envDefault:"30s"`
	HTTPBodyTimeout       time.Duration `env:"HTTP_BODY_TIMEOUT" envDefault:"10s"`
	HTTPIdleTimeout       time.Duration `env:"HTTP_IDLE_TIMEOUT" envDefault:"120s"`
	// MaxHTTPConns caps the public listener's open connections, websockets
	// included; one over the cap is closed as soon as it is accepted.
	// 0: no cap (the process's file limit is the cap).
	MaxHTTPConns int `env:"MAX_HTTP_CONNS" envDefault:"0"`

	// OpsListen serves /metrics (and pprof with Pprof) away from the public
	// listener; "off" turns it off.
	OpsListen string `env:"OPS_LISTEN" envDefault:"127.0.0.1:9090"`
	Pprof     bool   `env:"PPROF"`
	// PprofListen is the deprecated ALLSPARK_PPROF_LISTEN: pprof on a
	// listener of its own. Still honoured, with a warning.
	PprofListen string `env:"PPROF_LISTEN"`
}

func (n NetConfig) tlsEnabled() bool { return n.TLSCertFile != "" }

// validate checks n; embedded says whether the edge runs its own NATS.
func (n NetConfig) validate(embedded bool) error {
	var errs []error
	if (n.TLSCertFile == "") != (n.TLSKeyFile == "") {
		errs = append(errs, errors.New("ALLSPARK_TLS_CERT_FILE and ALLSPARK_TLS_KEY_FILE: set both or neither"))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"HTTP_READ_HEADER_TIMEOUT", n.HTTPReadHeaderTimeout}, {"HTTP_READ_TIMEOUT", n.HTTPReadTimeout},
		{"HTTP_BODY_TIMEOUT", n.HTTPBodyTimeout}, {"HTTP_IDLE_TIMEOUT", n.HTTPIdleTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("ALLSPARK_%s: must be positive, got %s", d.name, d.v))
		}
	}
	if n.MaxHTTPConns < 0 {
		errs = append(errs, fmt.Errorf("ALLSPARK_MAX_HTTP_CONNS: must be 0 (no cap) or positive, got %d", n.MaxHTTPConns))
	}
	if n.OpsListen != "off" {
		if _, _, err := net.SplitHostPort(n.OpsListen); err != nil {
			errs = append(errs, fmt.Errorf("ALLSPARK_OPS_LISTEN: want host:port or off: %w", err))
		}
	}
	if embedded {
		if n.CredsFile != "" || n.CAFile != "" || n.CertFile != "" || n.KeyFile != "" {
			errs = append(errs, errors.New("ALLSPARK_NATS_CREDS, ALLSPARK_NATS_CA_FILE, ALLSPARK_NATS_CERT_FILE and ALLSPARK_NATS_KEY_FILE: only with an external NATS (ALLSPARK_NATS_URL)"))
		}
	} else if n.EmbeddedNATSUser != "" || n.EmbeddedNATSPassword != "" || n.EmbeddedNATSBackendUser != "" || n.EmbeddedNATSBackendPassword != "" {
		errs = append(errs, errors.New("ALLSPARK_EMBEDDED_NATS_*: only without ALLSPARK_NATS_URL (the embedded NATS is not started)"))
	}
	return errors.Join(errs...)
}

// publicURLFor is the default public URL of an edge listening on addr:
// https when the listener serves TLS.
func (n NetConfig) publicURLFor(addr string) string {
	u := defaultPublicURL(addr)
	if n.tlsEnabled() {
		u = "https" + strings.TrimPrefix(u, "http")
	}
	return u
}
