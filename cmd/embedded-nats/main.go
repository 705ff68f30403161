// Command embedded-nats runs a standalone nats-server with JetStream, for
// development clusters and tests. Flags override ALLSPARK_NATS_* variables.
// Clients need credentials: a service user (edges, push workers) and a
// backend user with narrow permissions, generated into the store directory
// unless given (a cluster must be given them; see docs/SECURITY.md).
//
//	embedded-nats -listen 127.0.0.1:4222 -store ./data/nats-1 \
//	  -name n1 -cluster-name allspark -cluster-listen 127.0.0.1:6222 \
//	  -routes nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/allspark-rt/allspark/bus"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "embedded-nats:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	def := func(key, fallback string) string {
		if v := getenv("ALLSPARK_NATS_" + key); v != "" {
			return v
		}
		return fallback
	}
	fs := flag.NewFlagSet("embedded-nats", flag.ContinueOnError)
	fs.SetOutput(stdout)
	host, _ := os.Hostname()
	name := fs.String("name", def("NAME", host), "server name (unique in a cluster) [ALLSPARK_NATS_NAME]")
	listen := fs.String("listen", def("LISTEN", "127.0.0.1:4222"), "client address [ALLSPARK_NATS_LISTEN]")
	store := fs.String("store", def("STORE", "./data/nats"), "JetStream store directory [ALLSPARK_NATS_STORE]")
	clusterName := fs.String("cluster-name", def("CLUSTER_NAME", ""), "cluster name; set to cluster [ALLSPARK_NATS_CLUSTER_NAME]")
	clusterListen := fs.String("cluster-listen", def("CLUSTER_LISTEN", "127.0.0.1:6222"), "route address [ALLSPARK_NATS_CLUSTER_LISTEN]")
	routes := fs.String("routes", def("ROUTES", ""), "comma-separated nats-route:// URLs of peers [ALLSPARK_NATS_ROUTES]")
	wsListen := fs.String("ws-listen", def("WS_LISTEN", ""), "optional NATS-over-websocket address [ALLSPARK_NATS_WS_LISTEN]")
	logLevel := fs.String("log-level", def("LOG_LEVEL", "info"), "info, or debug for nats-server's notices [ALLSPARK_NATS_LOG_LEVEL]")
	user := fs.String("user", def("USER", ""), "service user (edges, push workers); generated when unset [ALLSPARK_NATS_USER]")
	password := fs.String("password", def("PASSWORD", ""), "service user's password; generated when unset [ALLSPARK_NATS_PASSWORD]")
	backendUser := fs.String("backend-user", def("BACKEND_USER", ""), "backend user (may only send, query presence, read events, serve svc: ids) [ALLSPARK_NATS_BACKEND_USER]")
	backendPassword := fs.String("backend-password", def("BACKEND_PASSWORD", ""), "backend user's password; generated when unset [ALLSPARK_NATS_BACKEND_PASSWORD]")
	noAuth := fs.Bool("no-auth", def("NO_AUTH", "") == "true", "accept clients without credentials (never on a reachable network) [ALLSPARK_NATS_NO_AUTH=true]")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var peers []string
	for _, r := range strings.Split(*routes, ",") {
		if r = strings.TrimSpace(r); r != "" {
			peers = append(peers, r)
		}
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(stdout, &slog.HandlerOptions{Level: level}))
	var users []bus.NATSUser
	if *noAuth {
		log.Warn("!!! -no-auth: any client that reaches this server can read every message and send as anyone !!!")
	} else {
		// Generated passwords differ per server, and a client must be able
		// to use any server of a cluster: a cluster is given its own.
		if *clusterName != "" && (*password == "" || *backendPassword == "") {
			return errors.New("a cluster needs the same credentials on every server: set ALLSPARK_NATS_PASSWORD and ALLSPARK_NATS_BACKEND_PASSWORD (or -password and -backend-password), or -no-auth")
		}
		path := filepath.Join(*store, "credentials.json")
		creds, created, err := bus.LoadCredentials(path, bus.Credentials{
			Service: bus.NATSUser{Name: *user, Password: *password},
			Backend: bus.NATSUser{Name: *backendUser, Password: *backendPassword},
		})
		if err != nil {
			return err
		}
		users = creds.Users()
		log.Info("clients need credentials", "service_user", creds.Service.Name, "backend_user", creds.Backend.Name,
			"generated_passwords_in", path, "generated_now", created)
	}
	s, err := bus.StartServer(bus.ServerConfig{
		Name: *name, Listen: *listen, StoreDir: *store,
		ClusterName: *clusterName, ClusterListen: *clusterListen, Routes: peers,
		WebsocketListen: *wsListen, Users: users,
	}, log)
	if err != nil {
		return err
	}
	log.Info("embedded-nats ready", "client_url", s.ClientURL(), "name", *name, "cluster", *clusterName)
	<-ctx.Done()
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
