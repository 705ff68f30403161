// Package bus owns everything AllSpark keeps in NATS: subject names, the
// JetStream streams and KV buckets, the edge and device registries, and the
// request plumbing that carries a message from one edge to another.
package bus

import (
	"encoding/base64"
	"fmt"
	"regexp"

	"github.com/allspark-rt/allspark"
)

// Token encodes an id for use as one subject token or KV key: base64url
// without padding. Ids may contain '.', '*', '>' and spaces, which would
// otherwise change a subject's meaning.
func Token(id string) string { return base64.RawURLEncoding.EncodeToString([]byte(id)) }

// ParseToken reverses Token.
func ParseToken(tok string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		return "", fmt.Errorf("decode subject token: %w", err)
	}
	return string(b), nil
}

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,32}$`)

// Subjects names every subject and bucket under one prefix, so several
// AllSpark deployments can share a NATS cluster.
type Subjects struct {
	prefix string
}

// NewSubjects validates prefix. It must also work as part of a JetStream
// stream or bucket name, hence the narrow alphabet.
func NewSubjects(prefix string) (Subjects, error) {
	if !prefixRE.MatchString(prefix) {
		return Subjects{}, fmt.Errorf("subject prefix %q: want 1-32 of [A-Za-z0-9_-]", prefix)
	}
	return Subjects{prefix: prefix}, nil
}

// Prefix is the configured prefix.
func (s Subjects) Prefix() string { return s.prefix }

// Send is the request subject backends use to send a message.
func (s Subjects) Send() string { return s.prefix + ".send" }

// Node is where the edges holding a node's connections listen for it. A
// service id (svc:...) has its own subject space, where its replicas
// listen: see Service.
func (s Subjects) Node(nodeID string) string {
	if allspark.IsServiceID(nodeID) {
		return s.Service(nodeID)
	}
	return s.prefix + ".node." + Token(nodeID)
}

// Inbox is the JetStream subject holding a node's pending messages.
func (s Subjects) Inbox(nodeID string) string { return s.prefix + ".inbox." + Token(nodeID) }

// InboxAll matches every inbox subject.
func (s Subjects) InboxAll() string { return s.prefix + ".inbox.*" }

// Session carries a session's messages (fan-out and history).
func (s Subjects) Session(sessionID string) string { return s.prefix + ".session." + Token(sessionID) }

// SessionAll matches every session history subject.
func (s Subjects) SessionAll() string { return s.prefix + ".session.*" }

// SessionLive carries a session's messages (with their seq) and presence
// to the edges holding its members.
func (s Subjects) SessionLive(sessionID string) string { return s.prefix + ".live." + Token(sessionID) }

// PresenceQuery asks every edge which of a list of nodes it holds.
func (s Subjects) PresenceQuery() string { return s.prefix + ".presence.query" }

// Undelivered is the work queue subject for push notifications.
func (s Subjects) Undelivered() string { return s.prefix + ".events.undelivered" }

// EdgesBucket is the KV bucket where edges announce themselves.
func (s Subjects) EdgesBucket() string { return s.prefix + "_edges" }

// DevicesBucket is the KV bucket mapping a client to its nodes.
func (s Subjects) DevicesBucket() string { return s.prefix + "_devices" }

// HeaderPresenceCount marks, on a session's live subject, an edge's count
// of the session's named members it holds (the body, in decimal); its
// value is the edge's id. Only sessions past ALLSPARK_PRESENCE_MAX_MEMBERS
// carry these. They pass between edges only and are never written to a
// client. HeaderPresenceHello on one asks the other edges to publish their
// counts again: the sender has just started counting the session.
const (
	HeaderPresenceCount = "Allspark-Presence-Count"
	HeaderPresenceHello = "Allspark-Presence-Hello"
)
