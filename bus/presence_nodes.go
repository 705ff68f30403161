package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/nats-io/nats.go"
)

// Online status for backends: allspark.presence.nodes and POST
// /v1/presence ask one edge, which runs the same scatter-gather sessions
// use (QueryPresence) and answers per node whether it is online and on
// how many edges.

// PresenceNodes is the request subject backends ask online status on.
func (s Subjects) PresenceNodes() string { return s.prefix + ".presence.nodes" }

// PresenceRequest is the body of a presence query.
type PresenceRequest struct {
	Nodes []string `json:"nodes"`
}

// NodePresence is one node's online status.
type NodePresence struct {
	NodeID string `json:"node_id"`
	Online bool   `json:"online"`
	Edges  int    `json:"edges"` // how many edges hold a connection of the node
}

// PresenceAnswer answers a presence query: the nodes in the order asked,
// or an error.
type PresenceAnswer struct {
	Nodes []NodePresence  `json:"nodes"`
	Error *allspark.Error `json:"error,omitempty"`
}

// ParsePresenceRequest decodes and validates a presence query of at most
// maxNodes node ids.
func ParsePresenceRequest(data []byte, maxNodes int) (PresenceRequest, *allspark.Error) {
	var req PresenceRequest
	if err := json.Unmarshal(data, &req); err != nil {
		return req, allspark.Errorf(allspark.CodeBadRequest, "invalid JSON: "+err.Error())
	}
	if len(req.Nodes) > maxNodes {
		return req, allspark.Errorf(allspark.CodeTooLarge, fmt.Sprintf("%d nodes asked, the limit is %d (ALLSPARK_PRESENCE_MAX_NODES)", len(req.Nodes), maxNodes))
	}
	for _, n := range req.Nodes {
		if !allspark.ValidID(n) {
			return req, allspark.Errorf(allspark.CodeBadID, fmt.Sprintf("invalid node id %q", allspark.Truncate(n, 40)))
		}
	}
	return req, nil
}

// Presence answers req by asking every one of edges live edges, waiting at
// most timeout. An edge that does not answer in time counts as holding
// nothing.
func Presence(ctx context.Context, nc *nats.Conn, subj Subjects, req PresenceRequest, edges int, timeout time.Duration) (PresenceAnswer, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	held, err := QueryPresence(ctx, nc, subj, req.Nodes, edges)
	if err != nil {
		return PresenceAnswer{}, err
	}
	ans := PresenceAnswer{Nodes: make([]NodePresence, 0, len(req.Nodes))}
	for _, n := range req.Nodes {
		ans.Nodes = append(ans.Nodes, NodePresence{NodeID: n, Online: len(held[n]) > 0, Edges: len(held[n])})
	}
	return ans, nil
}

// PresenceNodesConfig configures ServePresenceNodes.
type PresenceNodesConfig struct {
	MaxNodes int
	Timeout  time.Duration
	Edges    func() int        // live edges now
	Spawn    func(work func()) // runs a query off the subscription's goroutine
	// MaxInFlight bounds the queries running at once (default 64); past
	// it a request is answered "overloaded" at once instead of starting a
	// scatter-gather.
	MaxInFlight int
}

// ServePresenceNodes answers allspark.presence.nodes; one edge answers
// each request.
func ServePresenceNodes(nc *nats.Conn, subj Subjects, cfg PresenceNodesConfig) (*nats.Subscription, error) {
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 64
	}
	slots := make(chan struct{}, cfg.MaxInFlight)
	sub, err := nc.QueueSubscribe(subj.PresenceNodes(), sendQueue, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		answer := func(a PresenceAnswer) {
			b, _ := json.Marshal(a)
			_ = nc.Publish(m.Reply, b)
		}
		req, perr := ParsePresenceRequest(m.Data, cfg.MaxNodes)
		if perr != nil {
			answer(PresenceAnswer{Nodes: []NodePresence{}, Error: perr})
			return
		}
		select {
		case slots <- struct{}{}:
		default:
			answer(PresenceAnswer{Nodes: []NodePresence{}, Error: allspark.Errorf(allspark.CodeOverloaded, "too many presence queries in flight; retry later")})
			return
		}
		cfg.Spawn(func() {
			defer func() { <-slots }()
			a, err := Presence(context.Background(), nc, subj, req, cfg.Edges(), cfg.Timeout)
			if err != nil {
				a = PresenceAnswer{Nodes: []NodePresence{}, Error: allspark.Errorf(allspark.CodeUnavailable, "presence query failed")}
			}
			answer(a)
		})
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe %s: %w", subj.PresenceNodes(), err)
	}
	return sub, nil
}
