package bus

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/nats-io/nats.go"
)

// Presence is computed, not stored. Every edge knows which nodes it holds.
// To learn whether nodes are online anywhere, an edge asks all edges and
// gathers their answers. Connecting costs no NATS write, and there are no
// heartbeats per connection: the price is one scatter-gather per presence
// change and per GET /v1/sessions/{id}.

type presenceAnswer struct {
	Edge  string   `json:"edge"`
	Nodes []string `json:"nodes"`
}

// ServePresence answers presence queries for edge with holds, which
// reports whether a node is connected to this edge.
func ServePresence(nc *nats.Conn, subj Subjects, edge string, holds func(node string) bool) (*nats.Subscription, error) {
	sub, err := nc.Subscribe(subj.PresenceQuery(), func(m *nats.Msg) {
		var nodes []string
		if json.Unmarshal(m.Data, &nodes) != nil || m.Reply == "" {
			return
		}
		ans := presenceAnswer{Edge: edge, Nodes: []string{}}
		for _, n := range nodes {
			if holds(n) {
				ans.Nodes = append(ans.Nodes, n)
			}
		}
		b, _ := json.Marshal(ans)
		_ = nc.Publish(m.Reply, b)
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe presence queries: %w", err)
	}
	return sub, nil
}

// QueryPresence asks every edge which of nodes it holds and returns, per
// online node, the edges holding it. It returns when edges have answered or
// ctx ends (an edge that died since the registry saw it never answers).
func QueryPresence(ctx context.Context, nc *nats.Conn, subj Subjects, nodes []string, edges int) (map[string][]string, error) {
	out := map[string][]string{}
	if len(nodes) == 0 || edges == 0 {
		return out, nil
	}
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, fmt.Errorf("subscribe presence answers: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	q, _ := json.Marshal(nodes)
	if err := nc.PublishRequest(subj.PresenceQuery(), inbox, q); err != nil {
		return nil, fmt.Errorf("ask presence: %w", err)
	}
	for range edges {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			break // answers so far are the best we know
		}
		var a presenceAnswer
		if json.Unmarshal(m.Data, &a) != nil {
			continue
		}
		for _, n := range a.Nodes {
			out[n] = append(out[n], a.Edge)
		}
	}
	return out, nil
}
