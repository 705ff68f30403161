package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/edge"
	"github.com/allspark-rt/allspark/internal/envconfig"
	"github.com/allspark-rt/allspark/push"
	"github.com/allspark-rt/allspark/webhook"
)

const envPrefix = envconfig.Prefix

type config struct {
	edge.Config
	Push    push.Config
	Webhook webhook.Config // issue 14: cmd/edge/webhook.go

	Listen             string `env:"LISTEN" envDefault:":8080"`
	NATSURL            string `env:"NATS_URL"`
	DataDir            string `env:"DATA_DIR" envDefault:"./data"`
	EmbeddedNATSListen string `env:"EMBEDDED_NATS_LISTEN" envDefault:"127.0.0.1:4222"`
	AuthSecret         string `env:"AUTH_SECRET"`
	LogLevel           string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat          string `env:"LOG_FORMAT" envDefault:"text"`
	// PprofListen, when set, serves net/http/pprof on its own listener
	// (keep it on loopback or a private network).
	PprofListen string `env:"PPROF_LISTEN"`

	// devDefaults lists the development defaults loadConfig applied, for
	// the startup warning; empty outside dev mode.
	devDefaults []string
}

func (c config) embedded() bool { return c.NATSURL == "" }

// devMode is the all-in-one edge with a generated secret: no
// ALLSPARK_AUTH_SECRET and an embedded NATS.
func (c config) devMode() bool { return c.AuthSecret == "" && c.embedded() }

// loadConfig reads ALLSPARK_* through getenv. Errors name the variable.
func loadConfig(getenv func(string) string) (config, error) {
	var cfg config
	if err := envconfig.Load(&cfg, getenv); err != nil {
		return cfg, err
	}
	if cfg.ID == "" {
		cfg.ID = defaultEdgeID()
	}
	if cfg.PublicURL == "" {
		cfg.PublicURL = defaultPublicURL(cfg.Listen)
	}
	if cfg.LogLevel != "debug" && cfg.LogLevel != "info" && cfg.LogLevel != "warn" && cfg.LogLevel != "error" {
		return cfg, fmt.Errorf("ALLSPARK_LOG_LEVEL: want debug, info, warn or error, got %q", cfg.LogLevel)
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return cfg, fmt.Errorf("ALLSPARK_LOG_FORMAT: want text or json, got %q", cfg.LogFormat)
	}
	if _, _, err := net.SplitHostPort(cfg.Listen); err != nil {
		return cfg, fmt.Errorf("ALLSPARK_LISTEN: %w", err)
	}
	if cfg.DevTokens && cfg.AuthSecret != "" {
		// Dev tokens hand an auth_key to anyone who asks; with a real secret
		// that would let any caller act as any user.
		return cfg, errors.New("ALLSPARK_DEV_TOKENS: refused with a configured ALLSPARK_AUTH_SECRET; dev tokens exist only for the all-in-one dev mode with a generated secret")
	}
	if cfg.devMode() {
		// The demo page and local experiments work out of the box; the
		// startup warning lists what was turned on.
		if getenv(envPrefix+"ALLOWED_ORIGINS") == "" {
			cfg.AllowedOrigins = []string{"*"}
			cfg.devDefaults = append(cfg.devDefaults, "ALLSPARK_ALLOWED_ORIGINS=* (pages on any origin may connect)")
		}
		if getenv(envPrefix+"DEV_TOKENS") == "" {
			cfg.DevTokens = true
			cfg.devDefaults = append(cfg.devDefaults, "ALLSPARK_DEV_TOKENS=true (POST /v1/dev/token mints an auth_key for any node id, unauthenticated)")
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

func defaultEdgeID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "edge"
	}
	var b [3]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

func defaultPublicURL(listen string) string {
	host, port, _ := net.SplitHostPort(listen)
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return "http://" + net.JoinHostPort(host, port)
}

// authSecret returns the configured secret. In the all-in-one mode an unset
// secret is generated once and kept in DATA_DIR, so restarts and
// `edge token` agree; a cluster must be given one explicitly.
func authSecret(cfg config, log *slog.Logger) (string, error) {
	if cfg.AuthSecret != "" {
		if len(cfg.AuthSecret) < auth.MinSecretLen {
			return "", fmt.Errorf("ALLSPARK_AUTH_SECRET: must be at least %d bytes", auth.MinSecretLen)
		}
		return cfg.AuthSecret, nil
	}
	if !cfg.embedded() {
		return "", errors.New("ALLSPARK_AUTH_SECRET: required when ALLSPARK_NATS_URL is set (every edge must share it)")
	}
	path := filepath.Join(cfg.DataDir, "auth_secret")
	if b, err := os.ReadFile(path); err == nil {
		if s := strings.TrimSpace(string(b)); len(s) >= auth.MinSecretLen {
			if log != nil {
				log.Warn("ALLSPARK_AUTH_SECRET is not set: using the development secret kept in " + path + "; set it in production")
			}
			return s, nil
		}
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("generate auth secret: %w", err)
	}
	s := hex.EncodeToString(raw[:])
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return "", fmt.Errorf("create data dir: %w", err)
	}
	if err := os.WriteFile(path, []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("save generated auth secret: %w", err)
	}
	if log != nil {
		log.Warn("!!! ALLSPARK_AUTH_SECRET is not set: GENERATED a development secret and saved it to " + path + ". Set ALLSPARK_AUTH_SECRET in production. !!!")
	}
	return s, nil
}
