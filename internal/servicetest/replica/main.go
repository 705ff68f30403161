// Command replica is one replica of a service node for the process-level
// service tests: it serves SERVICE_ID with client.Serve on NATS_URL and
// writes "<msg_id> <src_id>\n" to OUT for every message its handler takes,
// with one write(2) each, before the ack, so a SIGKILL loses no record of
// an acked message. It writes "up\n" to OUT once subscribed.
package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/allspark-rt/allspark/client"
	"github.com/nats-io/nats.go"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "replica:", err)
		os.Exit(1)
	}
}

func run() error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	out, err := os.OpenFile(os.Getenv("OUT"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open OUT: %w", err)
	}
	defer out.Close()
	nc, err := nats.Connect(os.Getenv("NATS_URL"), nats.MaxReconnects(-1))
	if err != nil {
		return fmt.Errorf("connect nats: %w", err)
	}
	defer nc.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	return client.Serve(ctx, nc, os.Getenv("SERVICE_ID"), func(_ context.Context, m *client.ServiceMessage) error {
		if _, err := out.WriteString(m.MsgID + " " + m.SrcID + "\n"); err != nil {
			return fmt.Errorf("record message: %w", err)
		}
		return nil
	}, client.WithServiceOptions(client.ServiceOptions{ReadyInterval: 2 * time.Second, Logger: log,
		OnSubscribed: func() { _, _ = out.WriteString("up\n") }}))
}
