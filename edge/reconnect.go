package edge

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
)

// Re-nudges. A message stored for a node that is online on this edge is
// announced by one core-NATS nudge on the node's subject (bus.HeaderInbox),
// and a join or leave by one membership nudge (bus.HeaderMembership).
// Core NATS does not keep what it could not deliver, so a nudge is lost
// when this edge's NATS connection is down (say its server was killed) or
// when a dispatcher channel is full (nats.go drops the delivery and reports
// a slow consumer, once per subscription until it delivers to it again).
// Nothing would nudge again: the message would wait for the node's next
// connection.
//
// So the edge repairs what it may have missed:
//   - after its NATS connection reconnects, it runs one inbox pass and one
//     membership reload for every node it holds, then the same once more a
//     heartbeat later (another server of the cluster may have dropped a
//     nudge before it learnt, through its routes, of our renewed interest);
//   - after a slow consumer, it runs an inbox pass for every node whose
//     subscription dropped deliveries, and keeps checking each heartbeat
//     until a check finds none (later drops on an already-slow
//     subscription are not reported).
//
// An inbox pass starts from where each connection is (conn.inboxNext), so
// an extra pass reads nothing twice and hands no connection a message it
// already had; it costs one inbox read per node when there is nothing new.
// The passes run on at most MaxInboxReads goroutines (the reads they make
// are bounded by the same number anyway), so 20,000 held nodes are swept
// by a pool, not by 20,000 goroutines.

// Reasons for a re-nudge pass, the label of allspark_inbox_renudge_passes_total.
const (
	renudgeReconnect = "reconnect"
	renudgeDropped   = "dropped"
)

// renudger is the edge's re-nudge state; the loop that uses it is the
// only one to read or write anything but the kick channels.
type renudger struct {
	// slow is kicked (never blocking) by the NATS async error handler on a
	// slow consumer.
	slow chan struct{}
}

// watchNATS arranges the re-nudges: it chains a slow-consumer hook onto
// the connection's error handler (keeping the one the caller set) and
// starts the loop, which follows the connection's reconnects until the
// edge stops.
func (s *Server) watchNATS() {
	s.renudge.slow = make(chan struct{}, 1)
	prev := s.nc.ErrorHandler()
	s.nc.SetErrorHandler(func(nc *nats.Conn, sub *nats.Subscription, err error) {
		if prev != nil {
			prev(nc, sub, err)
		}
		if errors.Is(err, nats.ErrSlowConsumer) {
			select {
			case s.renudge.slow <- struct{}{}:
			default: // a check is already due
			}
		}
	})
	status := s.nc.StatusChanged(nats.CONNECTED)
	s.goBackground(func() {
		defer s.nc.RemoveStatusListener(status)
		s.renudgeLoop(status)
	})
}

func (s *Server) renudgeLoop(status <-chan nats.Status) {
	t := time.NewTicker(s.cfg.Heartbeat)
	defer t.Stop()
	// settle: a reconnect sweep is to be repeated at the next tick;
	// dropsSuspected: check the subscriptions for drops at each tick.
	var settle, dropsSuspected bool
	for {
		select {
		case <-s.stop:
			return
		case <-status:
			// Coalesce a flapping connection's reconnects into one sweep.
			for len(status) > 0 {
				<-status
			}
			s.log.Info("nats reconnected; reading the inbox of every node held here")
			s.sweep(renudgeReconnect, nil)
			settle = true
			t.Reset(s.cfg.Heartbeat)
		case <-s.renudge.slow:
			dropsSuspected = true
			s.sweep(renudgeDropped, s.droppedSince)
		case <-t.C:
			if settle {
				settle = false
				s.sweep(renudgeReconnect, nil)
			}
			if dropsSuspected {
				dropsSuspected = s.sweep(renudgeDropped, s.droppedSince) > 0 || s.hub.congested()
			}
		}
	}
}

// droppedSince reports whether n's subscription dropped deliveries since
// the last check, and records the new count.
func (s *Server) droppedSince(n *hubNode) bool {
	d, err := n.sub.Dropped()
	if err != nil {
		return false // unsubscribed: the node has left
	}
	return int64(d) > n.dropped.Swap(int64(d))
}

// sweep runs a re-nudge for every node held here that want accepts (nil:
// every node), on a bounded pool, and returns how many it ran. A
// reconnect sweep also reloads the nodes' memberships. It returns early
// when the edge stops.
func (s *Server) sweep(reason string, want func(*hubNode) bool) int {
	if s.nc.IsClosed() {
		return 0
	}
	if reason == renudgeReconnect {
		// Our subscriptions were sent again on reconnect; a round trip
		// makes sure the server has them before we read, so anything
		// stored after a read is nudged to us.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Heartbeat)
		_ = s.nc.FlushWithContext(ctx) // best effort: the passes read either way
		cancel()
	}
	var nodes []string
	s.hub.nodes.each(func(node string, n *hubNode) {
		if want == nil || want(n) {
			nodes = append(nodes, node)
		}
	})
	if len(nodes) == 0 {
		return 0
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for range min(len(nodes), s.cfg.MaxInboxReads) {
		wg.Go(func() {
			for node := range work {
				s.renudgeNode(node, reason)
			}
		})
	}
	ran := 0
feed:
	for _, node := range nodes {
		select {
		case work <- node:
			ran++
		case <-s.stop:
			break feed
		}
	}
	close(work)
	wg.Wait()
	return ran
}

// renudgeNode runs an inbox pass for node on this goroutine (or asks the
// running one to go again) and, after a reconnect, reloads its memberships.
func (s *Server) renudgeNode(node, reason string) {
	var in *nodeInbox
	s.hub.nodes.view(node, func(n *hubNode, ok bool) {
		if ok {
			in = n.inbox
		}
	})
	if in == nil {
		return // gone since the sweep listed it
	}
	s.m.renudgeBy[reason].Inc()
	in.runPass()
	if reason != renudgeReconnect {
		return
	}
	conns := s.hub.lookup(node)
	if len(conns) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(in.ctx, inboxReadTimeout)
	defer cancel()
	m, err := s.sessions.NodeSessions(ctx, node)
	if err != nil {
		if in.ctx.Err() == nil {
			s.log.Warn("reload memberships after reconnect", "node", node, "err", err)
		}
		return
	}
	for _, c := range conns {
		c.setSessions(m)
	}
}

// congested reports whether a dispatcher channel is at least half full:
// deliveries may still be dropped.
func (h *hub) congested() bool {
	for _, ch := range h.chans {
		if len(ch) >= cap(ch)/2 {
			return true
		}
	}
	return false
}
