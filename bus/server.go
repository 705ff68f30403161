package bus

import (
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerConfig configures an in-process nats-server with JetStream, used by
// the all-in-one edge, cmd/embedded-nats and tests.
type ServerConfig struct {
	Name     string // server name; required for clustering
	Listen   string // client "host:port"; port 0 picks a free one (so does ClusterListen's)
	StoreDir string // JetStream file store

	ClusterName   string   // set to form a cluster
	ClusterListen string   // "host:port" for routes
	Routes        []string // nats-route://host:port of peers

	WebsocketListen string // optional "host:port" for NATS over websocket (no TLS)

	// MaxStore caps JetStream file storage in bytes; 0 lets the server choose.
	MaxStore int64

	// Users may connect, each with its role's permissions. Empty means no
	// authentication at all: only for tests and an explicit opt-out.
	Users []NATSUser
	// SubjectPrefix is the prefix whose subjects backends are allowed
	// (default "allspark").
	SubjectPrefix string
}

// StartServer starts nats-server and waits until it accepts clients.
func StartServer(cfg ServerConfig, log *slog.Logger) (*server.Server, error) {
	host, port, err := splitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("nats listen address: %w", err)
	}
	opts := &server.Options{
		ServerName:            cfg.Name,
		Host:                  host,
		Port:                  port,
		JetStream:             true,
		StoreDir:              cfg.StoreDir,
		JetStreamMaxStore:     cfg.MaxStore,
		NoSigs:                true,
		MaxPayload:            8 << 20,
		DisableShortFirstPing: true,
	}
	if opts.Port == 0 {
		opts.Port = server.RANDOM_PORT
	}
	if len(cfg.Users) > 0 {
		prefix := cfg.SubjectPrefix
		if prefix == "" {
			prefix = "allspark"
		}
		if opts.Users, err = serverUsers(cfg.Users, prefix); err != nil {
			return nil, err
		}
	}
	if cfg.ClusterName != "" {
		ch, cp, err := splitHostPort(cfg.ClusterListen)
		if err != nil {
			return nil, fmt.Errorf("nats cluster listen address: %w", err)
		}
		if cp == 0 {
			cp = server.RANDOM_PORT // to nats-server, 0 would mean "no cluster"
		}
		opts.Cluster = server.ClusterOpts{Name: cfg.ClusterName, Host: ch, Port: cp}
		for _, r := range cfg.Routes {
			u, err := url.Parse(r)
			if err != nil {
				return nil, fmt.Errorf("nats route %q: %w", r, err)
			}
			opts.Routes = append(opts.Routes, u)
		}
	}
	if cfg.WebsocketListen != "" {
		wh, wp, err := splitHostPort(cfg.WebsocketListen)
		if err != nil {
			return nil, fmt.Errorf("nats websocket listen address: %w", err)
		}
		opts.Websocket = server.WebsocketOpts{Host: wh, Port: wp, NoTLS: true}
	}
	s, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("create nats server: %w", err)
	}
	if log != nil {
		s.SetLoggerV2(&natsLogger{log: log.With("component", "nats-server")}, false, false, false)
	}
	s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		s.Shutdown()
		return nil, fmt.Errorf("nats server %q not ready after 30s", cfg.Name)
	}
	return s, nil
}

func splitHostPort(hp string) (string, int, error) {
	h, p, err := net.SplitHostPort(hp)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.Atoi(p)
	if err != nil || n < 0 || n > 65535 {
		return "", 0, fmt.Errorf("bad port in %q", hp)
	}
	return h, n, nil
}

// natsLogger adapts nats-server's logger to slog. Notices are Debug (the banner is long); the
// server's debug and trace chatter is dropped below Debug.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(f string, v ...any) { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Warnf(f string, v ...any)   { l.log.Warn(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Fatalf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Errorf(f string, v ...any)  { l.log.Error(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Debugf(f string, v ...any)  { l.log.Debug(fmt.Sprintf(f, v...)) }
func (l *natsLogger) Tracef(f string, v ...any)  {}
