package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// One key per member: Token(sid).n.Token(node) = Member. Joining is a KV
// Create of that key, so no write grows with the session, and two joins
// of the same node cannot both win. Its revision (a sequence of the
// bucket's stream, so comparable with every other write of the bucket) is
// what the node's index is stamped with (memberships.go).
//
// Leaving writes a delete marker carrying the member it removes (so an
// unjoin that died half way can be finished), with the key's revision as
// the expected last one; the marker's revision stamps the index's "gone".
// Once the index has it, the marker is purged, so a session's subjects
// are its members (plus the markers of unjoins in flight), which is what
// a recount counts (session_count.go).
//
// An anonymous member also has Token(sid).a.Token(alias) = node, so a
// message to an alias costs one read. It is written after the member key
// and checked against it, and removed after the member's marker: it can
// only ever name the node that holds, or held, that alias.

// ErrMemberNotFound: no member of the session has that member id.
var ErrMemberNotFound = errors.New("no such member in the session")

// kvOperation is the header JetStream KV marks deletes and purges with.
const kvOperation = "KV-Operation"

// memberState is a member key as read: rev is the revision of its last
// write (0: none), deleted whether that write is a delete marker, and m
// the member it holds (or, for a marker, removed).
type memberState struct {
	m       Member
	rev     uint64
	deleted bool
}

func (c memberState) live() bool { return c.rev != 0 && !c.deleted }

func memberKeyName(sid, node string) string { return Token(sid) + ".n." + Token(node) }
func aliasKeyName(sid, alias string) string { return Token(sid) + ".a." + Token(alias) }

func (s *Sessions) membersFilter(sid string) string { return s.kvSubject + Token(sid) + ".n.*" }

// memberKey reads node's key in sid: one direct get.
func (s *Sessions) memberKey(ctx context.Context, sid, node string) (memberState, error) {
	msg, err := s.stream.GetLastMsgForSubject(ctx, s.kvSubject+memberKeyName(sid, node))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return memberState{}, nil
	}
	if err != nil {
		return memberState{}, fmt.Errorf("read member: %w", err)
	}
	st := memberState{rev: msg.Sequence, deleted: msg.Header.Get(kvOperation) != ""}
	if len(msg.Data) > 0 {
		if err := json.Unmarshal(msg.Data, &st.m); err != nil && !st.deleted {
			return memberState{}, fmt.Errorf("decode member: %w", err)
		}
	}
	return st, nil
}

// Member returns node's membership of sid: ErrNotMember if it is not in
// it, ErrSessionNotFound if there is no such session. A member costs one
// read; the record is read only to tell the two errors apart (and, for a
// record in the first format, to migrate it: then the key is read again).
func (s *Sessions) Member(ctx context.Context, sid, node string) (Member, error) {
	for range 2 {
		cur, err := s.memberKey(ctx, sid, node)
		if err != nil {
			return Member{}, err
		}
		if cur.live() {
			return cur.m, nil
		}
		_, migrated, err := s.record(ctx, sid)
		if err != nil {
			return Member{}, err
		}
		if !migrated {
			break
		}
	}
	return Member{}, ErrNotMember
}

// MemberNode finds the node behind a member id in sid and whether it is
// anonymous: an alias is one read of its alias key, a named member one
// read of its member key. ErrMemberNotFound if none; ErrSessionNotFound
// if there is no such session.
func (s *Sessions) MemberNode(ctx context.Context, sid, memberID string) (node string, anonymous bool, err error) {
	alias := func() (string, bool, error) {
		e, err := s.sessions.Get(ctx, aliasKeyName(sid, memberID))
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
			return "", false, nil
		case err != nil:
			return "", false, fmt.Errorf("read alias: %w", err)
		}
		return string(e.Value()), true, nil
	}
	named := func() (string, bool, error) {
		cur, err := s.memberKey(ctx, sid, memberID)
		if err != nil || !cur.live() || cur.m.Anonymous || cur.m.MemberID != memberID {
			return "", false, err
		}
		return memberID, true, nil
	}
	anonFirst := strings.HasPrefix(memberID, "anon-")
	for range 2 { // a second round only after a legacy record was migrated
		for i := range 2 {
			look, anon := named, false
			if (i == 0) == anonFirst {
				look, anon = alias, true
			}
			n, ok, err := look()
			if err != nil {
				return "", false, err
			}
			if ok {
				return n, anon, nil
			}
		}
		_, migrated, err := s.record(ctx, sid)
		if err != nil {
			return "", false, err
		}
		if !migrated {
			break
		}
	}
	return "", false, ErrMemberNotFound
}

