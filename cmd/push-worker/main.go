// Command push-worker sends APNs and FCM notifications for messages stored
// for offline nodes. Run any number: they share the undelivered-events work
// queue. Configuration is environment only (ALLSPARK_*); see README.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/envconfig"
	"github.com/allspark-rt/allspark/push"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "push-worker:", err)
		os.Exit(1)
	}
}

type config struct {
	push.Config
	// ClientAuth: ALLSPARK_NATS_CREDS and TLS to NATS, as for cmd/edge; a
	// user and password go in ALLSPARK_NATS_URL.
	bus.ClientAuth
	NATSURL        string `env:"NATS_URL,required"`
	SubjectPrefix  string `env:"SUBJECT_PREFIX" envDefault:"allspark"`
	StreamReplicas int    `env:"STREAM_REPLICAS" envDefault:"1"`
	MetricsListen  string `env:"METRICS_LISTEN" envDefault:":9091"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("push-worker takes no arguments; configure it with ALLSPARK_* variables")
	}
	var cfg config
	if err := envconfig.Load(&cfg, getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	if !cfg.Enabled() {
		return errors.New("no provider configured: set ALLSPARK_APNS_KEY_FILE and/or ALLSPARK_FCM_CREDENTIALS_FILE")
	}
	natsOpts, err := cfg.ClientAuth.Options()
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("component", "push-worker")
	subj, err := bus.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return fmt.Errorf("ALLSPARK_SUBJECT_PREFIX: %w", err)
	}
	providers, err := push.NewProviders(ctx, cfg.Config, nil)
	if err != nil {
		return err
	}
	nc, err := bus.Connect(cfg.NATSURL, "allspark-push-worker", log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	reg := prometheus.NewRegistry()
	// The edges create the streams; until one has, keep trying.
	var w *push.Worker
	for {
		tokens, err := push.OpenTokens(ctx, js, subj, cfg.StreamReplicas, time.Now)
		if err == nil {
			w, err = push.NewWorker(ctx, cfg.Config, push.Deps{JS: js, Subjects: subj, Tokens: tokens, Providers: providers,
				Metrics: reg, Logger: log, Replicas: cfg.StreamReplicas})
		}
		if err == nil {
			break
		}
		log.Warn("waiting for the undelivered queue (start an edge first)", "err", err)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	ln, err := net.Listen("tcp", cfg.MetricsListen)
	if err != nil {
		return fmt.Errorf("ALLSPARK_METRICS_LISTEN: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`) })
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	log.Info("push worker running", "apns", cfg.APNs.Enabled(), "fcm", cfg.FCM.Enabled(), "metrics", ln.Addr().String())
	return w.Run(ctx)
}
