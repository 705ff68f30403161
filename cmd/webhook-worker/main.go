// Command webhook-worker posts AllSpark's lifecycle events (node online /
// offline, sessions, stored messages) to an HTTP endpoint, signed, batched
// and retried (see docs/PROTOCOL.md, "Webhooks"). It is the stand-alone
// form of an edge's ALLSPARK_WEBHOOK_URL. Configuration is environment only
// (ALLSPARK_*).
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
	"github.com/allspark-rt/allspark/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "webhook-worker:", err)
		os.Exit(1)
	}
}

type config struct {
	webhook.Config
	// ClientAuth: ALLSPARK_NATS_CREDS and TLS to NATS, as for cmd/edge; a
	// user and password go in ALLSPARK_NATS_URL.
	bus.ClientAuth
	NATSURL       string `env:"NATS_URL,required"`
	SubjectPrefix string `env:"SUBJECT_PREFIX" envDefault:"allspark"`
	MetricsListen string `env:"METRICS_LISTEN" envDefault:":9092"`
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	if len(args) > 0 {
		return errors.New("webhook-worker takes no arguments; configure it with ALLSPARK_* variables")
	}
	var cfg config
	if err := envconfig.Load(&cfg, getenv); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("component", "webhook-worker")
	subj, err := bus.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return fmt.Errorf("ALLSPARK_SUBJECT_PREFIX: %w", err)
	}
	natsOpts, err := cfg.ClientAuth.Options()
	if err != nil {
		return err
	}
	nc, err := bus.Connect(cfg.NATSURL, "allspark-webhook-worker", log, natsOpts...)
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return fmt.Errorf("jetstream context: %w", err)
	}
	reg := prometheus.NewRegistry()
	f, err := webhook.New(cfg.Config, webhook.Deps{JS: js, Subjects: subj, Logger: log, Metrics: reg})
	if err != nil {
		return err
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
	log.Info("webhook worker running", "url", cfg.URL, "consumer", cfg.Consumer, "metrics", ln.Addr().String())
	return f.Run(ctx)
}