// addMember counts node in and writes its key. It returns the member id
// the key holds, its revision, and whether this call wrote it (false: a
// concurrent join of the same node won).
func (s *Sessions) addMember(ctx context.Context, sid, node string, m Member) (string, uint64, bool, error) {
	if err := s.admit(ctx, sid); err != nil {
		return "", 0, false, err
	}
	b, err := json.Marshal(m)
	if err != nil {
		return "", 0, false, fmt.Errorf("encode member: %w", err)
	}
	rev, err := s.sessions.Create(ctx, memberKeyName(sid, node), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		uerr := s.uncount(ctx, sid) // the slot this join took is not used
		cur, gerr := s.memberKey(ctx, sid, node)
		switch {
		case gerr != nil:
			return "", 0, false, errors.Join(gerr, uerr)
		case !cur.live():
			return "", 0, false, errors.Join(errors.New("join raced an unjoin of the same node; retry"), uerr)
		}
		return cur.m.MemberID, cur.rev, false, uerr
	}
	if err != nil {
		// The write may have landed: the counted slot is kept, an
		// over-count a recount repairs (session_count.go).
		return "", 0, false, fmt.Errorf("write member: %w", err)
	}
	if m.Anonymous {
		if err := s.ensureAlias(ctx, sid, node, m.MemberID); err != nil {
			return "", 0, false, err
		}
	}
	return m.MemberID, rev, true, nil
}

// ensureAlias writes the alias key of node's anonymous membership, then
// checks that the membership is still there: an unjoin that ran
// meanwhile may have removed the alias before it was written, and the
// alias must not outlive the membership.
func (s *Sessions) ensureAlias(ctx context.Context, sid, node, alias string) error {
	if err := s.putAlias(ctx, sid, alias, node); err != nil {
		return err
	}
	cur, err := s.memberKey(ctx, sid, node)
	if err != nil {
		return err
	}
	if !cur.live() || cur.m.MemberID != alias {
		return errors.Join(errors.New("join raced an unjoin of the same node; retry"), s.purgeAlias(ctx, sid, alias))
	}
	return nil
}

func (s *Sessions) putAlias(ctx context.Context, sid, alias, node string) error {
	if _, err := s.sessions.Put(ctx, aliasKeyName(sid, alias), []byte(node)); err != nil {
		return fmt.Errorf("write alias: %w", err)
	}
	return nil
}

// purgeAlias removes an alias key and leaves no marker behind.
func (s *Sessions) purgeAlias(ctx context.Context, sid, alias string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.kvSubject+aliasKeyName(sid, alias))); err != nil {
		return fmt.Errorf("remove alias: %w", err)
	}
	return nil
}

// removeMember writes node's delete marker in sid and uncounts it, and
// returns the marker's revision for the index (0: nothing to stamp).
func (s *Sessions) removeMember(ctx context.Context, sid, node string) (uint64, error) {
	for range 16 {
		cur, err := s.memberKey(ctx, sid, node)
		if err != nil {
			return 0, err
		}
		switch {
		case cur.rev == 0: // not a member; stamp a removal only if the index still lists one
			idx, err := s.NodeSessions(ctx, node)
			if err != nil {
				return 0, err
			}
			if _, listed := idx[sid]; !listed {
				return 0, nil
			}
		case cur.deleted: // an unjoin died after its marker: finish it; whether it uncounted is unknown, so keep the count
			if cur.m.Anonymous {
				return cur.rev, s.purgeAlias(ctx, sid, cur.m.MemberID)
			}
			return cur.rev, nil
		}
		var body []byte
		if cur.live() {
			if body, err = json.Marshal(cur.m); err != nil {
				return 0, fmt.Errorf("encode member: %w", err)
			}
		}
		msg := &nats.Msg{Subject: s.kvSubject + memberKeyName(sid, node), Header: nats.Header{}, Data: body}
		msg.Header.Set(kvOperation, "DEL")
		ack, err := s.js.PublishMsg(ctx, msg, jetstream.WithExpectLastSequencePerSubject(cur.rev))
		if isWrongLastSeq(err) {
			continue // a concurrent join or unjoin of the same node: look again
		}
		if err != nil {
			return 0, fmt.Errorf("remove member: %w", err)
		}
		if !cur.live() {
			return ack.Sequence, nil
		}
		errs := []error{s.uncount(ctx, sid)}
		if cur.m.Anonymous {
			errs = append(errs, s.purgeAlias(ctx, sid, cur.m.MemberID))
		}
		return ack.Sequence, errors.Join(errs...)
	}
	return 0, errors.New("remove member: the key kept changing; retry")
}

// purgeMarker drops node's delete marker at rev once the index has it. A
// later write (a join again) is kept: only messages before rev+1 go.
func (s *Sessions) purgeMarker(ctx context.Context, sid, node string, rev uint64) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	err := s.stream.Purge(ctx, jetstream.WithPurgeSubject(s.kvSubject+memberKeyName(sid, node)), jetstream.WithPurgeSequence(rev+1))
	if err != nil {
		return fmt.Errorf("purge member marker: %w", err)
	}
	return nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant)
}
