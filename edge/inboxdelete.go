package edge

import (
	"context"
	"slices"
)

// Removing acknowledged inbox messages. A connection hands its node's
// inbox messages to the client in sequence order, every one of them from
// the inbox's beginning (its cursor starts at 0 and only moves past a
// message it was handed), so once the client has acknowledged every
// message it was handed up to sequence P, the node has no message left at
// or below P that is unacknowledged: the whole prefix goes in one purge of
// the node's subject. An acknowledgement ahead of a gap (3 still unacked
// while 4 is) is removed on its own, at once, and never by a purge.
//
// Deletions queue on the edge (Server.deletes) and the deleters coalesce
// what queued while they were busy: a client acknowledging one message per
// frame still costs one purge per node per round trip to NATS, not one
// delete per message.

// inboxDelete is a deletion queued for the deleters: seq alone, or with
// upTo every message of node's inbox at or below seq (n of them acked).
type inboxDelete struct {
	node string
	seq  uint64
	upTo bool
	n    int
}

// maxDeleteBatch bounds the deletions one deleter takes at once.
const maxDeleteBatch = 1024

// inboxLedger is what a connection was handed from its node's inbox and
// not yet removed. Guarded by the connection's mu.
type inboxLedger struct {
	started bool                // a message was handed
	whole   bool                // the first was read from the inbox's beginning, and every one was ackable
	sent    []uint64            // handed, in order, above the removed prefix
	acked   map[uint64]struct{} // acknowledged members of sent past its first
}

// handed records that the message seq went to the client; cursor is the
// connection's inbox position before it, ackable whether the message has
// a msg_id the client can acknowledge.
func (l *inboxLedger) handed(seq, cursor uint64, ackable bool) {
	if !l.started {
		l.started, l.whole = true, cursor == 0
	}
	if !ackable {
		// It can never be acknowledged, so no prefix may ever cover it.
		l.whole = false
		return
	}
	l.sent = append(l.sent, seq)
}

// ack records acknowledged sequences and says what to remove: the new
// acknowledged prefix (up to upTo, n messages; 0 if none or if purges are
// off) and the sequences to delete one by one.
func (l *inboxLedger) ack(seqs []uint64) (upTo uint64, n int, singles []uint64) {
	for _, seq := range seqs {
		if _, ok := slices.BinarySearch(l.sent, seq); !ok {
			singles = append(singles, seq) // not handed by this ledger: delete it alone
			continue
		}
		if l.acked == nil {
			l.acked = map[uint64]struct{}{}
		}
		l.acked[seq] = struct{}{}
	}
	for len(l.sent) > 0 {
		if _, ok := l.acked[l.sent[0]]; !ok {
			break
		}
		delete(l.acked, l.sent[0])
		upTo, n = l.sent[0], n+1
		if !l.whole {
			singles = append(singles, l.sent[0])
		}
		l.sent = l.sent[1:]
	}
	if len(l.sent) == 0 {
		l.sent = nil // let the backing array go
	}
	for _, seq := range seqs {
		if _, pending := l.acked[seq]; pending {
			singles = append(singles, seq) // ahead of a gap
		}
	}
	if !l.whole {
		return 0, 0, singles
	}
	return upTo, n, singles
}

// removeAcked queues the removal of the inbox messages c's client just
// acknowledged.
func (c *conn) removeAcked(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	c.mu.Lock()
	upTo, n, singles := c.inboxSent.ack(seqs)
	c.mu.Unlock()
	if upTo != 0 {
		c.s.queueDelete(inboxDelete{node: c.id.NodeID, seq: upTo, upTo: true, n: n})
	}
	for _, seq := range singles {
		c.s.queueDelete(inboxDelete{node: c.id.NodeID, seq: seq})
	}
}

// queueDelete hands a deletion to the deleters. If their queue is full the
// deletion is skipped: the messages come again at the next connection (a
// duplicate, never a loss).
func (s *Server) queueDelete(d inboxDelete) {
	select {
	case s.deletes <- d:
	default:
		s.log.Warn("inbox delete queue full; message will be redelivered", "node", d.node, "seq", d.seq)
	}
}

// deleter removes acknowledged messages from the inbox until stop closes.
func (s *Server) deleter() {
	batch := make([]inboxDelete, 0, maxDeleteBatch)
	for {
		select {
		case <-s.stop:
			return
		case d := <-s.deletes:
			batch = append(batch[:0], d)
		}
	drain:
		for len(batch) < maxDeleteBatch {
			select {
			case d := <-s.deletes:
				batch = append(batch, d)
			default:
				break drain
			}
		}
		s.removeBatch(batch)
	}
}

// removeBatch merges the prefixes of each node into one (the highest: each
// was acknowledged whole), drops single deletes a prefix covers, and
// removes the rest.
func (s *Server) removeBatch(batch []inboxDelete) {
	prefixes := map[string]inboxDelete{}
	for _, d := range batch {
		if d.upTo {
			p := prefixes[d.node]
			p.node, p.upTo, p.seq, p.n = d.node, true, max(p.seq, d.seq), p.n+d.n
			prefixes[d.node] = p
		}
	}
	for _, d := range batch {
		if !d.upTo && d.seq > prefixes[d.node].seq {
			s.remove(d)
		}
	}
	for _, p := range prefixes {
		if p.n == 1 {
			p.upTo = false // one message: a delete is cheaper than a purge
		}
		s.remove(p)
	}
}

func (s *Server) remove(d inboxDelete) {
	ctx, cancel := context.WithTimeout(context.Background(), inboxReadTimeout)
	defer cancel()
	var err error
	if d.upTo {
		err = s.inbox.RemoveUpTo(ctx, d.node, d.seq)
	} else {
		err = s.inbox.Remove(ctx, d.seq)
	}
	switch {
	case err == nil:
	case alreadyRemoved(err):
		// Two connections of the node (or a pass after a redelivery)
		// delivered the same message and both acks came back; the
		// first one removed it.
		s.log.Debug("acked message already removed", "seq", d.seq, "err", err)
	default:
		s.log.Warn("remove acked messages", "node", d.node, "seq", d.seq, "up_to", d.upTo, "err", err)
	}
}
