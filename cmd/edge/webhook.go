package main

import (
	"context"
	"log/slog"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
)

// startWebhook runs the webhook forwarder in-process when
// ALLSPARK_WEBHOOK_URL is set (issue 14). Its metrics join the edge's
// /metrics through reg.
func startWebhook(ctx context.Context, cfg config, nc *nats.Conn, log *slog.Logger, reg prometheus.Registerer) (stop func(), err error) {
	if !cfg.Webhook.Enabled() {
		return func() {}, nil
	}
	if err := cfg.Webhook.Validate(); err != nil {
		return nil, err
	}
	subj, err := bus.NewSubjects(cfg.SubjectPrefix)
	if err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	f, err := webhook.New(cfg.Webhook, webhook.Deps{JS: js, Subjects: subj, Logger: log.With("component", "webhook"), Metrics: reg})
	if err != nil {
		return nil, err
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := f.Run(wctx); err != nil {
			log.Error("webhook forwarder stopped", "err", err)
		}
	}()
	log.Info("webhook forwarder running in-process", "url", cfg.Webhook.URL, "consumer", cfg.Webhook.Consumer)
	return func() { cancel(); <-done }, nil
}
