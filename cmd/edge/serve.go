package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/push"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func newLogger(cfg config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(cfg.LogLevel))
	opts := &slog.HandlerOptions{Level: level}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// serve runs the edge until ctx ends, then drains it.
func serve(ctx context.Context, getenv func(string) string, stdout io.Writer) error {
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stdout)
	secret, err := authSecret(cfg, true, log)
	if err != nil {
		return err
	}
	if len(cfg.devDefaults) > 0 {
		log.Warn("!!! development mode (no ALLSPARK_AUTH_SECRET): " + strings.Join(cfg.devDefaults, "; ") +
			". Setting ALLSPARK_AUTH_SECRET turns these off. !!!")
	}
	keys, err := newKeys(cfg, secret, log)
	if err != nil {
		return err
	}
	ln, err := publicListener(&cfg, getenv, log)
	if err != nil {
		return err
	}
	defer ln.Close()
	nc, closeNATS, err := connectNATS(cfg, log)
	if err != nil {
		return err
	}
	defer closeNATS()

	reg := edge.NewRegistry() // shared with the webhook forwarder's metrics
	srv, err := edge.New(cfg.Config, edge.Deps{NATS: nc, Keys: keys, Logger: log, Metrics: reg})
	if err != nil {
		return err
	}
	startCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	err = srv.Start(startCtx)
	cancel()
	if err != nil {
		srv.Close()
		return fmt.Errorf("start edge: %w", err)
	}
	stopPush, err := startPush(ctx, cfg, nc, log)
	if err != nil {
		srv.Close()
		return err
	}
	defer stopPush()
	stopWebhook, err := startWebhook(ctx, cfg, nc, log, reg)
	if err != nil {
		srv.Close()
		return err
	}
	defer stopWebhook()
	opsAddr, stopOps, err := startOps(cfg.NetConfig, srv.MetricsHandler(), log)
	if err != nil {
		srv.Close()
		return err
	}
	defer stopOps()
	hs := newHTTPServer(cfg.NetConfig, srv.Handler(), time.Now, log)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("allspark edge ready", "listen", ln.Addr().String(), "public_url", cfg.PublicURL, "ops", opsAddr)

	select {
	case err = <-errc:
		srv.Close()
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	drain(cfg, srv, hs, nc, log)
	return nil
}

// publicListener listens on ALLSPARK_LISTEN, first, so that with port 0
// the default public URL can name the real port; then it adds the
// connection cap and TLS when configured.
func publicListener(cfg *config, getenv func(string) string, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("ALLSPARK_LISTEN=%s: %w", cfg.Listen, err)
	}
	if getenv(envPrefix+"PUBLIC_URL") == "" {
		cfg.PublicURL = cfg.publicURLFor(ln.Addr().String())
	}
	if cfg.MaxHTTPConns > 0 {
		ln = newLimitListener(ln, cfg.MaxHTTPConns, time.Now, log)
	}
	if cfg.tlsEnabled() {
		certs, err := newCertReloader(cfg.TLSCertFile, cfg.TLSKeyFile, log)
		if err != nil {
			ln.Close()
			return nil, err
		}
		ln = tls.NewListener(ln, serverTLSConfig(certs))
	}
	return ln, nil
}

// connectNATS connects to ALLSPARK_NATS_URL, or starts the embedded server
// and connects to it in-process. closeNATS closes the connection, then the
// embedded server.
func connectNATS(cfg config, log *slog.Logger) (nc *nats.Conn, closeNATS func(), err error) {
	var ns *server.Server
	natsURL, natsOpts := cfg.NATSURL, []nats.Option(nil)
	if cfg.embedded() {
		if ns, natsOpts, err = startEmbeddedNATS(cfg, log); err != nil {
			return nil, nil, err
		}
		natsURL = ns.ClientURL()
	} else if natsOpts, err = cfg.ClientAuth.Options(); err != nil {
		return nil, nil, err
	}
	stopServer := func() {
		if ns != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
		}
	}
	if nc, err = bus.Connect(natsURL, "allspark-edge "+cfg.ID, log, natsOpts...); err != nil {
		stopServer()
		return nil, nil, err
	}
	return nc, func() { nc.Close(); stopServer() }, nil
}

// drain stops the edge within ALLSPARK_DRAIN_TIMEOUT: the edge's own drain
// (every client answered, then reconnect and 1001), the HTTP server, and a
// last flush of what the edge published, all on the one budget.
func drain(cfg config, srv *edge.Server, hs *http.Server, nc *nats.Conn, log *slog.Logger) {
	log.Info("draining", "timeout", cfg.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	derr := srv.Shutdown(dctx)
	if err := hs.Shutdown(dctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	// At least a moment to flush, even when the drain used its budget.
	fctx, cancel := context.WithTimeout(context.Background(), max(time.Until(deadlineOf(dctx)), 100*time.Millisecond))
	defer cancel()
	if err := nc.FlushWithContext(fctx); err != nil {
		log.Warn("flush nats", "err", err)
	}
	if derr != nil {
		log.Warn("drain incomplete", "err", derr)
	}
	log.Info("stopped")
}

func deadlineOf(ctx context.Context) time.Time {
	d, _ := ctx.Deadline()
	return d
}

// startPush runs the push worker in-process when credentials are
// configured; otherwise it says once that push is off.
func startPush(ctx context.Context, cfg config, nc *nats.Conn, log *slog.Logger) (stop func(), err error) {
	if !cfg.Push.Enabled() {
		log.Info("push notifications disabled: no ALLSPARK_APNS_KEY_FILE or ALLSPARK_FCM_CREDENTIALS_FILE")
		return func() {}, nil
	}
	providers, err := push.NewProviders(ctx, cfg.Push, nil)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	subj, _ := bus.NewSubjects(cfg.SubjectPrefix)
	tokens, err := push.OpenTokens(ctx, js, subj, cfg.StreamReplicas, time.Now)
	if err != nil {
		return nil, err
	}
	w, err := push.NewWorker(ctx, cfg.Push, push.Deps{JS: js, Subjects: subj, Tokens: tokens, Providers: providers,
		Logger: log.With("component", "push"), Replicas: cfg.StreamReplicas})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	log.Info("push worker running in-process", "apns", cfg.Push.APNs.Enabled(), "fcm", cfg.Push.FCM.Enabled())
	return func() { cancel(); <-done }, nil
}
