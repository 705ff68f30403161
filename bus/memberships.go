package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// The memberships bucket holds, per node, an index of the sessions the
// node is in. The node's member key in the session (allspark_sessions,
// Token(sid).n.Token(node): see session_members.go) is authoritative; an
// index entry is derived from it and stamped with the revision of the
// key's write (its creation, or its delete marker), so a late write
// derived from an older one can never undo a newer one (a join's "member"
// arriving after the unjoin's "gone"). Revisions are sequences of the
// bucket's stream, so they also order the first-format session records
// (members inline, stamped with the record's revision) before any member
// key migrated from them. A join first reserves a slot here ("pending",
// which counts against the node's cap but is not a membership), then
// writes the member key, then turns the slot into "member"; a join the
// session refuses releases its slot. So the index never lists a session
// without the node's key, and a node over its cap never reaches the
// session.
const (
	entryMember  = "member"
	entryPending = "pending"
	entryGone    = "gone"
)

const (
	// pendingTTL is how long a reservation counts against the cap; one
	// older than this belongs to a join that died between its writes.
	pendingTTL = time.Minute
	// goneTTL is how long a tombstone is kept to refuse stale derivations:
	// far longer than any single join or unjoin may take.
	goneTTL = 10 * time.Minute
)

type membershipEntry struct {
	State    string `json:"state"`
	MemberID string `json:"member_id,omitempty"`
	// Rev is the session record revision this entry was derived from; for
	// a pending entry, the revision of the entry it replaced (a floor).
	Rev uint64 `json:"rev,omitempty"`
	At  int64  `json:"at"` // Unix ms of the write, for expiry
}

type nodeMemberships struct {
	Sessions map[string]membershipEntry `json:"sessions"`
}

// decodeMemberships reads a node's index. The first format was a flat
// {"session id":"member id"} object, read as unstamped members; an absent
// or corrupt value is empty.
func decodeMemberships(b []byte) nodeMemberships {
	m := nodeMemberships{Sessions: map[string]membershipEntry{}}
	if len(b) == 0 {
		return m
	}
	var flat map[string]string
	if json.Unmarshal(b, &flat) == nil {
		for sid, member := range flat {
			m.Sessions[sid] = membershipEntry{State: entryMember, MemberID: member}
		}
		return m
	}
	_ = json.Unmarshal(b, &m)
	if m.Sessions == nil {
		m.Sessions = map[string]membershipEntry{}
	}
	return m
}

// members lists the sessions the record confirms: session id -> member id.
func (m nodeMemberships) members() map[string]string {
	out := make(map[string]string, len(m.Sessions))
	for sid, e := range m.Sessions {
		if e.State == entryMember {
			out[sid] = e.MemberID
		}
	}
	return out
}

// compact drops expired reservations (keeping their floor as a tombstone)
// and old tombstones, and bounds the tombstones kept to limit.
func (m nodeMemberships) compact(now time.Time, limit int) {
	var gone []string
	for sid, e := range m.Sessions {
		age := now.Sub(time.UnixMilli(e.At))
		switch {
		case e.State == entryPending && age > pendingTTL && e.Rev == 0:
			delete(m.Sessions, sid)
		case e.State == entryPending && age > pendingTTL:
			m.Sessions[sid] = membershipEntry{State: entryGone, Rev: e.Rev, At: e.At}
			gone = append(gone, sid)
		case e.State == entryGone && age > goneTTL:
			delete(m.Sessions, sid)
		case e.State == entryGone:
			gone = append(gone, sid)
		}
	}
	if len(gone) > limit {
		sort.Slice(gone, func(i, j int) bool { return m.Sessions[gone[i]].At < m.Sessions[gone[j]].At })
		for _, sid := range gone[:len(gone)-limit] {
			delete(m.Sessions, sid)
		}
	}
}

// used counts the slots held against the cap: members and live reservations.
func (m nodeMemberships) used() int {
	n := 0
	for _, e := range m.Sessions {
		if e.State == entryMember || e.State == entryPending {
			n++
		}
	}
	return n
}

