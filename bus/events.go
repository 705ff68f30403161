package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
)

// Lifecycle events. Edges publish one small JSON object per node
// online/offline (the node's first connection / last disconnection across
// all edges: the same rule as session presence) and per session created /
// joined / unjoined, on core NATS: nothing is published per message. The
// "message stored" event is the undelivered event the inbox already
// writes, republished by its stream onto EventMessageStored. One stream
// keeps them all for EventsConfig.MaxAge so a backend that was down can
// catch up.

// Event kinds; the subject is <prefix>.events.<kind>.
const (
	EventNodeOnline      = "node.online"
	EventNodeOffline     = "node.offline"
	EventSessionCreated  = "session.created"
	EventSessionJoined   = "session.joined"
	EventSessionUnjoined = "session.unjoined"
	EventMessageStored   = "message.stored"
)

// Event is one lifecycle event as published (message.stored has the
// undelivered event's shape instead: node_id, msg_id, message).
type Event struct {
	Type      string `json:"type"`
	ID        string `json:"id"`   // ULID, unique per event: the dedup key
	TS        int64  `json:"ts"`   // Unix ms
	Edge      string `json:"edge"` // the edge that saw it
	NodeID    string `json:"node_id"`
	SessionID string `json:"session_id,omitempty"`
	MemberID  string `json:"member_id,omitempty"`
}

// Event is the subject of events of kind.
func (s Subjects) Event(kind string) string { return s.prefix + ".events." + kind }

// EventsAll matches every event subject (the undelivered work queue too).
func (s Subjects) EventsAll() string { return s.prefix + ".events.>" }

// EventsStreamName names the lifecycle events stream.
func EventsStreamName(subj Subjects) string { return subj.Prefix() + "_events" }

// eventsStreamSubjects are what the events stream holds: every kind above,
// not the undelivered work queue (a subject may belong to one stream only).
func eventsStreamSubjects(subj Subjects) []string {
	return []string{subj.Event("node.*"), subj.Event("session.*"), subj.Event("message.*")}
}

// StoredRepublish makes the undelivered stream republish each event it
// stores onto the message.stored event subject, where the events stream
// keeps it too.
func StoredRepublish(subj Subjects) *jetstream.RePublish {
	return &jetstream.RePublish{Source: subj.Undelivered(), Destination: subj.Event(EventMessageStored)}
}

// EventsConfig configures the events stream.
type EventsConfig struct {
	Replicas int
	MaxAge   time.Duration // ALLSPARK_EVENTS_TTL
	MaxBytes int64         // ALLSPARK_EVENTS_MAX_BYTES; oldest events go first
}

// OpenEventsStream creates or updates the events stream.
func OpenEventsStream(ctx context.Context, js jetstream.JetStream, subj Subjects, cfg EventsConfig) (jetstream.Stream, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        EventsStreamName(subj),
		Description: "AllSpark lifecycle events (node online/offline, sessions, stored messages)",
		Subjects:    eventsStreamSubjects(subj),
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		MaxAge:      cfg.MaxAge,
		MaxBytes:    maxBytes(cfg.MaxBytes),
		Discard:     jetstream.DiscardOld,
		Duplicates:  dupWindow(cfg.MaxAge),
	})
	if err != nil {
		return nil, fmt.Errorf("open events stream: %w", err)
	}
	return st, nil
}

// Events publishes lifecycle events. A nil *Events publishes nothing.
type Events struct {
	nc   *nats.Conn
	subj Subjects
	edge string
	now  func() time.Time
	log  *slog.Logger
}

// NewEvents returns a publisher for edge.
func NewEvents(nc *nats.Conn, subj Subjects, edge string, now func() time.Time, log *slog.Logger) *Events {
	return &Events{nc: nc, subj: subj, edge: edge, now: now, log: log}
}

// NodePresence publishes node.online or node.offline.
func (e *Events) NodePresence(node string, online bool) {
	kind := EventNodeOffline
	if online {
		kind = EventNodeOnline
	}
	e.publish(Event{Type: kind, NodeID: node})
}

// SessionCreated, SessionJoined and SessionUnjoined publish session events.
func (e *Events) SessionCreated(sid, node string) {
	e.publish(Event{Type: EventSessionCreated, SessionID: sid, NodeID: node})
}

func (e *Events) SessionJoined(sid, node, member string) {
	e.publish(Event{Type: EventSessionJoined, SessionID: sid, NodeID: node, MemberID: member})
}

func (e *Events) SessionUnjoined(sid, node string) {
	e.publish(Event{Type: EventSessionUnjoined, SessionID: sid, NodeID: node})
}

// publish is fire and forget on core NATS: an event is a notification,
// and the stream captures it without a round trip on the edge's path.
func (e *Events) publish(ev Event) {
	if e == nil {
		return
	}
	ev.ID, ev.TS, ev.Edge = ulid.Make().String(), e.now().UnixMilli(), e.edge
	b, _ := json.Marshal(ev)
	err := e.nc.PublishMsg(&nats.Msg{Subject: e.subj.Event(ev.Type), Data: b,
		Header: nats.Header{jetstream.MsgIDHeader: []string{ev.ID}}})
	if err != nil {
		e.log.Warn("publish lifecycle event", "type", ev.Type, "err", err)
	}
}

// maxBytes maps "no limit" (0 or less) to JetStream's -1.
func maxBytes(n int64) int64 {
	if n <= 0 {
		return -1
	}
	return n
}
