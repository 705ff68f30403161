package main

import (
	"log/slog"
	"strings"
	"testing"
	"time"
)

// Issue 14: the edge reads ALLSPARK_WEBHOOK_* and the service, events and
// presence limits, and refuses a webhook without a usable secret.
func TestWebhookAndServiceConfig(t *testing.T) {
	cfg, err := loadConfig(envOf(map[string]string{
		"ALLSPARK_AUTH_SECRET": "0123456789abcdef-secret", "ALLSPARK_NATS_URL": "nats://127.0.0.1:1",
		"ALLSPARK_WEBHOOK_URL": "https://127.0.0.1/hook", "ALLSPARK_WEBHOOK_SECRET": "short", "ALLSPARK_WEBHOOK_BATCH_SIZE": "7",
		"ALLSPARK_SERVICE_DRAIN_WINDOW": "5", "ALLSPARK_EVENTS": "false", "ALLSPARK_EVENTS_TTL": "1h", "ALLSPARK_PRESENCE_MAX_NODES": "9",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Webhook.URL != "https://127.0.0.1/hook" || cfg.Webhook.BatchSize != 7 || cfg.Webhook.MaxBackoff != time.Minute ||
		cfg.ServiceDrainWindow != 5 || cfg.Events || cfg.EventsTTL != time.Hour || cfg.PresenceMaxNodes != 9 {
		t.Fatalf("config: %+v %+v", cfg.Webhook, cfg.Config)
	}
	_, err = startWebhook(t.Context(), cfg, nil, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), "ALLSPARK_WEBHOOK_SECRET") {
		t.Fatalf("short webhook secret: %v", err)
	}
	if _, err := loadConfig(envOf(map[string]string{"ALLSPARK_AUTH_SECRET": "0123456789abcdef-secret",
		"ALLSPARK_NATS_URL": "nats://127.0.0.1:1", "ALLSPARK_SERVICE_DRAIN_WINDOW": "-1"})); err == nil ||
		!strings.Contains(err.Error(), "ALLSPARK_SERVICE_DRAIN_WINDOW") {
		t.Fatalf("negative drain window: %v", err)
	}
}
