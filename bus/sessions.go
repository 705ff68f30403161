package bus

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// HeaderMembership marks a nudge on a node subject: "this node's session
// memberships changed". Edges holding the node reload them.
const HeaderMembership = "Allspark-Membership"

var (
	ErrSessionNotFound     = errors.New("session not found")
	ErrSessionExists       = errors.New("session already exists")
	ErrAnonymousNotAllowed = errors.New("session does not allow anonymous members")
	ErrNotMember           = errors.New("not a member of the session")
	ErrSessionFull         = errors.New("session has the maximum number of members")
	ErrTooManySessions     = errors.New("node is a member of the maximum number of sessions")
)

const (
	// MaxSessionMembers is the default bound of one session (its record is
	// one KV value).
	MaxSessionMembers = 10_000
	// MaxNodeSessions is the default bound of the sessions one node belongs to.
	MaxNodeSessions = 1_000
)

// Session is a named group of nodes.
type Session struct {
	ID             string            `json:"id"`
	AllowAnonymous bool              `json:"allow_anonymous,omitempty"`
	CreatedBy      string            `json:"created_by"`
	CreatedAt      int64             `json:"created_at"` // Unix ms
	Members        map[string]Member `json:"members"`    // node id -> member
}

// Member is one node's membership. MemberID is what other members see:
// the node id, or a random alias for an anonymous member.
type Member struct {
	MemberID  string `json:"member_id"`
	Anonymous bool   `json:"anonymous,omitempty"`
}

// NodeOf finds the node behind a member id.
func (s *Session) NodeOf(memberID string) (string, bool) {
	for node, m := range s.Members {
		if m.MemberID == memberID {
			return node, true
		}
	}
	return "", false
}

// Sessions stores sessions and memberships in JetStream KV, so any edge
// answers for any session. A session is one value (its members inline) and
// is the truth about who is in it; each node has one value indexing its
// sessions, derived from the session records (see memberships.go).
type Sessions struct {
	sessions        jetstream.KeyValue
	memberships     jetstream.KeyValue
	cursors         jetstream.KeyValue
	now             func() time.Time
	rand            io.Reader
	maxMembers      int
	maxNodeSessions int
}

// SessionsConfig configures OpenSessions.
type SessionsConfig struct {
	Replicas int
	// MaxMembers bounds one session; 0 means MaxSessionMembers.
	MaxMembers int
	// MaxNodeSessions bounds the sessions one node is in; 0 means MaxNodeSessions.
	MaxNodeSessions int
	// Rand is the entropy for session ids and anonymous aliases; nil means
	// crypto/rand. Tests inject it to pin where ids come from.
	Rand io.Reader
}

// OpenSessions creates or binds the session buckets, concurrently.
func OpenSessions(ctx context.Context, js jetstream.JetStream, subj Subjects, cfg SessionsConfig, now func() time.Time) (*Sessions, error) {
	s := &Sessions{now: now, rand: cfg.Rand, maxMembers: cfg.MaxMembers, maxNodeSessions: cfg.MaxNodeSessions}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.maxMembers <= 0 {
		s.maxMembers = MaxSessionMembers
	}
	if s.maxNodeSessions <= 0 {
		s.maxNodeSessions = MaxNodeSessions
	}
	bucket := func(name, desc string, kv *jetstream.KeyValue) func(context.Context) error {
		return func(ctx context.Context) (err error) {
			*kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: subj.Prefix() + "_" + name, Description: desc, History: 1,
				Storage: jetstream.FileStorage, Replicas: max(cfg.Replicas, 1),
			})
			if err != nil {
				return fmt.Errorf("open %s bucket: %w", name, err)
			}
			return nil
		}
	}
	err := Concurrently(ctx,
		bucket("sessions", "AllSpark sessions and their members", &s.sessions),
		bucket("memberships", "AllSpark node -> sessions", &s.memberships),
		bucket("cursors", "AllSpark per-member acknowledged session seq", &s.cursors))
	if err != nil {
		return nil, err
	}
	return s, nil
}

// NewSessionID mints a session id: 128 bits from r (crypto/rand in
// production), so ids cannot be guessed from the time or from other ids.
// They are spelled in lower-case unpadded base32: 26 characters, safe in
// URLs and paths.
func NewSessionID(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("mint session id: %w", err)
	}
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b[:])), nil
}

// NewID mints a session id from the store's entropy source.
func (s *Sessions) NewID() (string, error) { return NewSessionID(s.rand) }

// newAlias names an anonymous member: 128 random bits, so it says nothing
// about the node behind it and cannot be guessed.
func (s *Sessions) newAlias() (string, error) {
	id, err := NewSessionID(s.rand)
	if err != nil {
		return "", fmt.Errorf("mint anonymous alias: %w", err)
	}
	return "anon-" + id, nil
}

// Get returns a session or ErrSessionNotFound.
func (s *Sessions) Get(ctx context.Context, id string) (*Session, error) {
	sess, _, err := s.get(ctx, id)
	return sess, err
}

