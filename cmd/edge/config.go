package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"

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

	// NATS credentials and TLS, public TLS, HTTP timeouts, ops listener.
	NetConfig

	Listen             string `env:"LISTEN" envDefault:":8080"`
	NATSURL            string `env:"NATS_URL"`
	DataDir            string `env:"DATA_DIR" envDefault:"./data"`
	EmbeddedNATSListen string `env:"EMBEDDED_NATS_LISTEN" envDefault:"127.0.0.1:4222"`
	AuthSecret         string `env:"AUTH_SECRET"`
	// AuthJWKSFile, when set, verifies auth_keys with the public keys of
	// this JWKS file (asymmetric algorithms only) instead of AuthSecret,
	// which then only signs validation tokens.
	AuthJWKSFile string `env:"AUTH_JWKS_FILE"`
	LogLevel     string `env:"LOG_LEVEL" envDefault:"info"`
	LogFormat    string `env:"LOG_FORMAT" envDefault:"text"`

	// devDefaults lists the development defaults loadConfig applied, for
	// the startup warning; empty outside dev mode.
	devDefaults []string
}

func (c config) embedded() bool { return c.NATSURL == "" }

// devMode is the all-in-one edge with a generated secret: no
// ALLSPARK_AUTH_SECRET and an embedded NATS.
// devMode is the all-in-one edge with a generated secret, and auth_keys
// signed with it (with a JWKS file they are the application's, so dev
// tokens could not mint any).
func (c config) devMode() bool { return c.AuthSecret == "" && c.AuthJWKSFile == "" && c.embedded() }

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
		cfg.PublicURL = cfg.publicURLFor(cfg.Listen)
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
	if cfg.embedded() && !cfg.Push.Enabled() && !cfg.Events && getenv(envPrefix+"UNDELIVERED_EVENTS") == "" {
		// The all-in-one edge runs the only push worker there can be, and
		// there is none, nor lifecycle events (message.stored is republished
		// from these): an event per stored message would be a second copy of
		// it that nobody reads.
		cfg.UndeliveredEvents = false
	}
	if cfg.DevTokens && cfg.AuthJWKSFile != "" {
		return cfg, errors.New("ALLSPARK_DEV_TOKENS: refused with ALLSPARK_AUTH_JWKS_FILE; auth_keys are then signed by your private key, which an edge never holds")
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
	if err := cfg.NetConfig.validate(cfg.embedded()); err != nil {
		return cfg, err
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
