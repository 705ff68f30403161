package bus

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

var (
	// ErrInboxEmpty: the node has no pending message at or after the sequence asked.
	ErrInboxEmpty = errors.New("inbox empty")
	// ErrInboxFull: the node's inbox holds MaxPerNode messages; nothing more is accepted for it.
	ErrInboxFull = errors.New("inbox full")
	// ErrStorageFull: the inbox stream holds MaxBytes (or the servers have no
	// room); nothing more is accepted until messages are acknowledged or expire.
	ErrStorageFull = errors.New("inbox storage full")
)

// HeaderInbox marks a nudge on a node subject: "your inbox has something
// new". It carries no message and expects no reply.
const HeaderInbox = "Allspark-Inbox"

// InboxConfig configures OpenInbox.
type InboxConfig struct {
	Replicas   int
	MaxAge     time.Duration // pending messages older than this are dropped (documented retention)
	MaxPerNode int64         // pending messages per node; further stores are refused with ErrInboxFull
	// AttemptTimeout is how long one append waits for its PubAck before it
	// is retried (default 2 s). MaxInFlight sizes the async publish window;
	// keep it at least the router's StoreQueue (default 16384).
	AttemptTimeout time.Duration
	MaxInFlight    int
	// MaxBytes caps all pending messages together (0: no cap but the
	// servers'); past it stores fail with ErrStorageFull, and nothing
	// stored is dropped to make room.
	MaxBytes int64
	// Undelivered events (one per stored message, for push workers) are
	// kept at most EventsMaxAge and EventsMaxBytes, the oldest dropped
	// first: a lost event costs a notification, never a message. With
	// NoEvents none are published (no push worker consumes them).
	EventsMaxAge   time.Duration
	EventsMaxBytes int64
	NoEvents       bool
}

// Inbox keeps the messages a node has not acknowledged, in one JetStream
// stream over allspark.inbox.<b64(node)>, and announces each stored message
// on the undelivered work queue for the push worker.
//
// A node's inbox is read a page at a time by "get the next messages for
// subject at or after seq" (Page: a batched direct get), not by consumers:
// it costs the server no state per node, so 100k nodes with pending
// messages cost nothing while idle. A direct get may be answered by a
// lagging follower; Page confirms the end of an inbox through the leader
// (Next) on a replicated stream, so a message just stored is never missed.
type Inbox struct {
	nc          *nats.Conn
	js          jetstream.JetStream // inbox appends
	events      jetstream.JetStream // undelivered events, so they never take the appends' window
	attempt     time.Duration
	subj        Subjects
	stream      jetstream.Stream
	undelivered string
	noEvents    bool // no undelivered events: no push worker consumes them
	pages       *directPager
	replicated  bool // more than one replica: a direct get may be answered by a follower
	log         *slog.Logger
}

// InboxMsg is one pending message.
type InboxMsg struct {
	Seq   uint64
	MsgID string
	Frame []byte
}

// UndeliveredEvent is what the push worker receives for each stored message.
type UndeliveredEvent struct {
	NodeID  string          `json:"node_id"`
	MsgID   string          `json:"msg_id"`
	Message json.RawMessage `json:"message"` // the frame the node will receive
}

// InboxStreamName and UndeliveredStreamName name the streams for subj.
func InboxStreamName(subj Subjects) string       { return subj.Prefix() + "_inbox" }
func UndeliveredStreamName(subj Subjects) string { return subj.Prefix() + "_undelivered" }