func (s *Sessions) get(ctx context.Context, id string) (*Session, uint64, error) {
	e, err := s.sessions.Get(ctx, Token(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, ErrSessionNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("read session: %w", err)
	}
	sess, err := decodeSession(e.Value())
	return sess, e.Revision(), err
}

func decodeSession(b []byte) (*Session, error) {
	var sess Session
	if err := json.Unmarshal(b, &sess); err != nil {
		return nil, fmt.Errorf("decode session: %w", err)
	}
	if sess.Members == nil {
		sess.Members = map[string]Member{}
	}
	return &sess, nil
}

// Create makes a session with creator as its first member. The creator's
// slot is reserved first, so a node at its cap creates nothing.
func (s *Sessions) Create(ctx context.Context, id, creator string, allowAnonymous bool) error {
	sess := Session{ID: id, AllowAnonymous: allowAnonymous, CreatedBy: creator, CreatedAt: s.now().UnixMilli(),
		Members: map[string]Member{creator: {MemberID: creator}}}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	reserved, err := s.reserve(ctx, creator, id)
	if err != nil {
		return err
	}
	rev, err := s.sessions.Create(ctx, Token(id), b)
	if err != nil {
		if reserved {
			if rerr := s.release(ctx, creator, id); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrSessionExists
		}
		return fmt.Errorf("create session: %w", err)
	}
	return s.derive(ctx, creator, id, creator, rev)
}

// Join adds node to the session and returns its member id, and whether
// this call added it: joining again returns the existing membership
// unchanged, with joined false (and repairs the node's index if a failed
// write left it behind the session record).
//
// Order matters: the node's slot is reserved in its index (against its
// cap) before the session record lists it, and released if the record
// refuses; the index lists the session only once the record does.
func (s *Sessions) Join(ctx context.Context, id, node string, anonymous bool) (memberID string, joined bool, err error) {
	sess, rev, err := s.get(ctx, id)
	if err != nil {
		return "", false, err
	}
	if m, ok := sess.Members[node]; ok {
		return m.MemberID, false, s.derive(ctx, node, id, m.MemberID, rev)
	}
	if err := s.admit(sess, anonymous); err != nil {
		return "", false, err
	}
	alias := node
	if anonymous {
		if alias, err = s.newAlias(); err != nil {
			return "", false, err
		}
	}
	reserved, err := s.reserve(ctx, node, id)
	if err != nil {
		return "", false, err
	}
	rev, joined, err = s.update(ctx, id, func(sess *Session) error {
		if m, ok := sess.Members[node]; ok { // a concurrent join of the same node won
			memberID = m.MemberID
			return ErrNoChange
		}
		if err := s.admit(sess, anonymous); err != nil {
			return err
		}
		sess.Members[node] = Member{MemberID: alias, Anonymous: anonymous}
		memberID = alias
		return nil
	})
	if err != nil {
		if reserved {
			if rerr := s.release(ctx, node, id); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return "", false, err
	}
	return memberID, joined, s.derive(ctx, node, id, memberID, rev)
}

// admit checks that sess takes one more member.
func (s *Sessions) admit(sess *Session, anonymous bool) error {
	if anonymous && !sess.AllowAnonymous {
		return ErrAnonymousNotAllowed
	}
	if len(sess.Members) >= s.maxMembers {
		return ErrSessionFull
	}
	return nil
}

// Unjoin removes node from the session. Unjoining a session one is not in
// is not an error (and repairs the node's index if it still lists it).
func (s *Sessions) Unjoin(ctx context.Context, id, node string) error {
	rev, _, err := s.update(ctx, id, func(sess *Session) error {
		if _, ok := sess.Members[node]; !ok {
			return ErrNoChange
		}
		delete(sess.Members, node)
		return nil
	})
	if err != nil {
		return err
	}
	return s.derive(ctx, node, id, "", rev)
}

// update applies change to the stored session id with compare-and-swap and
// returns the record's revision afterwards and whether it wrote; change may
// return ErrNoChange to skip the write.
func (s *Sessions) update(ctx context.Context, id string, change func(*Session) error) (uint64, bool, error) {
	return UpdateKVRev(ctx, s.sessions, Token(id), func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, ErrSessionNotFound
		}
		sess, err := decodeSession(cur)
		if err != nil {
			return nil, err
		}
		if err := change(sess); err != nil {
			return nil, err
		}
		return json.Marshal(sess)
	})
}

// SetCursor records the last session seq node acknowledged, so a device
// that lost its local state can ask where it was.
func (s *Sessions) SetCursor(ctx context.Context, id, node string, seq uint64) error {
	if _, err := s.cursors.Put(ctx, Token(id)+"."+Token(node), []byte(strconv.FormatUint(seq, 10))); err != nil {
		return fmt.Errorf("save session cursor: %w", err)
	}
	return nil
}

// Cursor returns the last seq node acknowledged in the session (0 if none).
func (s *Sessions) Cursor(ctx context.Context, id, node string) (uint64, error) {
	e, err := s.cursors.Get(ctx, Token(id)+"."+Token(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read session cursor: %w", err)
	}
	n, _ := strconv.ParseUint(string(e.Value()), 10, 64)
	return n, nil
}
