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
	// MaxSessionMembers is the default bound of one session. Nothing stored
	// grows with it (a member is its own key, the count a counter), so it
	// bounds what a session fan-out costs, not a record's size.
	MaxSessionMembers = 100_000
	// MaxNodeSessions is the default bound of the sessions one node belongs to.
	MaxNodeSessions = 1_000
	// defaultRecountAfter is how long a session's member counter must be
	// quiet before a join refused as full recounts the members (see
	// session_count.go): far longer than any join's counter-to-key window.
	defaultRecountAfter = time.Minute
)

// Session is a named group of nodes: its record, without the members,
// which are keys of their own (see session_members.go).
type Session struct {
	ID             string `json:"id"`
	AllowAnonymous bool   `json:"allow_anonymous,omitempty"`
	CreatedBy      string `json:"created_by"`
	CreatedAt      int64  `json:"created_at"` // Unix ms
	// Format is 2 for a record whose members are keys of their own; a
	// record without it is the first format, members inline (session_legacy.go).
	Format int `json:"v,omitempty"`
}

// recordFormat is the Session.Format this code writes.
const recordFormat = 2

// Member is one node's membership. MemberID is what other members see:
// the node id, or a random alias for an anonymous member.
type Member struct {
	MemberID  string `json:"member_id"`
	Anonymous bool   `json:"anonymous,omitempty"`
}

// Sessions stores sessions and memberships in JetStream, so any edge
// answers for any session. In the sessions bucket, a session is a record
// (Token(sid)), one key per member (Token(sid).n.Token(node)) and one per
// anonymous alias (Token(sid).a.Token(alias) = node); the member keys are
// the truth about who is in it. A counter stream counts each session's
// members. Each node has one value indexing its sessions, derived from the
// member keys (see memberships.go).
type Sessions struct {
	sessions        jetstream.KeyValue
	memberships     jetstream.KeyValue
	cursors         jetstream.KeyValue
	js              jetstream.JetStream
	stream          jetstream.Stream // the sessions bucket's stream: pages, purges, revisions of deletes
	counts          jetstream.Stream // the member counters
	kvSubject       string           // "$KV.<bucket>.": the sessions bucket's subject prefix
	countSubject    string           // "<prefix>.members.": a session's counter is this + Token(sid)
	now             func() time.Time
	rand            io.Reader
	maxMembers      int
	maxNodeSessions int
	recountAfter    time.Duration
}

// SessionsConfig configures OpenSessions.
type SessionsConfig struct {
	Replicas int
	// MaxMembers bounds one session; 0 means MaxSessionMembers.
	MaxMembers int
	// MaxNodeSessions bounds the sessions one node is in; 0 means MaxNodeSessions.
	MaxNodeSessions int
	// RecountAfter is how long a full session's counter must be quiet
	// before a refused join recounts its members; 0 means one minute.
	RecountAfter time.Duration
	// Rand is the entropy for session ids and anonymous aliases; nil means
	// crypto/rand. Tests inject it to pin where ids come from.
	Rand io.Reader
}

