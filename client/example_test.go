package client_test

import (
	"context"
	"fmt"

	"github.com/allspark-rt/allspark/client"
)

// newKey stands for the application's backend minting an auth_key.
func newKey(context.Context) (string, error) { return "", fmt.Errorf("no backend in this example") }

// The README's example, compiled (not run: it needs an edge).
func Example() {
	ctx := context.Background()
	aliceKey, _ := newKey(ctx)
	cl, err := client.Dial(ctx, client.Config{
		URL:     "http://localhost:8080",
		AuthKey: aliceKey, // minted by your backend
		OnMessage: func(ctx context.Context, m *client.Message) {
			fmt.Printf("%s says %s\n", m.SrcID, m.Payload) // acked when this returns
		},
		RefreshKey: newKey,
	})
	if err != nil {
		return
	}
	defer cl.Close()
	out, err := cl.Send(ctx, client.Outgoing{DestID: "bob", Payload: "hi bob"})
	fmt.Println(out.Status, err)
}
