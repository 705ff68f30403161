package edge

import (
	"context"
	"errors"
	"maps"
	"slices"
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
//   - after a slow consumer, it does the same for every node whose
//     subscription dropped deliveries, and keeps checking each heartbeat
//     until a check finds none and the dispatchers have room (later drops
//     on an already-slow subscription are not reported);
//   - a node whose re-nudge failed (JetStream still failing past
//     InboxReadGrace) is tried again a heartbeat later. These passes are
//     soft: their failure closes only connections still waiting for their
//     first sync_done, never every synced connection of the edge.
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
	renudgeRetry     = "retry" // a re-nudge that failed, tried again a heartbeat later
)

// renudger is what the NATS callbacks share with the re-nudge loop; the
// rest of its state is the loop's own.
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
	// settle: sweep every held node again at the next tick (after a
	// reconnect); dropsSuspected: check the subscriptions for drops at
	// each tick; retry: nodes whose re-nudge failed, for the next tick.
	var settle, dropsSuspected bool
	retry := map[string]struct{}{}
	run := func(reason string, nodes []string) {
		if reason != renudgeRetry {
			s.hub.reannounce(nodes) // holder messages may have been lost too
		}
		for _, node := range s.sweep(reason, nodes) {
			retry[node] = struct{}{}
		}
	}
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
			s.flushSubs()
			run(renudgeReconnect, s.heldNodes(nil))
			settle = true
			t.Reset(s.cfg.Heartbeat)
		case <-s.renudge.slow:
			dropsSuspected = true
			run(renudgeDropped, s.heldNodes(s.droppedSince))
		case <-t.C:
			if len(retry) > 0 {
				nodes := slices.Collect(maps.Keys(retry))
				clear(retry)
				run(renudgeRetry, nodes)
			}
			if settle {
				settle = false
				run(renudgeReconnect, s.heldNodes(nil))
			}
			if dropsSuspected {
				dropped := s.heldNodes(s.droppedSince)
				run(renudgeDropped, dropped)
				dropsSuspected = len(dropped) > 0 || s.hub.congested()
			}
		}
	}
}

// flushSubs makes sure the server has the subscriptions nats.go sent again
// on reconnect before the sweep reads, so that anything stored after a
// read is nudged to us (from this server; another one of the cluster may
// learn of them later, which the second sweep covers).
func (s *Server) flushSubs() {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Heartbeat)
	defer cancel()
	_ = s.nc.FlushWithContext(ctx) // best effort: the passes read either way
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

// heldNodes lists the nodes held here that want accepts (nil: all).
func (s *Server) heldNodes(want func(*hubNode) bool) []string {
	var nodes []string
	s.hub.nodes.each(func(node string, n *hubNode) {
		if want == nil || want(n) {
			nodes = append(nodes, node)
		}
	})
	return nodes
}

// sweep re-nudges nodes on a pool of at most MaxInboxReads goroutines and
// returns those whose re-nudge failed. It stops feeding the pool when the
// edge stops.
func (s *Server) sweep(reason string, nodes []string) (failed []string) {
	if len(nodes) == 0 || s.nc.IsClosed() {
		return nil
	}
	work := make(chan string)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range min(len(nodes), s.cfg.MaxInboxReads) {
		wg.Go(func() {
			for node := range work {
				if !s.renudgeNode(node, reason) {
					mu.Lock()
					failed = append(failed, node)
					mu.Unlock()
				}
			}
		})
	}
feed:
	for _, node := range nodes {
		select {
		case work <- node:
		case <-s.stop:
			break feed
		}
	}
	close(work)
	wg.Wait()
	return failed
}

// renudgeNode runs an inbox pass for node on this goroutine (or asks the
// running one to go again) and reloads its memberships, which a lost
// membership nudge left stale. It reports false if either failed while
// the node is still here.
func (s *Server) renudgeNode(node, reason string) bool {
	var in *nodeInbox
	s.hub.nodes.view(node, func(n *hubNode, ok bool) {
		if ok {
			in = n.inbox
		}
	})
	if in == nil {
		return true // gone since the sweep listed it
	}
	s.m.renudgeBy[reason].Inc()
	if err := in.runPass(); err != nil {
		return in.ctx.Err() != nil
	}
	conns := s.hub.lookup(node)
	if len(conns) == 0 {
		return true
	}
	ctx, cancel := context.WithTimeout(in.ctx, inboxReadTimeout)
	defer cancel()
	m, err := s.sessions.NodeSessions(ctx, node)
	if err != nil {
		if in.ctx.Err() != nil {
			return true
		}
		s.log.Warn("reload memberships", "node", node, "reason", reason, "err", err)
		return false
	}
	for _, c := range conns {
		c.setSessions(m)
	}
	return true
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
