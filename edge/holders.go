package edge

import (
	"slices"
	"strconv"
	"strings"

	"github.com/allspark-rt/allspark"
	"github.com/nats-io/nats.go"
)

// Same-edge deliveries.
//
// A 1:1 message normally crosses NATS twice even when its sender and its
// recipient are on the same edge: a request to the node's subject, which
// this edge's own subscription receives, and the verdict back. When the
// node is held here and, as far as this edge knows, on no other edge, route
// hands the message straight to the node's connections here instead, with
// an ackVerdict that answers the router directly. Everything else is as on
// the NATS path: the connections track the ack with the same ack timeout,
// and a delivery no connection acked (timeout, close, drain, a full queue)
// is answered "not acked", so the router stores it in the node's inbox.
//
// Holders. Each edge tells the node's other holders when it gains its first
// connection of a node and when it loses its last, with control messages on
// the node's subject (header Allspark-Holder: one op byte, then the edge's
// holder id; see opHello and the others):
//   - hello: published right after the edge subscribes to the node. An edge
//     holding the node adds the sender to the node's remote holders, stops
//     shortcutting, and answers here.
//   - here: "I hold it too"; the receiver adds the sender to its remote
//     holders and stops shortcutting.
//   - bye: published right after the edge unsubscribes. Receivers drop the
//     sender; one left with no remote holder publishes a marker.
//   - marker: only its own sender acts on it (a hello is its sender's first
//     marker). It carries how many of this edge's deliveries to the node had
//     gone through NATS when it was published. When it comes back and the
//     node has no remote holder and no delivery has gone through NATS since,
//     shortcutting starts; otherwise another marker is published.
//
// Order. One sender's messages to one node must arrive in send order. A
// message sent through NATS is behind a later shortcut one until this
// edge's dispatcher has handed it to the connections. Shortcutting therefore
// starts only when a marker comes back through the same subscription and
// dispatcher with no NATS delivery published after it: everything this
// edge published to the node before the marker has been handed over by
// then. route publishes under the node's shard read lock and counts the
// publish there, and markers and hellos are published under the write lock,
// so a marker's count is exactly the deliveries published before it (a
// delivery that found no node here and published before the subscription
// existed never reaches this edge's subscription at all). Going from
// shortcut to NATS needs no barrier: a shortcut message is queued on the
// connection before route returns, so it is ahead of anything sent later.
//
// Race windows (none loses a message; each only narrows "every connection
// of the node receives every message" for a moment):
//   - Another edge gains the node while this one shortcuts: until this
//     edge's dispatcher reads the other's hello (one NATS hop), messages sent
//     here reach only the connections here.
//   - This edge gains the node while another holds it: between the hello
//     coming back to this edge and the other edge's here arriving, messages
//     sent here reach only the connections here.
//   - A hello, here or bye dropped by NATS (a dispatcher channel overflowing,
//     a NATS reconnect) leaves this edge not knowing of a holder, or knowing
//     of one that is gone: the first costs the other edge's connections
//     those messages until the re-nudge that follows the reconnect or the
//     drop (reconnect.go) says hello again for the node (reannounce), the
//     second only speed (the NATS path is always correct).
//
// In each window a message goes to the connections here only, and its
// verdict is theirs: acked by one of them (the node has it), or stored in
// the node's inbox, whose nudge reaches every edge holding the node. So a
// message answered delivered or stored always reaches the node.
//
// An edge of an older version knows no holder messages: it would hand them
// to its clients as message frames. Upgrade all edges of a deployment
// together.
const headerHolder = "Allspark-Holder"

// Holder ops, the first byte of the header's value.
const (
	opHello  = '+'
	opHere   = '='
	opBye    = '-'
	opMarker = 'm'
)

// holderID names this edge process among a node's holders. It is not the
// configured edge id: two processes must never share it, even in tests.
func holderID() string { return strings.TrimPrefix(nats.NewInbox(), "_INBOX.") }