// OpenSessions creates or binds the session buckets and the counter
// stream, concurrently.
func OpenSessions(ctx context.Context, js jetstream.JetStream, subj Subjects, cfg SessionsConfig, now func() time.Time) (*Sessions, error) {
	s := &Sessions{js: js, now: now, rand: cfg.Rand, maxMembers: cfg.MaxMembers, maxNodeSessions: cfg.MaxNodeSessions,
		recountAfter: cfg.RecountAfter, countSubject: subj.Prefix() + ".members."}
	if s.rand == nil {
		s.rand = rand.Reader
	}
	if s.maxMembers <= 0 {
		s.maxMembers = MaxSessionMembers
	}
	if s.maxNodeSessions <= 0 {
		s.maxNodeSessions = MaxNodeSessions
	}
	if s.recountAfter <= 0 {
		s.recountAfter = defaultRecountAfter
	}
	replicas := max(cfg.Replicas, 1)
	bucket := func(name, desc string, kv *jetstream.KeyValue) func(context.Context) error {
		return func(ctx context.Context) (err error) {
			*kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
				Bucket: subj.Prefix() + "_" + name, Description: desc, History: 1,
				Storage: jetstream.FileStorage, Replicas: replicas,
			})
			if err != nil {
				return fmt.Errorf("open %s bucket: %w", name, err)
			}
			return nil
		}
	}
	counts := func(ctx context.Context) (err error) {
		// A counter stream holds only counters (the server refuses any
		// other message on it), so it cannot share the sessions bucket.
		s.counts, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
			Name: subj.Prefix() + "_session_members", Description: "AllSpark members per session (counters)",
			Subjects: []string{s.countSubject + "*"}, AllowMsgCounter: true, AllowDirect: true,
			MaxMsgsPerSubject: 1, Storage: jetstream.FileStorage, Replicas: replicas,
		})
		if err != nil {
			return fmt.Errorf("open session member counters: %w", err)
		}
		return nil
	}
	err := Concurrently(ctx,
		bucket("sessions", "AllSpark sessions and their members", &s.sessions),
		bucket("memberships", "AllSpark node -> sessions", &s.memberships),
		bucket("cursors", "AllSpark per-member acknowledged session seq", &s.cursors),
		counts)
	if err != nil {
		return nil, err
	}
	s.kvSubject = "$KV." + subj.Prefix() + "_sessions."
	if s.stream, err = js.Stream(ctx, "KV_"+subj.Prefix()+"_sessions"); err != nil {
		return nil, fmt.Errorf("bind sessions stream: %w", err)
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

// Get returns a session's record (not its members: see Member, MemberNode
// and Page) or ErrSessionNotFound. A record in the first format is
// migrated on the way (see session_legacy.go).
func (s *Sessions) Get(ctx context.Context, id string) (*Session, error) {
	sess, _, err := s.record(ctx, id)
	return sess, err
}

// record reads a session's record, migrating it first if it is in the
// first format (and then says so).
func (s *Sessions) record(ctx context.Context, id string) (*Session, bool, error) {
	e, err := s.sessions.Get(ctx, Token(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, false, ErrSessionNotFound
	}
	if err != nil {
		return nil, false, fmt.Errorf("read session: %w", err)
	}
	var rec legacyRecord
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return nil, false, fmt.Errorf("decode session: %w", err)
	}
	if rec.Format >= recordFormat {
		return &rec.Session, false, nil
	}
	sess, err := s.migrate(ctx, id, rec, e.Revision())
	return sess, err == nil, err
}

// Create makes a session with creator as its first member. The creator's
// slot is reserved first, so a node at its cap creates nothing.
func (s *Sessions) Create(ctx context.Context, id, creator string, allowAnonymous bool) error {
	sess := Session{ID: id, AllowAnonymous: allowAnonymous, CreatedBy: creator, CreatedAt: s.now().UnixMilli(), Format: recordFormat}
	b, err := json.Marshal(sess)
	if err != nil {
		return fmt.Errorf("encode session: %w", err)
	}
	reserved, err := s.reserve(ctx, creator, id)
	if err != nil {
		return err
	}
	_, err = s.sessions.Create(ctx, Token(id), b)
	if errors.Is(err, jetstream.ErrKeyExists) {
		err = ErrSessionExists
	} else if err != nil {
		err = fmt.Errorf("create session: %w", err)
	}
	var rev uint64
	if err == nil {
		_, rev, _, err = s.addMember(ctx, id, creator, Member{MemberID: creator})
	}
	if err != nil {
		if reserved {
			if rerr := s.release(ctx, creator, id); rerr != nil {
				err = errors.Join(err, rerr)
			}
		}
		return err
	}
	return s.derive(ctx, creator, id, creator, rev)
}

// Join adds node to the session and returns its member id, and whether
// this call added it: joining again returns the existing membership
// unchanged, with joined false (and repairs the node's index if a failed
// write left it behind the member key).
//
// Order matters: the node's slot is reserved in its index (against its
// cap) before its member key is written, and released if the key is
// refused; the index lists the session only once the key exists.
func (s *Sessions) Join(ctx context.Context, id, node string, anonymous bool) (memberID string, joined bool, err error) {
	sess, err := s.Get(ctx, id)
	if err != nil {
		return "", false, err
	}
	cur, err := s.memberKey(ctx, id, node)
	if err != nil {
		return "", false, err
	}
	if cur.live() {
		if cur.m.Anonymous { // a join that died before writing the alias key left it out
			if err := s.ensureAlias(ctx, id, node, cur.m.MemberID); err != nil {
				return "", false, err
			}
		}
		return cur.m.MemberID, false, s.derive(ctx, node, id, cur.m.MemberID, cur.rev)
	}
	if anonymous && !sess.AllowAnonymous {
		return "", false, ErrAnonymousNotAllowed
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
	memberID, rev, joined, err := s.addMember(ctx, id, node, Member{MemberID: alias, Anonymous: anonymous})
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

// Unjoin removes node from the session. Unjoining a session one is not in
// is not an error (and repairs the node's index if it still lists it).
func (s *Sessions) Unjoin(ctx context.Context, id, node string) error {
	if _, err := s.Get(ctx, id); err != nil {
		return err
	}
	rev, err := s.removeMember(ctx, id, node)
	if err != nil || rev == 0 {
		return err
	}
	if err := s.derive(ctx, node, id, "", rev); err != nil {
		return err
	}
	return s.purgeMarker(ctx, id, node, rev)
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