// OpenInbox creates or updates the inbox and undelivered streams. The
// inbox publishes through its own JetStream contexts so its async publish
// windows, ack timeouts and error handlers are its own.
func OpenInbox(ctx context.Context, nc *nats.Conn, subj Subjects, cfg InboxConfig, log *slog.Logger) (*Inbox, error) {
	attempt := cmp.Or(cfg.AttemptTimeout, defaultAttemptTimeout)
	window := cmp.Or(cfg.MaxInFlight, defaultStoreQueue)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncTimeout(attempt))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	events, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(window),
		jetstream.WithPublishAsyncTimeout(attempt),
		jetstream.WithPublishAsyncErrHandler(func(_ jetstream.JetStream, _ *nats.Msg, err error) {
			log.Error("queue undelivered event", "err", err)
		}))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:                 InboxStreamName(subj),
		Description:          "AllSpark pending messages per node",
		Subjects:             []string{subj.InboxAll()},
		Storage:              jetstream.FileStorage,
		Replicas:             max(cfg.Replicas, 1),
		MaxAge:               cfg.MaxAge,
		MaxMsgsPerSubject:    cfg.MaxPerNode,
		MaxBytes:             cmp.Or(cfg.MaxBytes, -1),
		Discard:              jetstream.DiscardNew,
		DiscardNewPerSubject: true,
		Duplicates:           dupWindow(cfg.MaxAge),
		AllowDirect:          true, // pages are read by batched direct gets (see Page)
	})
	if err != nil {
		return nil, fmt.Errorf("open inbox stream: %w", err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        UndeliveredStreamName(subj),
		Description: "AllSpark undelivered-message events for push workers",
		Subjects:    []string{subj.Undelivered()},
		Storage:     jetstream.FileStorage,
		Replicas:    max(cfg.Replicas, 1),
		Retention:   jetstream.WorkQueuePolicy,
		MaxAge:      cmp.Or(cfg.EventsMaxAge, cfg.MaxAge),
		MaxBytes:    cmp.Or(cfg.EventsMaxBytes, -1),
		Discard:     jetstream.DiscardOld,
		Duplicates:  dupWindow(cmp.Or(cfg.EventsMaxAge, cfg.MaxAge)),
		RePublish:   StoredRepublish(subj), // issue 14: the message.stored lifecycle event
	}); err != nil {
		return nil, fmt.Errorf("open undelivered stream: %w", err)
	}
	pages, err := newDirectPager(nc, InboxStreamName(subj))
	if err != nil {
		return nil, err
	}
	return &Inbox{nc: nc, js: js, events: events, attempt: attempt, subj: subj, stream: st,
		undelivered: subj.Undelivered(), noEvents: cfg.NoEvents, pages: pages,
		replicated: max(cfg.Replicas, 1) > 1, log: log}, nil
}

// Append implements Store: it appends frame to nodeID's inbox (once per
// msg_id and node) with durablePublish, which keeps the order of appends.
// Once durable, it queues an undelivered event and nudges the edge that may
// hold the node right now.
func (i *Inbox) Append(nodeID, msgID string, frame []byte) func(context.Context) error {
	dedup := msgID + ":" + Token(nodeID)
	msg := func() *nats.Msg {
		return &nats.Msg{Subject: i.subj.Inbox(nodeID), Data: frame, Header: nats.Header{
			jetstream.MsgIDHeader: []string{dedup},
			HeaderMsgID:           []string{msgID},
		}}
	}
	wait := durablePublish(i.js, msg, i.attempt, func(err error) bool { return isInboxFull(err) || isStorageFull(err) })
	return func(ctx context.Context) error {
		if _, err := wait(ctx); err != nil {
			switch {
			case isInboxFull(err):
				return ErrInboxFull
			case isStorageFull(err):
				return ErrStorageFull
			}
			return fmt.Errorf("append to inbox: %w", err)
		}
		i.stored(nodeID, msgID, dedup, frame)
		return nil
	}
}

// isInboxFull reports JetStream's refusal of a node's message past its
// per-node cap (DiscardNewPerSubject), which no retry can fix.
func isInboxFull(err error) bool {
	return strings.Contains(err.Error(), "maximum messages per subject exceeded")
}

// isStorageFull reports JetStream's refusal past the stream's MaxBytes, or
// for lack of room on the servers: a retry can only fill the budget.
func isStorageFull(err error) bool {
	s := err.Error()
	return strings.Contains(s, "maximum bytes exceeded") || strings.Contains(s, "insufficient resources")
}

