// Command embedded-nats runs a standalone nats-server with JetStream, for
// development clusters and tests. Flags override ALLSPARK_NATS_* variables.
//
//	embedded-nats -listen 127.0.0.1:4222 -store ./data/nats-1 \
//	  -name n1 -cluster-name allspark -cluster-listen 127.0.0.1:6222 \
//	  -routes nats-route://127.0.0.1:6223,nats-route://127.0.0.1:6224
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
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
	s, err := bus.StartServer(bus.ServerConfig{
		Name: *name, Listen: *listen, StoreDir: *store,
		ClusterName: *clusterName, ClusterListen: *clusterListen, Routes: peers,
		WebsocketListen: *wsListen,
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
