package edge

import (
	"bytes"
	"encoding/json"
	"fmt"

	"github.com/allspark-rt/allspark"
)

// frameKind is what a client frame asks for.
type frameKind int

const (
	kindMessage frameKind = iota + 1
	kindPing
	kindAck
	kindSync
)

func (k frameKind) String() string {
	switch k {
	case kindMessage:
		return "message"
	case kindPing:
		return "ping"
	case kindAck:
		return "ack"
	case kindSync:
		return "sync"
	}
	return "bad"
}

// inFrame is every field a client frame may carry; a field it does not
// have is rejected (bad_frame naming it). Destinations are pointers so an
// empty string (a bad id) differs from an absent field.
type inFrame struct {
	Type          string          `json:"type"`
	ID            string          `json:"id"`
	DestID        *string         `json:"dest_id"`
	DestClientID  *string         `json:"dest_client_id"`
	DestSessionID *string         `json:"dest_session_id"`
	Payload       json.RawMessage `json:"payload"`
	Payload1      json.RawMessage `json:"payload1"`
	Payload2      json.RawMessage `json:"payload2"`
	MsgID         string          `json:"msg_id"`
	MsgIDs        []string        `json:"msg_ids"`
	SessionID     string          `json:"session_id"`
	AfterSeq      uint64          `json:"after_seq"`
	Seq           uint64          `json:"seq"`
	MemberID      *string         `json:"member_id"`
	Limit         int             `json:"limit"`
}

// frame is a decoded, validated client frame.
type frame struct {
	kind      frameKind
	id        string            // the client's correlation id
	msg       *allspark.Message // kindMessage: destination and payloads
	ackIDs    []string          // kindAck
	sessionID string            // kindSync; kindAck of a session cursor
	afterSeq  uint64            // kindSync; kindAck: the acknowledged session seq
	limit     int
}

// maxAckBatch bounds msg_ids in one ack frame.
const maxAckBatch = 1024

// decodeFrame parses one client frame. On failure it returns the client's
// correlation id (when readable) and the error to put in an error frame.
// A frame nested deeper than maxDepth is refused before it is decoded.
func decodeFrame(b []byte, maxDepth int) (frame, *allspark.Error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return frame{}, allspark.Errorf(allspark.CodeBadFrame, "frame must be a JSON object")
	}
	var in inFrame
	if err := allspark.CheckDepth(b, maxDepth); err != nil {
		return frame{}, err
	}
	if !fastParse(b, &in) {
		in = inFrame{}
		// The decoder fills what it can before reporting an unknown field or
		// a mistyped value, so the id usually survives for the error frame.
		if err := allspark.DecodeObjectDepth(b, &in, maxDepth); err != nil {
			return frame{id: in.ID}, err
		}
	}
	f := frame{id: in.ID}
	var err *allspark.Error
	switch in.Type {
	case "", "message":
		err = in.message(&f)
	case "ping":
		f.kind = kindPing
	case "ack":
		err = in.ack(&f)
	case "sync":
		err = in.sync(&f)
	default:
		err = allspark.Errorf(allspark.CodeUnknownType, fmt.Sprintf("unknown frame type %q", allspark.Truncate(in.Type, 32)))
	}
	return f, err
}

// message fills f from a message frame, or a ping: a frame with no type
// and no destination is AllSparkRT's ping.
func (in *inFrame) message(f *frame) *allspark.Error {
	if countSet(in.DestID, in.DestClientID, in.DestSessionID) == 0 {
		if in.Type == "message" {
			return allspark.Errorf(allspark.CodeBadFrame, "message needs dest_id, dest_client_id or dest_session_id")
		}
		f.kind = kindPing
		return nil
	}
	m := &allspark.Message{Payload: in.Payload, Payload1: in.Payload1, Payload2: in.Payload2}
	if in.DestID != nil {
		m.DestID = *in.DestID
	}
	if in.DestClientID != nil {
		m.DestClientID = *in.DestClientID
	}
	if in.DestSessionID != nil {
		m.DestSessionID = *in.DestSessionID
	}
	if in.MemberID != nil {
		if *in.MemberID == "" {
			return allspark.Errorf(allspark.CodeBadID, "member_id must not be empty")
		}
		m.MemberID = *in.MemberID
	}
	if n := countSet(in.DestID, in.DestClientID, in.DestSessionID); n > 1 {
		return allspark.Errorf(allspark.CodeBadFrame, "only one of dest_id, dest_client_id, dest_session_id may be set")
	}
	if m.DestID == "" && m.DestClientID == "" && m.DestSessionID == "" {
		return allspark.Errorf(allspark.CodeBadID, "destination id must not be empty")
	}
	if err := m.CheckDest(); err != nil {
		return err
	}
	f.kind, f.msg = kindMessage, m
	return nil
}

// ack fills f from an ack frame: message ids, a session read cursor, or both.
func (in *inFrame) ack(f *frame) *allspark.Error {
	ids := in.MsgIDs
	if in.MsgID != "" {
		ids = append(ids, in.MsgID)
	}
	if in.SessionID != "" {
		if !allspark.ValidID(in.SessionID) || in.Seq == 0 {
			return allspark.Errorf(allspark.CodeBadFrame, "a session ack needs a valid session_id and seq")
		}
		f.sessionID, f.afterSeq = in.SessionID, in.Seq
	}
	if len(ids) == 0 && f.sessionID == "" {
		return allspark.Errorf(allspark.CodeBadFrame, "ack needs msg_id, msg_ids or session_id and seq")
	}
	if len(ids) > maxAckBatch {
		return allspark.Errorf(allspark.CodeBadFrame, fmt.Sprintf("at most %d msg_ids per ack", maxAckBatch))
	}
	f.kind, f.ackIDs = kindAck, ids
	return nil
}

// sync fills f from a session history request.
func (in *inFrame) sync(f *frame) *allspark.Error {
	if !allspark.ValidID(in.SessionID) {
		return allspark.Errorf(allspark.CodeBadID, "sync needs a valid session_id")
	}
	if in.Limit < 0 {
		return allspark.Errorf(allspark.CodeBadFrame, "limit must not be negative")
	}
	f.kind, f.sessionID, f.afterSeq, f.limit = kindSync, in.SessionID, in.AfterSeq, in.Limit
	return nil
}

func countSet(ps ...*string) int {
	n := 0
	for _, p := range ps {
		if p != nil {
			n++
		}
	}
	return n
}

// Server-to-client control frames.

var pongFrame = []byte(`{"type":"pong"}`)

type errorFrame struct {
	Type    string        `json:"type"` // "error"
	Code    allspark.Code `json:"code"`
	Message string        `json:"message,omitempty"`
	ID      string        `json:"id,omitempty"`
}

func encodeError(id string, e *allspark.Error) []byte {
	b, _ := json.Marshal(errorFrame{Type: "error", Code: e.Code, Message: e.Message, ID: id})
	return b
}

type syncDoneFrame struct {
	Type    string `json:"type"` // "sync_done"
	Pending int    `json:"pending"`
}

type reconnectFrame struct {
	Type    string `json:"type"` // "reconnect"
	AfterMS int64  `json:"after_ms"`
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err)) // only our own fixed types reach here
	}
	return b
}