// stored runs after a message is durable in nodeID's inbox.
func (i *Inbox) stored(nodeID, msgID, dedup string, frame []byte) {
	if !i.noEvents {
		i.queueEvent(nodeID, msgID, dedup, frame)
	}
	nudge := &nats.Msg{Subject: i.subj.Node(nodeID), Header: nats.Header{HeaderInbox: []string{"1"}}}
	if err := i.nc.PublishMsg(nudge); err != nil {
		i.log.Warn("nudge node after store", "node", nodeID, "err", err)
	}
}

// queueEvent announces a stored message on the undelivered work queue.
func (i *Inbox) queueEvent(nodeID, msgID, dedup string, frame []byte) {
	ev, _ := json.Marshal(UndeliveredEvent{NodeID: nodeID, MsgID: msgID, Message: frame})
	// The message is safe whatever happens here: a lost event costs a push
	// notification, never a message. The async error handler logs failures.
	if _, err := i.events.PublishMsgAsync(&nats.Msg{Subject: i.undelivered, Data: ev,
		Header: nats.Header{jetstream.MsgIDHeader: []string{dedup}}}, jetstream.WithStallWait(asyncStallWait)); err != nil {
		i.log.Error("queue undelivered event", "node", nodeID, "msg_id", msgID, "err", err)
	}
}

// Store appends and waits: the synchronous form of Append.
func (i *Inbox) Store(ctx context.Context, nodeID, msgID string, frame []byte) error {
	return i.Append(nodeID, msgID, frame)(ctx)
}

// Next returns nodeID's first pending message with sequence >= from, or
// ErrInboxEmpty. It reads through the stream leader (the JetStream API's
// message get, never a direct get, which any replica may answer), so a
// message stored before the call is never missed.
func (i *Inbox) Next(ctx context.Context, nodeID string, from uint64) (InboxMsg, error) {
	return i.pages.leaderGet(ctx, i.subj.Inbox(nodeID), from)
}

// Page returns up to n of nodeID's pending messages with sequence >= from,
// oldest first, fewer if they pass maxBytes (but at least one if there is
// any), in one request; ErrInboxEmpty if there is none. end reports that
// the inbox held nothing after the last one when it was read.
//
// Pages are batched direct gets, which any current replica may answer. A
// follower holds a prefix of the stream, so a page is never out of order
// or missing a message in its middle, but it may lack the newest ones: so
// on a replicated stream an empty or final page is confirmed by a read
// through the leader (Next) before the caller is told the inbox is done.
func (i *Inbox) Page(ctx context.Context, nodeID string, from uint64, n, maxBytes int) (msgs []InboxMsg, end bool, err error) {
	msgs, end, err = i.pages.page(ctx, i.subj.Inbox(nodeID), from, max(n, 1), maxBytes)
	if !i.replicated || (err != nil && !errors.Is(err, ErrInboxEmpty)) || !end {
		return msgs, end, err
	}
	after := from
	if len(msgs) > 0 {
		after = msgs[len(msgs)-1].Seq + 1
	}
	m, lerr := i.Next(ctx, nodeID, after)
	switch {
	case errors.Is(lerr, ErrInboxEmpty):
		return msgs, true, err
	case lerr != nil:
		return nil, false, lerr
	}
	return append(msgs, m), false, nil
}

// Remove deletes an acknowledged message.
func (i *Inbox) Remove(ctx context.Context, seq uint64) error {
	if err := i.stream.DeleteMsg(ctx, seq); err != nil && !errors.Is(err, jetstream.ErrMsgNotFound) {
		return fmt.Errorf("remove from inbox: %w", err)
	}
	return nil
}

// RemoveUpTo deletes every message of nodeID's inbox with sequence <= seq
// in one operation (a purge filtered by the node's subject). The caller
// must know that each of them was acknowledged.
func (i *Inbox) RemoveUpTo(ctx context.Context, nodeID string, seq uint64) error {
	if err := i.stream.Purge(ctx, jetstream.WithPurgeSubject(i.subj.Inbox(nodeID)), jetstream.WithPurgeSequence(seq+1)); err != nil {
		return fmt.Errorf("remove acknowledged prefix from inbox: %w", err)
	}
	return nil
}
