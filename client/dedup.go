package client

// dedup remembers the last n msg_ids handed to the application, and
// whether each was acknowledged, so a redelivery (the same message replayed
// from the inbox after a reconnect, or delivered live and replayed) is
// dropped and only acknowledged again. Memory is bounded: the oldest id is
// forgotten when a new one arrives and n are held.
// Not safe for concurrent use; the Client guards it.
type dedup struct {
	ring  []string
	next  int
	acked map[string]bool
}

func newDedup(n int) *dedup {
	return &dedup{ring: make([]string, n), acked: make(map[string]bool, n)}
}

// add records id and reports whether it is new. seen reports the id's ack
// state when it is not new.
func (d *dedup) add(id string) (isNew, acked bool) {
	if a, ok := d.acked[id]; ok {
		return false, a
	}
	if old := d.ring[d.next]; old != "" {
		delete(d.acked, old)
	}
	d.ring[d.next] = id
	d.next = (d.next + 1) % len(d.ring)
	d.acked[id] = false
	return true, false
}

// markAcked records that the application acknowledged id.
func (d *dedup) markAcked(id string) {
	if _, ok := d.acked[id]; ok {
		d.acked[id] = true
	}
}

func (d *dedup) len() int { return len(d.acked) }
