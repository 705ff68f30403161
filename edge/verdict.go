package edge

import (
	"sync/atomic"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go"
)

// ackVerdict is the one answer this edge gives a delivery it handed to one or
// more connections of a node: "+" as soon as any of them acks, "-" only
// once every one has given up on it (ack timeout, or closed). Without it a
// connection that was closing when the delivery came (its client already
// gone) would answer "-" first, and the sender would store a message that
// the node's live connection acked a moment later.
//
// The answer goes to the sending edge's reply subject (a delivery from
// NATS: "+" through the ack batcher, "-" at once), or, for a delivery this
// edge's own router made without NATS (see holders.go), to local.
type ackVerdict struct {
	reply   string
	nc      *nats.Conn
	acks    *ackBatcher
	local   func(acked bool) // set instead of reply for a same-edge delivery
	holders atomic.Int32     // connections still waiting for their client's ack, plus the hub while it hands out
	settled atomic.Bool      // the answer is sent
}

// hold counts one more holder of the delivery.
func (v *ackVerdict) hold() { v.holders.Add(1) }

// ack answers "+", unless an answer was sent already.
func (v *ackVerdict) ack() {
	if !v.settled.CompareAndSwap(false, true) {
		return
	}
	if v.local != nil {
		v.local(true)
		return
	}
	v.acks.add(v.reply)
}

// giveUp drops one holder; the last one out answers "-" if nobody acked.
func (v *ackVerdict) giveUp() {
	if v.holders.Add(-1) != 0 || !v.settled.CompareAndSwap(false, true) {
		return
	}
	if v.local != nil {
		v.local(false)
		return
	}
	_ = v.nc.Publish(v.reply, bus.ReplyNotAcked)
}

// isLocal reports whether v answers a same-edge delivery.
func (v *ackVerdict) isLocal() bool { return v.local != nil }
