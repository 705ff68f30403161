// Command matchmaker is the service of the README: one replica of svc:matchmaker.
package main

import (
	"context"
	"encoding/json"
	"os"
	"os/signal"

	"github.com/allspark-rt/allspark/client"
	"github.com/nats-io/nats.go"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	nc, err := nats.Connect(os.Getenv("NATS_URL")) // the backend NATS user
	if err != nil {
		panic(err)
	}
	defer nc.Close()
	// Every message to svc:matchmaker reaches one replica; answer through allspark.send.
	err = client.Serve(ctx, nc, "svc:matchmaker", func(ctx context.Context, m *client.ServiceMessage) error {
		answer, _ := json.Marshal(map[string]any{"src_id": "svc:matchmaker", "dest_id": m.SrcID, "payload": "match found"})
		_, err := nc.RequestWithContext(ctx, "allspark.send", answer)
		return err // an error: the message is stored and offered again
	})
	if err != nil {
		panic(err)
	}
}
