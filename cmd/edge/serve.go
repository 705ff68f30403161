package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"path/filepath"
	"strings"
	"time"

	"github.com/allspark-rt/allspark/auth"
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
	secret, err := authSecret(cfg, log)
	if err != nil {
		return err
	}
	if len(cfg.devDefaults) > 0 {
		log.Warn("!!! development mode (no ALLSPARK_AUTH_SECRET): " + strings.Join(cfg.devDefaults, "; ") +
			". Setting ALLSPARK_AUTH_SECRET turns these off. !!!")
	}
	keys, err := auth.NewKeys(secret, time.Now)
	if err != nil {
		return fmt.Errorf("ALLSPARK_AUTH_SECRET: %w", err)
	}

	// Listen first: with ALLSPARK_LISTEN=:0 the public URL needs the real port.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("ALLSPARK_LISTEN=%s: %w", cfg.Listen, err)
	}
	defer ln.Close()
	if getenv(envPrefix+"PUBLIC_URL") == "" {
		cfg.PublicURL = defaultPublicURL(ln.Addr().String())
	}

	var ns *server.Server
	natsURL, natsOpts := cfg.NATSURL, []nats.Option(nil)
	if cfg.embedded() {
		ns, err = bus.StartServer(bus.ServerConfig{Name: cfg.ID, Listen: cfg.EmbeddedNATSListen, StoreDir: filepath.Join(cfg.DataDir, "nats")}, log)
		if err != nil {
			return fmt.Errorf("start embedded NATS (ALLSPARK_EMBEDDED_NATS_LISTEN=%s): %w", cfg.EmbeddedNATSListen, err)
		}
		defer func() { ns.Shutdown(); ns.WaitForShutdown() }()
		natsURL, natsOpts = ns.ClientURL(), []nats.Option{nats.InProcessServer(ns)}
		log.Info("embedded NATS with JetStream running", "client_url", ns.ClientURL(), "store", filepath.Join(cfg.DataDir, "nats"))
	}
	nc, err := bus.Connect(natsURL, "allspark-edge "+cfg.ID, log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()

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
	if cfg.PprofListen != "" {
		pl, err := net.Listen("tcp", cfg.PprofListen)
		if err != nil {
			srv.Close()
			return fmt.Errorf("ALLSPARK_PPROF_LISTEN=%s: %w", cfg.PprofListen, err)
		}
		defer pl.Close()
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		go func() { _ = http.Serve(pl, mux) }()
		log.Info("pprof listening", "addr", pl.Addr().String())
	}
	hs := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("allspark edge ready", "listen", ln.Addr().String(), "public_url", cfg.PublicURL)

	select {
	case err = <-errc:
		srv.Close()
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	log.Info("draining", "timeout", cfg.DrainTimeout)
	dctx, cancel := context.WithTimeout(context.Background(), cfg.DrainTimeout)
	defer cancel()
	derr := srv.Shutdown(dctx)
	if err := hs.Shutdown(dctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		log.Warn("http shutdown", "err", err)
	}
	if err := nc.FlushTimeout(time.Second); err != nil {
		log.Warn("flush nats", "err", err)
	}
	if derr != nil {
		log.Warn("drain incomplete", "err", derr)
	}
	log.Info("stopped")
	return nil
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
