package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// legacyRecord is a session record in either format: the first one (no
// "v") held every member inline, {"members":{"node":{"member_id":...}}}.
type legacyRecord struct {
	Session
	Members map[string]Member `json:"members,omitempty"`
}

// migrateWorkers bounds the key writes of one migration in flight.
const migrateWorkers = 32

// migrate turns a first-format record (read at revision rev) into member
// keys, a counter and a format-2 record, the first time anything touches
// the session. Every step may run twice, also on two edges at once:
//  1. member and alias keys are created (an existing one is kept);
//  2. the counter gets the number of members, once: the increment's
//     message id makes a repeat within the stream's duplicate window
//     count once, and a later repeat is an over-count, which a recount
//     repairs (never an under-count, which could pass the cap);
//  3. the record is replaced by compare-and-swap on rev; the loser reads
//     the winner's.
//
// Until step 3 the first-format record is the truth, so nothing else
// writes the session's keys meanwhile (every write reads the record first
// and migrates it).
func (s *Sessions) migrate(ctx context.Context, sid string, rec legacyRecord, rev uint64) (*Session, error) {
	type job struct {
		node string
		m    Member
	}
	jobs := make(chan job)
	errs := make([]error, migrateWorkers)
	var wg sync.WaitGroup
	for w := range migrateWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if errs[w] != nil {
					continue
				}
				b, err := json.Marshal(j.m)
				if err == nil {
					_, err = s.sessions.Create(ctx, memberKeyName(sid, j.node), b)
				}
				if errors.Is(err, jetstream.ErrKeyExists) {
					err = nil
				}
				if err == nil && j.m.Anonymous {
					err = s.putAlias(ctx, sid, j.m.MemberID, j.node)
				}
				errs[w] = err
			}
		}()
	}
	for node, m := range rec.Members {
		jobs <- job{node, m}
	}
	close(jobs)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("migrate session %s: %w", sid, err)
	}
	if len(rec.Members) > 0 {
		if _, err := s.incr(ctx, sid, int64(len(rec.Members)), "migrate."+Token(sid)+"."+strconv.FormatUint(rev, 10)); err != nil {
			return nil, fmt.Errorf("migrate session %s: %w", sid, err)
		}
	}
	sess := rec.Session
	sess.Format = recordFormat
	b, err := json.Marshal(sess)
	if err != nil {
		return nil, fmt.Errorf("encode session: %w", err)
	}
	if _, err := s.sessions.Update(ctx, Token(sid), b, rev); err != nil {
		if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) && !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("migrate session %s: %w", sid, err)
		}
		return s.Get(ctx, sid) // another edge migrated it first
	}
	return &sess, nil
}