// NodeSessions returns the sessions node belongs to: session id -> member id.
func (s *Sessions) NodeSessions(ctx context.Context, node string) (map[string]string, error) {
	e, err := s.memberships.Get(ctx, Token(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read memberships: %w", err)
	}
	return decodeMemberships(e.Value()).members(), nil
}

// updateMemberships applies change to node's index with compare-and-swap.
func (s *Sessions) updateMemberships(ctx context.Context, node string, change func(m nodeMemberships, now time.Time) error) error {
	return UpdateKV(ctx, s.memberships, Token(node), func(cur []byte) ([]byte, error) {
		m := decodeMemberships(cur)
		now := s.now()
		if err := change(m, now); err != nil {
			return nil, err
		}
		m.compact(now, s.maxNodeSessions)
		return json.Marshal(m)
	})
}

// reserve holds a slot for node in sid, or fails with ErrTooManySessions.
// It reports whether it made the reservation (and so must release it if
// the session record refuses the join); an entry already holding a slot
// for sid is reused.
func (s *Sessions) reserve(ctx context.Context, node, sid string) (bool, error) {
	made := false
	err := s.updateMemberships(ctx, node, func(m nodeMemberships, now time.Time) error {
		made = false
		m.compact(now, s.maxNodeSessions) // an expired reservation frees its slot now
		e, ok := m.Sessions[sid]
		if ok && (e.State == entryMember || e.State == entryPending) {
			return ErrNoChange
		}
		if m.used() >= s.maxNodeSessions {
			return ErrTooManySessions
		}
		m.Sessions[sid] = membershipEntry{State: entryPending, Rev: e.Rev, At: now.UnixMilli()}
		made = true
		return nil
	})
	switch {
	case errors.Is(err, ErrTooManySessions):
		return false, ErrTooManySessions // the answer to the caller, as is
	case err != nil:
		return false, fmt.Errorf("reserve membership: %w", err)
	}
	return made, nil
}

// release gives back a reservation whose join the session record refused.
// Anything else in its place (a membership derived from the record by a
// concurrent join of the same node, a tombstone) is left alone. It runs
// even if the caller's context has ended: a leftover reservation would
// hold a slot until it expires.
func (s *Sessions) release(ctx context.Context, node, sid string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.updateMemberships(ctx, node, func(m nodeMemberships, _ time.Time) error {
		e, ok := m.Sessions[sid]
		if !ok || e.State != entryPending {
			return ErrNoChange
		}
		if e.Rev == 0 {
			delete(m.Sessions, sid)
		} else {
			m.Sessions[sid] = membershipEntry{State: entryGone, Rev: e.Rev, At: e.At}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release membership reservation: %w", err)
	}
	return nil
}

// derive records what the session record at revision rev says about node:
// a member with memberID, or (memberID "") not a member. A derivation from
// an older revision than the entry's is ignored.
func (s *Sessions) derive(ctx context.Context, node, sid, memberID string, rev uint64) error {
	err := s.updateMemberships(ctx, node, func(m nodeMemberships, now time.Time) error {
		e, ok := m.Sessions[sid]
		if ok && (rev < e.Rev || (rev == e.Rev && e.State == entryPending)) {
			return ErrNoChange
		}
		next := membershipEntry{State: entryMember, MemberID: memberID, Rev: rev, At: now.UnixMilli()}
		if memberID == "" {
			if !ok {
				return ErrNoChange // nothing listed, nothing to refuse later
			}
			next = membershipEntry{State: entryGone, Rev: rev, At: now.UnixMilli()}
		}
		if ok && e.State == next.State && e.MemberID == next.MemberID && e.Rev == next.Rev {
			return ErrNoChange
		}
		m.Sessions[sid] = next
		return nil
	})
	if err != nil {
		return fmt.Errorf("update memberships: %w", err)
	}
	return nil
}
