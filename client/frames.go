package client

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/allspark-rt/allspark"
)

// kind is what a frame from the edge is.
type kind int

const (
	kindMessage kind = iota + 1
	kindSent
	kindSyncDone        // inbox replay finished
	kindSessionSyncDone // a session sync finished
	kindPresence
	kindPresenceSummary
	kindError
	kindReconnect
	kindPong
	kindUnknown // a well-formed frame of a type this client does not know: ignored
)

// serverFrame is every field a frame from the edge may carry.
type serverFrame struct {
	Type string `json:"type"`
	allspark.Message
	ID        string          `json:"id"`
	Status    allspark.Status `json:"status"`
	Error     *allspark.Error `json:"error"`
	Code      allspark.Code   `json:"code"`
	ErrMsg    string          `json:"message"`
	Pending   int             `json:"pending"`
	SessionID string          `json:"session_id"`
	LastSeq   uint64          `json:"last_seq"`
	// Online is a bool in presence and a count in presence_summary: it is
	// decoded once the type is known.
	Online  json.RawMessage `json:"online"`
	AfterMS int64           `json:"after_ms"`
}

// frame is a decoded frame from the edge.
type frame struct {
	kind   kind
	f      serverFrame
	online bool // presence: the member came online
	count  int  // presence_summary: members online
}

var errNotObject = errors.New("not a JSON object")

// decodeFrame parses one frame from the edge. A JSON object whose type is a
// string this client does not know is kindUnknown: the protocol lets the
// edge add frame types, and clients ignore those they do not know. Anything
// else it cannot place is an error: the caller reports it and keeps the
// connection.
func decodeFrame(b []byte) (frame, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return frame{}, errNotObject
	}
	var f serverFrame
	if err := json.Unmarshal(b, &f); err != nil {
		// A frame of a newer type may give a known field another JSON
		// type; only its type matters to tell.
		var t struct {
			Type string `json:"type"`
		}
		if json.Unmarshal(b, &t) == nil && t.Type != "" && !knownType(t.Type) {
			return frame{kind: kindUnknown, f: serverFrame{Type: t.Type}}, nil
		}
		return frame{}, fmt.Errorf("decode JSON: %w", err)
	}
	out := frame{f: f}
	switch f.Type {
	case "":
		if f.MsgID == "" {
			return frame{}, errors.New("message without msg_id")
		}
		if f.DestID == "" && f.DestClientID == "" && f.DestSessionID == "" {
			return frame{}, errors.New("message without a destination")
		}
		out.kind = kindMessage
	case "sent":
		switch f.Status {
		case allspark.StatusDelivered, allspark.StatusStored:
		case allspark.StatusRejected:
			if f.Error == nil {
				f.Error = allspark.Errorf(allspark.CodeInternal, "rejected without an error")
				out.f = f
			}
		default:
			return frame{}, fmt.Errorf("sent with unknown status %q", allspark.Truncate(string(f.Status), 32))
		}
		out.kind = kindSent
	case "sync_done":
		out.kind = kindSyncDone
		if f.SessionID != "" {
			out.kind = kindSessionSyncDone
		}
	case "presence":
		if f.SessionID == "" || f.MemberID == "" {
			return frame{}, errors.New("presence without session_id or member_id")
		}
		if len(f.Online) > 0 {
			if err := json.Unmarshal(f.Online, &out.online); err != nil {
				return frame{}, fmt.Errorf("presence online: %w", err)
			}
		}
		out.kind = kindPresence
	case "presence_summary":
		if f.SessionID == "" {
			return frame{}, errors.New("presence_summary without session_id")
		}
		// A count: an integer, not a float, string or null.
		if len(f.Online) == 0 || json.Unmarshal(f.Online, &out.count) != nil || bytes.Equal(f.Online, []byte("null")) || out.count < 0 {
			return frame{}, errors.New("presence_summary without a count (online: an integer >= 0)")
		}
		out.kind = kindPresenceSummary
	case "error":
		if f.Code == "" {
			return frame{}, errors.New("error frame without a code")
		}
		out.kind = kindError
	case "reconnect":
		if f.AfterMS < 0 {
			return frame{}, errors.New("reconnect with a negative after_ms")
		}
		out.kind = kindReconnect
	case "pong":
		out.kind = kindPong
	default:
		out.kind = kindUnknown
	}
	return out, nil
}

// knownType reports whether typ is a frame type this client decodes.
func knownType(typ string) bool {
	switch typ {
	case "", "sent", "sync_done", "presence", "presence_summary", "error", "reconnect", "pong":
		return true
	}
	return false
}

// clientFrame is every field a frame to the edge may carry.
type clientFrame struct {
	Type          string          `json:"type,omitempty"`
	ID            string          `json:"id,omitempty"`
	DestID        string          `json:"dest_id,omitempty"`
	DestClientID  string          `json:"dest_client_id,omitempty"`
	DestSessionID string          `json:"dest_session_id,omitempty"`
	MemberID      string          `json:"member_id,omitempty"`
	Payload       json.RawMessage `json:"payload,omitempty"`
	Payload1      json.RawMessage `json:"payload1,omitempty"`
	Payload2      json.RawMessage `json:"payload2,omitempty"`
	MsgIDs        []string        `json:"msg_ids,omitempty"`
	SessionID     string          `json:"session_id,omitempty"`
	Seq           uint64          `json:"seq,omitempty"`
	AfterSeq      uint64          `json:"after_seq,omitempty"`
	Limit         int             `json:"limit,omitempty"`
}

func encode(f clientFrame) ([]byte, error) {
	b, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("encode frame: %w", err)
	}
	return b, nil
}
