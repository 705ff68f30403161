package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// HeaderSrcNode carries the real sender node of a live session message,
// between edges only, so an edge can skip echoing it to its sender. It is
// never written to a client.
const HeaderSrcNode = "Allspark-Src-Node"

// HeaderPresence marks a presence frame on a session's live subject.
const HeaderPresence = "Allspark-Presence"

// HistoryConfig configures OpenHistory.
type HistoryConfig struct {
	Replicas      int
	MaxAge        time.Duration
	MaxPerSession int64 // oldest messages beyond this are dropped from history
	// AttemptTimeout and MaxInFlight are as in InboxConfig.
	AttemptTimeout time.Duration
	MaxInFlight    int
}

// History is the JetStream stream of session messages: every message to
// a session is appended once, and its stream sequence is its seq. Seqs grow
// within a session but are not contiguous (the stream is shared).
type History struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	attempt time.Duration
	subj    Subjects
	stream  jetstream.Stream
}

// HistoryStreamName names the history stream.
func HistoryStreamName(subj Subjects) string { return subj.Prefix() + "_history" }

// OpenHistory creates or updates the history stream.
func OpenHistory(ctx context.Context, nc *nats.Conn, subj Subjects, cfg HistoryConfig) (*History, error) {
	attempt := cmp.Or(cfg.AttemptTimeout, defaultAttemptTimeout)
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cmp.Or(cfg.MaxInFlight, defaultStoreQueue)),
		jetstream.WithPublishAsyncTimeout(attempt))
	if err != nil {
		return nil, fmt.Errorf("jetstream context: %w", err)
	}
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              HistoryStreamName(subj),
		Description:       "AllSpark session history",
		Subjects:          []string{subj.SessionAll()},
		Storage:           jetstream.FileStorage,
		Replicas:          max(cfg.Replicas, 1),
		MaxAge:            cfg.MaxAge,
		MaxMsgsPerSubject: cfg.MaxPerSession,
		Discard:           jetstream.DiscardOld,
		Duplicates:        dupWindow(cfg.MaxAge),
	})
	if err != nil {
		return nil, fmt.Errorf("open history stream: %w", err)
	}
	return &History{nc: nc, js: js, attempt: attempt, subj: subj, stream: st}, nil
}

// append starts publishing frame to the session's history; wait returns
// its seq once durable, retrying through failovers until ctx ends.
func (h *History) append(sessionID, msgID string, frame []byte) func(context.Context) (uint64, error) {
	// Dedup per session: the stream is shared, and a backend may send one
	// msg_id to two sessions, which are two messages (as the inbox keys
	// on msg_id and node).
	dedup := msgID + ":" + Token(sessionID)
	wait := durablePublish(h.js, func() *nats.Msg {
		return &nats.Msg{Subject: h.subj.Session(sessionID), Data: frame,
			Header: nats.Header{jetstream.MsgIDHeader: []string{dedup}}}
	}, h.attempt, nil)
	return func(ctx context.Context) (uint64, error) {
		ack, err := wait(ctx)
		if err != nil {
			return 0, fmt.Errorf("append to history: %w", err)
		}
		return ack.Sequence, nil
	}
}

// publishLive fans a stored session message out to the edges holding its
// members. frame must already carry its seq.
func (h *History) publishLive(sessionID, srcNode string, frame []byte) error {
	return h.nc.PublishMsg(&nats.Msg{Subject: h.subj.SessionLive(sessionID), Data: frame,
		Header: nats.Header{HeaderSrcNode: []string{srcNode}}})
}

// HistoryMsg is one session message read from history: its frame, with
// "seq" added, and that seq.
type HistoryMsg struct {
	Seq   uint64
	Frame []byte
}

// Range reads one page of the session's messages with seq > after, oldest
// first: at most limit messages, and no more once maxBytes of frames are
// read (one message always fits, so a page makes progress). end reports
// that the history holds nothing after the page. A page is the unit a sync
// holds in memory, so its bounds, not the client's limit, bound the memory.
// after = 2^64-1 is past every seq: the page is empty, never a wrap to 0.
func (h *History) Range(ctx context.Context, sessionID string, after uint64, limit, maxBytes int) (page []HistoryMsg, end bool, err error) {
	if after == math.MaxUint64 {
		return nil, true, nil
	}
	subject := h.subj.Session(sessionID)
	next, size := after+1, 0
	for len(page) < max(limit, 1) && (len(page) == 0 || size < maxBytes) {
		m, err := h.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return page, true, nil
		}
		if err != nil {
			return nil, false, fmt.Errorf("read history: %w", err)
		}
		f := WithSeq(m.Data, m.Sequence)
		page = append(page, HistoryMsg{Seq: m.Sequence, Frame: f})
		size += len(f)
		if m.Sequence == math.MaxUint64 {
			return page, true, nil
		}
		next = m.Sequence + 1
	}
	return page, false, nil
}

// LastSeq is the seq of the session's newest message, 0 if none.
func (h *History) LastSeq(ctx context.Context, sessionID string) (uint64, error) {
	m, err := h.stream.GetLastMsgForSubject(ctx, h.subj.Session(sessionID))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read last history seq: %w", err)
	}
	return m.Sequence, nil
}

// WithSeq returns frame (a JSON object) with "seq" added as its first field.
func WithSeq(frame []byte, seq uint64) []byte {
	if len(frame) < 2 || frame[0] != '{' {
		return frame
	}
	var b strings.Builder
	b.Grow(len(frame) + 24)
	b.WriteString(`{"seq":`)
	b.WriteString(strconv.FormatUint(seq, 10))
	if strings.TrimSpace(string(frame[1:])) != "}" {
		b.WriteByte(',')
	}
	b.Write(frame[1:])
	return []byte(b.String())
}
