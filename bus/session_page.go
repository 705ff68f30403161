package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// PageMember is one member in a page: its node and membership.
type PageMember struct {
	Node string
	Member
}

// MemberPage is one page of a session's members, in the order their keys
// were written. Next is where the next page starts (pass it as from), 0
// when this is the last page.
type MemberPage struct {
	Members []PageMember
	Next    uint64
}

// pageReadTimeout bounds reading one page's messages.
const pageReadTimeout = 5 * time.Second

// Page reads up to limit members of sid, starting at stream sequence from
// (0: the first). It reads only those members' keys: a consumer filtered
// on the session's member subjects, starting at from, fetching limit
// messages. A member that joins (again) while pages are read may appear
// on a later page, or twice; one that leaves may be missed. ErrNotMember
// and friends are the caller's business; ErrSessionNotFound is answered
// for an unknown session.
func (s *Sessions) Page(ctx context.Context, sid string, from uint64, limit int) (MemberPage, error) {
	if _, err := s.Get(ctx, sid); err != nil { // migrates a first-format record
		return MemberPage{}, err
	}
	cfg := jetstream.ConsumerConfig{
		FilterSubject: s.membersFilter(sid), AckPolicy: jetstream.AckNonePolicy,
		MemoryStorage: true, InactiveThreshold: time.Minute,
	}
	if from > 0 {
		cfg.DeliverPolicy, cfg.OptStartSeq = jetstream.DeliverByStartSequencePolicy, from
	}
	cons, err := s.stream.CreateConsumer(ctx, cfg)
	if err != nil {
		return MemberPage{}, fmt.Errorf("read members: %w", err)
	}
	defer s.dropConsumer(ctx, cons)
	want := min(cons.CachedInfo().NumPending, uint64(max(limit, 1)))
	var page MemberPage
	if want == 0 {
		return page, nil
	}
	batch, err := cons.Fetch(int(want), jetstream.FetchMaxWait(pageReadTimeout))
	if err != nil {
		return MemberPage{}, fmt.Errorf("read members: %w", err)
	}
	prefix := s.kvSubject + Token(sid) + ".n."
	left := uint64(1)
	for msg := range batch.Messages() {
		md, err := msg.Metadata()
		if err != nil {
			return MemberPage{}, fmt.Errorf("read members: %w", err)
		}
		page.Next, left = md.Sequence.Stream+1, md.NumPending
		if msg.Headers().Get(kvOperation) != "" {
			continue // an unjoin in flight
		}
		node, err := ParseToken(strings.TrimPrefix(msg.Subject(), prefix))
		if err != nil {
			return MemberPage{}, fmt.Errorf("read members: %w", err)
		}
		pm := PageMember{Node: node}
		if err := json.Unmarshal(msg.Data(), &pm.Member); err != nil {
			return MemberPage{}, fmt.Errorf("decode member: %w", err)
		}
		page.Members = append(page.Members, pm)
	}
	if err := batch.Error(); err != nil {
		return MemberPage{}, fmt.Errorf("read members: %w", err)
	}
	if left == 0 || page.Next == 0 {
		page.Next = 0
	}
	return page, nil
}
