package main

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
)

// certReloader serves the certificate in certFile/keyFile, re-reading the
// files when either changes, so a renewed certificate (cert-manager,
// certbot) is picked up without a restart. A pair that does not load (a
// renewal half written) keeps the last good one and is logged.
type certReloader struct {
	certFile, keyFile string
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate // guarded by mu
	version string           // guarded by mu: the files' sizes and times when cert was loaded
}

func newCertReloader(certFile, keyFile string, log *slog.Logger) (*certReloader, error) {
	r := &certReloader{certFile: certFile, keyFile: keyFile, log: log}
	v, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_TLS_CERT_FILE/ALLSPARK_TLS_KEY_FILE: %w", err)
	}
	r.cert, r.version = &cert, v
	return r, nil
}

// stat fingerprints both files by size and modification time.
func (r *certReloader) stat() (string, error) {
	c, err := os.Stat(r.certFile)
	if err != nil {
		return "", fmt.Errorf("ALLSPARK_TLS_CERT_FILE: %w", err)
	}
	k, err := os.Stat(r.keyFile)
	if err != nil {
		return "", fmt.Errorf("ALLSPARK_TLS_KEY_FILE: %w", err)
	}
	return fmt.Sprint(c.Size(), c.ModTime().UnixNano(), k.Size(), k.ModTime().UnixNano()), nil
}

// GetCertificate is tls.Config.GetCertificate: two stats per handshake,
// a reload only when they differ from the loaded files'.
func (r *certReloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, err := r.stat()
	if err != nil || v == r.version {
		if err != nil {
			r.log.Warn("tls certificate files unreadable; serving the last loaded certificate", "err", err)
		}
		return r.cert, nil
	}
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		// Not remembered as loaded: the next handshake tries again, as a
		// renewal may be half written.
		r.log.Warn("tls certificate files changed but do not load; serving the last loaded certificate", "err", err)
		return r.cert, nil
	}
	r.cert, r.version = &cert, v
	r.log.Info("tls certificate reloaded", "cert_file", r.certFile)
	return r.cert, nil
}

// serverTLSConfig is the public listener's TLS: HTTP/1.1 only, because a
// websocket upgrade needs it (browsers would otherwise try websockets over
// HTTP/2, which the edge does not speak).
func serverTLSConfig(r *certReloader) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
		NextProtos:     []string{"http/1.1"},
	}
}
