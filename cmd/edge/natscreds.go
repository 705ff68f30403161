package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// natsCredentialsFile is where the all-in-one edge keeps its embedded NATS
// users, in DATA_DIR.
const natsCredentialsFile = "nats_credentials.json"

// embeddedCredentials are the embedded NATS's service and backend users:
// ALLSPARK_EMBEDDED_NATS_* where set, the rest generated once into
// DATA_DIR, so restarts and `edge nats-credentials` agree.
func embeddedCredentials(cfg config) (creds bus.Credentials, path string, created bool, err error) {
	path = filepath.Join(cfg.DataDir, natsCredentialsFile)
	creds, created, err = bus.LoadCredentials(path, bus.Credentials{
		Service: bus.NATSUser{Name: cfg.EmbeddedNATSUser, Password: cfg.EmbeddedNATSPassword},
		Backend: bus.NATSUser{Name: cfg.EmbeddedNATSBackendUser, Password: cfg.EmbeddedNATSBackendPassword},
	})
	return creds, path, created, err
}

// startEmbeddedNATS runs the all-in-one edge's NATS server, which only
// admits its two users, and returns the options the edge connects with
// (in-process, as the service user).
func startEmbeddedNATS(cfg config, log *slog.Logger) (*server.Server, []nats.Option, error) {
	creds, path, created, err := embeddedCredentials(cfg)
	if err != nil {
		return nil, nil, err
	}
	store := filepath.Join(cfg.DataDir, "nats")
	ns, err := bus.StartServer(bus.ServerConfig{Name: cfg.ID, Listen: cfg.EmbeddedNATSListen, StoreDir: store,
		Users: creds.Users(), SubjectPrefix: cfg.SubjectPrefix}, log)
	if err != nil {
		return nil, nil, fmt.Errorf("start embedded NATS (ALLSPARK_EMBEDDED_NATS_LISTEN=%s): %w", cfg.EmbeddedNATSListen, err)
	}
	log.Info("embedded NATS with JetStream running", "client_url", ns.ClientURL(), "store", store,
		"service_user", creds.Service.Name, "backend_user", creds.Backend.Name, "credentials", path, "generated_now", created,
		"hint", "`edge nats-credentials` prints the URLs local backends connect with")
	return ns, []nats.Option{nats.InProcessServer(ns), nats.UserInfo(creds.Service.Name, creds.Service.Password)}, nil
}

// runNATSCredentials prints the embedded NATS's URLs with credentials in
// them, for backends on this machine: the backend user's (send, presence,
// events) and the service user's (everything; for push workers).
func runNATSCredentials(args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("nats-credentials", flag.ContinueOnError)
	fs.SetOutput(stdout)
	backendOnly := fs.Bool("backend", false, "print only the backend URL")
	serviceOnly := fs.Bool("service", false, "print only the service URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 || (*backendOnly && *serviceOnly) {
		return errors.New("nats-credentials: usage: edge nats-credentials [--backend | --service]")
	}
	cfg, err := loadConfig(getenv)
	if err != nil {
		return err
	}
	if !cfg.embedded() {
		return errors.New("nats-credentials: ALLSPARK_NATS_URL is set, so this edge runs no embedded NATS; its users are the external server's")
	}
	host, port, err := net.SplitHostPort(cfg.EmbeddedNATSListen)
	if err != nil {
		return fmt.Errorf("ALLSPARK_EMBEDDED_NATS_LISTEN: %w", err)
	}
	if port == "0" {
		return errors.New("nats-credentials: ALLSPARK_EMBEDDED_NATS_LISTEN has port 0, so the port is only known to the running edge (its log says client_url); set a fixed port")
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	creds, _, _, err := embeddedCredentials(cfg)
	if err != nil {
		return err
	}
	base := "nats://" + net.JoinHostPort(host, port)
	switch {
	case *backendOnly:
		_, err = fmt.Fprintln(stdout, creds.Backend.URL(base))
	case *serviceOnly:
		_, err = fmt.Fprintln(stdout, creds.Service.URL(base))
	default:
		_, err = fmt.Fprintf(stdout, "backend %s\nservice %s\n", creds.Backend.URL(base), creds.Service.URL(base))
	}
	return err
}
