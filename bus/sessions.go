package bus

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	// MaxSessionMembers bounds one session (its record is one KV value).
	MaxSessionMembers = 10_000
	// MaxNodeSessions bounds the sessions one node belongs to.
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
// answers for any session. A session is one value (its members inline),
// and each node has one value listing its sessions: a join or unjoin
// updates both with compare-and-swap.
type Sessions struct {
	sessions    jetstream.KeyValue
	memberships jetstream.KeyValue
	cursors     jetstream.KeyValue
	now         func() time.Time
}

// OpenSessions creates or binds the session buckets.
func OpenSessions(ctx context.Context, js jetstream.JetStream, subj Subjects, replicas int, now func() time.Time) (*Sessions, error) {
	open := func(name, desc string) (jetstream.KeyValue, error) {
		kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: subj.Prefix() + "_" + name, Description: desc, History: 1,
			Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
		})
		if err != nil {
			return nil, fmt.Errorf("open %s bucket: %w", name, err)
		}
		return kv, nil
	}
	s := &Sessions{now: now}
	var err error
	if s.sessions, err = open("sessions", "AllSpark sessions and their members"); err != nil {
		return nil, err
	}
	if s.memberships, err = open("memberships", "AllSpark node -> sessions"); err != nil {
		return nil, err
	}
	if s.cursors, err = open("cursors", "AllSpark per-member acknowledged session seq"); err != nil {
		return nil, err
	}
	return s, nil
}

// Get returns a session or ErrSessionNotFound.
func (s *Sessions) Get(ctx context.Context, id string) (*Session, error) {
	e, err := s.sessions.Get(ctx, Token(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, ErrSessionNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read session: %w", err)
	}
	return decodeSession(e.Value())
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

// Create makes a session with creator as its first member.
func (s *Sessions) Create(ctx context.Context, id, creator string, allowAnonymous bool) error {
	sess := Session{ID: id, AllowAnonymous: allowAnonymous, CreatedBy: creator, CreatedAt: s.now().UnixMilli(),
		Members: map[string]Member{creator: {MemberID: creator}}}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	if _, err := s.sessions.Create(ctx, Token(id), b); err != nil {
		if errors.Is(err, jetstream.ErrKeyExists) {
			return ErrSessionExists
		}
		return fmt.Errorf("create session: %w", err)
	}
	return s.addMembership(ctx, creator, id, creator)
}

// Join adds node to the session and returns its member id. Joining again
// returns the existing membership unchanged.
func (s *Sessions) Join(ctx context.Context, id, node string, anonymous bool) (string, error) {
	var memberID string
	err := s.update(ctx, id, func(sess *Session) error {
		if m, ok := sess.Members[node]; ok {
			memberID = m.MemberID
			return ErrNoChange
		}
		if anonymous && !sess.AllowAnonymous {
			return ErrAnonymousNotAllowed
		}
		if len(sess.Members) >= MaxSessionMembers {
			return ErrSessionFull
		}
		m := Member{MemberID: node}
		if anonymous {
			m = Member{MemberID: newAlias(), Anonymous: true}
		}
		sess.Members[node] = m
		memberID = m.MemberID
		return nil
	})
	if err != nil {
		return "", err
	}
	return memberID, s.addMembership(ctx, node, id, memberID)
}

// Unjoin removes node from the session. Unjoining a session one is not in
// is not an error.
func (s *Sessions) Unjoin(ctx context.Context, id, node string) error {
	err := s.update(ctx, id, func(sess *Session) error {
		if _, ok := sess.Members[node]; !ok {
			return ErrNoChange
		}
		delete(sess.Members, node)
		return nil
	})
	if err != nil {
		return err
	}
	return UpdateKV(ctx, s.memberships, Token(node), func(cur []byte) ([]byte, error) {
		m := decodeMemberships(cur)
		if _, ok := m[id]; !ok {
			return nil, ErrNoChange
		}
		delete(m, id)
		return json.Marshal(m)
	})
}

// update applies change to the stored session id with compare-and-swap;
// change may return ErrNoChange to skip the write.
func (s *Sessions) update(ctx context.Context, id string, change func(*Session) error) error {
	return UpdateKV(ctx, s.sessions, Token(id), func(cur []byte) ([]byte, error) {
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

// NodeSessions returns the sessions node belongs to: session id -> member id.
func (s *Sessions) NodeSessions(ctx context.Context, node string) (map[string]string, error) {
	e, err := s.memberships.Get(ctx, Token(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read memberships: %w", err)
	}
	return decodeMemberships(e.Value()), nil
}

func (s *Sessions) addMembership(ctx context.Context, node, id, memberID string) error {
	return UpdateKV(ctx, s.memberships, Token(node), func(cur []byte) ([]byte, error) {
		m := decodeMemberships(cur)
		if m[id] == memberID {
			return nil, ErrNoChange
		}
		if len(m) >= MaxNodeSessions {
			return nil, ErrTooManySessions
		}
		m[id] = memberID
		return json.Marshal(m)
	})
}

func decodeMemberships(b []byte) map[string]string {
	m := map[string]string{}
	if len(b) > 0 {
		_ = json.Unmarshal(b, &m)
	}
	return m
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

// newAlias names an anonymous member. It is random, so it says nothing
// about the node behind it.
func newAlias() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "anon-" + hex.EncodeToString(b[:])
}