// announceLocked publishes op about node, with this edge's count of NATS
// deliveries to it. Called with node's shard write lock held.
//
// Service ids (svc:...) are never announced: their subject is also read by
// backend replicas, which would take the announcement for a message, and
// the router never shortcuts them anyway.
func (h *hub) announceLocked(node string, n *hubNode, op byte) {
	if allspark.IsServiceID(node) {
		return
	}
	msg := &nats.Msg{Subject: h.subj.Node(node), Header: nats.Header{headerHolder: []string{string(op) + h.self}}}
	if op == opHello || op == opMarker {
		msg.Data = strconv.AppendUint(nil, n.natsOut.Load(), 10)
	}
	if err := h.nc.PublishMsg(msg); err != nil {
		h.log.Warn("announce node holder", "node", node, "err", err)
	}
}

// onHolder applies a holder control message about node, on its dispatcher.
func (h *hub) onHolder(node, val string, data []byte) {
	if len(val) < 2 {
		return
	}
	op, from := val[0], val[1:]
	h.nodes.update(node, func(n *hubNode, ok bool) (*hubNode, bool) {
		if !ok {
			return nil, false
		}
		if from == h.self {
			if op == opHello || op == opMarker {
				h.markerBackLocked(node, n, data)
			}
			return n, true
		}
		switch op {
		case opHello, opHere:
			if n.remote == nil {
				n.remote = map[string]struct{}{}
			}
			n.remote[from] = struct{}{}
			n.local = false
			if op == opHello {
				h.announceLocked(node, n, opHere)
			}
		case opBye:
			if _, had := n.remote[from]; had {
				delete(n.remote, from)
				if len(n.remote) == 0 {
					h.announceLocked(node, n, opMarker)
				}
			}
		}
		return n, true
	})
}

// markerBackLocked starts shortcutting if no remote holder is known and no
// delivery went through NATS after the marker was published; with no
// remote holder but newer NATS deliveries, it publishes another marker.
func (h *hub) markerBackLocked(node string, n *hubNode, data []byte) {
	if len(n.remote) > 0 || n.local {
		return
	}
	sent, err := strconv.ParseUint(string(data), 10, 64)
	if err == nil && sent == n.natsOut.Load() {
		n.local = true
		return
	}
	h.announceLocked(node, n, opMarker)
}

// route is the router's Route hook: a delivery to a node held here and on
// no other known edge goes straight to its connections; any other is
// published, under the shard's read lock (see the Order note above).
func (h *hub) route(node, msgID string, frame []byte, publish func() error, done func(acked bool)) error {
	var conns []*conn
	var err error
	h.nodes.view(node, func(n *hubNode, ok bool) {
		if ok && n.local {
			conns = slices.Clone(n.conns)
			return
		}
		if ok {
			n.natsOut.Add(1)
		}
		err = publish()
	})
	if conns == nil {
		return err
	}
	h.localOut.Add(1)
	v := &ackVerdict{local: done}
	v.hold() // ours, until every connection has had the delivery
	for _, c := range conns {
		c.deliver(frame, msgID, v)
	}
	v.giveUp() // no connection took it: stored now
	return nil
}

// reannounce says hello again for nodes, after a NATS reconnect or dropped
// deliveries may have lost holder messages: this edge stops shortcutting
// them until its hello comes back, and every other holder answers here.
func (h *hub) reannounce(nodes []string) {
	for _, node := range nodes {
		h.nodes.update(node, func(n *hubNode, ok bool) (*hubNode, bool) {
			if !ok {
				return nil, false
			}
			n.local = false
			h.announceLocked(node, n, opHello)
			return n, true
		})
	}
}

// giveUpLocal gives up on every same-edge delivery still awaiting an ack
// (see conn.giveUpLocal).
func (h *hub) giveUpLocal() {
	for _, c := range h.all() {
		c.giveUpLocal()
	}
}
