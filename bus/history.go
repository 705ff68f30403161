package bus

import (
	"cmp"
	"context"
	"errors"
	"fmt"
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
		Duplicates:        2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("open history stream: %w", err)
	}
	return &History{nc: nc, js: js, attempt: attempt, subj: subj, stream: st}, nil
}

// append starts publishing frame to the session's history; wait returns
// its seq once durable, retrying through failovers until ctx ends.
func (h *History) append(sessionID, msgID string, frame []byte) func(context.Context) (uint64, error) {
	wait := durablePublish(h.js, func() *nats.Msg {
		return &nats.Msg{Subject: h.subj.Session(sessionID), Data: frame,
			Header: nats.Header{jetstream.MsgIDHeader: []string{msgID}}}
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

// Range returns up to limit of the session's messages with seq > after,
// oldest first, each with its seq, and the session's last seq.
func (h *History) Range(ctx context.Context, sessionID string, after uint64, limit int) ([][]byte, uint64, error) {
	subject := h.subj.Session(sessionID)
	var out [][]byte
	next := after + 1
	for len(out) < limit {
		m, err := h.stream.GetMsg(ctx, next, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, 0, fmt.Errorf("read history: %w", err)
		}
		out = append(out, WithSeq(m.Data, m.Sequence))
		next = m.Sequence + 1
	}
	last, err := h.LastSeq(ctx, sessionID)
	if err != nil {
		return nil, 0, err
	}
	return out, last, nil
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
