package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// A session's members are counted by a JetStream counter (a stream with
// AllowMsgCounter: each publish carries "Nats-Incr: ±n" and the server
// answers the new total), so the cap is checked without a hot
// compare-and-swap key and without reading the members.
//
// The counter is an upper bound of the members: a join counts itself
// before it writes its key, an unjoin uncounts itself after its delete
// marker, and a write whose outcome is unknown keeps its count. So the
// cap holds exactly, also under concurrent joins: a join whose increment
// passes the cap takes it back and answers full.
//
// What can go wrong is an over-count: a process that dies between the two
// writes leaves one. It must not block a session forever, so a join
// refused as full recounts the members when the counter has been quiet
// for recountAfter (no join is then between its increment and its key,
// each being bounded far below that), and subtracts the excess. The
// members are counted by the server (a consumer's pending count over the
// member keys, one message each: no member is read). Delete markers still
// in place are counted as members, which can only make the repair
// smaller. One recount per quiet counter state: the edge that wins a
// compare-and-swap on Token(sid).recount does it, so refused joins at a
// truly full session cost one read each, not a recount each.

// counterValue is the body of a counter message.
type counterValue struct {
	Val string `json:"val"`
}

func (s *Sessions) counterSubject(sid string) string { return s.countSubject + Token(sid) }

// Count returns the number of members of sid: one direct get of its
// counter. It is an upper bound, exact but for joins and unjoins in flight
// (and an over-count a recount has not repaired yet). 0 for an unknown
// session.
func (s *Sessions) Count(ctx context.Context, sid string) (int, error) {
	n, _, _, err := s.counter(ctx, sid)
	return int(n), err
}

// counter reads sid's counter: its value, and the sequence and time of
// its last change.
func (s *Sessions) counter(ctx context.Context, sid string) (int64, uint64, time.Time, error) {
	msg, err := s.counts.GetLastMsgForSubject(ctx, s.counterSubject(sid))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, 0, time.Time{}, nil
	}
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("read member count: %w", err)
	}
	var v counterValue
	if err := json.Unmarshal(msg.Data, &v); err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("decode member count: %w", err)
	}
	n, err := strconv.ParseInt(v.Val, 10, 64)
	if err != nil {
		return 0, 0, time.Time{}, fmt.Errorf("decode member count %q: %w", v.Val, err)
	}
	return n, msg.Sequence, msg.Time, nil
}

// incr adds delta to sid's counter and returns the new value. msgID, if
// set, makes a retry within the stream's duplicate window count once.
func (s *Sessions) incr(ctx context.Context, sid string, delta int64, msgID string) (int64, error) {
	msg := &nats.Msg{Subject: s.counterSubject(sid), Header: nats.Header{}}
	msg.Header.Set("Nats-Incr", fmt.Sprintf("%+d", delta))
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := s.js.PublishMsg(ctx, msg, opts...)
	if err != nil {
		return 0, fmt.Errorf("count members: %w", err)
	}
	if ack.Value == "" { // a duplicate (msgID) is answered without the value
		return 0, nil
	}
	n, err := strconv.ParseInt(ack.Value, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("count members: value %q: %w", ack.Value, err)
	}
	return n, nil
}

// uncount gives back one counted slot. It runs even if the caller's
// context has ended: a slot not given back is an over-count until a
// recount.
func (s *Sessions) uncount(ctx context.Context, sid string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_, err := s.incr(ctx, sid, -1, "")
	return err
}

// admit counts one more member of sid, or answers ErrSessionFull.
func (s *Sessions) admit(ctx context.Context, sid string) error {
	for attempt := range 2 {
		n, seq, at, err := s.counter(ctx, sid)
		if err != nil {
			return err
		}
		// At the cap, a refused join does not touch the counter: that
		// keeps it quiet, so a leftover over-count can be recounted.
		if n >= int64(s.maxMembers) {
			if attempt == 0 {
				repaired, err := s.recount(ctx, sid, n, seq, at)
				if err != nil {
					return err
				}
				if repaired {
					continue
				}
			}
			return ErrSessionFull
		}
		v, err := s.incr(ctx, sid, 1, "")
		if err != nil {
			return err // if it landed, an over-count: see above
		}
		if v > int64(s.maxMembers) { // concurrent joins got there first
			return errors.Join(ErrSessionFull, s.uncount(ctx, sid))
		}
		return nil
	}
	return ErrSessionFull
}

// recount repairs an over-count of sid's counter, whose value n was last
// changed at sequence seq, time at; it reports whether it changed it.
func (s *Sessions) recount(ctx context.Context, sid string, n int64, seq uint64, at time.Time) (bool, error) {
	if seq == 0 || s.now().Sub(at) < s.recountAfter {
		return false, nil // joins may be in flight: their counts are not excess
	}
	key := Token(sid) + ".recount"
	checked := []byte(strconv.FormatUint(seq, 10))
	e, err := s.sessions.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted):
		_, err = s.sessions.Create(ctx, key, checked)
	case err != nil:
		return false, fmt.Errorf("read recount mark: %w", err)
	case string(e.Value()) == string(checked):
		return false, nil // this counter state was recounted already
	default:
		_, err = s.sessions.Update(ctx, key, checked, e.Revision())
	}
	if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		return false, nil // another edge recounts this state
	}
	if err != nil {
		return false, fmt.Errorf("mark recount: %w", err)
	}
	members, err := s.countKeys(ctx, sid)
	if err != nil {
		return false, err
	}
	if _, seq2, _, err := s.counter(ctx, sid); err != nil || seq2 != seq {
		return false, err // it moved while counting: the excess is unknown
	}
	excess := n - int64(members)
	if excess <= 0 {
		return false, nil
	}
	if _, err := s.incr(ctx, sid, -excess, ""); err != nil {
		return false, err
	}
	return true, nil
}

// countKeys counts sid's member keys on the server: a consumer over their
// subjects, one message per key, asked only for its pending count.
func (s *Sessions) countKeys(ctx context.Context, sid string) (uint64, error) {
	cons, err := s.stream.CreateConsumer(ctx, jetstream.ConsumerConfig{
		FilterSubject: s.membersFilter(sid), DeliverPolicy: jetstream.DeliverLastPerSubjectPolicy,
		AckPolicy: jetstream.AckNonePolicy, MemoryStorage: true, InactiveThreshold: time.Minute,
	})
	if err != nil {
		return 0, fmt.Errorf("count member keys: %w", err)
	}
	n := cons.CachedInfo().NumPending
	s.dropConsumer(ctx, cons)
	return n, nil
}

// dropConsumer deletes a consumer made for one read; if that fails, its
// InactiveThreshold removes it.
func (s *Sessions) dropConsumer(ctx context.Context, cons jetstream.Consumer) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = s.stream.DeleteConsumer(ctx, cons.CachedInfo().Name)
}
