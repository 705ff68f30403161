package allspark

import (
	"encoding/json"
	"fmt"
)

// Message is one routed message, in the shape a receiving client sees it.
// Exactly one of DestID, DestClientID and DestSessionID is set.
type Message struct {
	MsgID         string `json:"msg_id,omitempty"`
	SrcID         string `json:"src_id,omitempty"`
	SrcClientID   string `json:"src_client_id,omitempty"`
	DestID        string `json:"dest_id,omitempty"`
	DestClientID  string `json:"dest_client_id,omitempty"`
	DestSessionID string `json:"dest_session_id,omitempty"`
	// MemberID, with DestSessionID, addresses one member of the session
	// (by its member id, which may be an anonymous alias) instead of all.
	MemberID string          `json:"member_id,omitempty"`
	Seq      uint64          `json:"seq,omitempty"`
	Payload  json.RawMessage `json:"payload,omitempty"`
	Payload1 json.RawMessage `json:"payload1,omitempty"`
	Payload2 json.RawMessage `json:"payload2,omitempty"`
	TS       int64           `json:"ts,omitempty"` // Unix milliseconds when the edge accepted it

	// SrcNode is the sender's real node id. It never leaves the server:
	// for an anonymous session member SrcID is an alias.
	SrcNode string `json:"-"`
}

// CheckDest validates the destination fields: exactly one must be set, and
// it must be a valid id.
func (m *Message) CheckDest() *Error {
	n := 0
	for _, d := range [...]string{m.DestID, m.DestClientID, m.DestSessionID} {
		if d != "" {
			n++
		}
	}
	switch {
	case n == 0:
		return Errorf(CodeBadFrame, "one of dest_id, dest_client_id, dest_session_id is required")
	case n > 1:
		return Errorf(CodeBadFrame, "only one of dest_id, dest_client_id, dest_session_id may be set")
	}
	for _, d := range [...]string{m.DestID, m.DestClientID, m.DestSessionID} {
		if d != "" && !ValidID(d) {
			return Errorf(CodeBadID, fmt.Sprintf("invalid destination id %q", Truncate(d, 40)))
		}
	}
	if m.MemberID != "" {
		if m.DestSessionID == "" {
			return Errorf(CodeBadFrame, "member_id needs dest_session_id")
		}
		if !ValidID(m.MemberID) {
			return Errorf(CodeBadID, "invalid member_id")
		}
	}
	return nil
}

// Status is the outcome of a send.
type Status string

const (
	// StatusDelivered: target nodes acknowledged it and nothing was stored.
	// With more than one target, Failed lists the targets that got no copy.
	StatusDelivered Status = "delivered"
	// StatusStored: at least one target was offline or did not acknowledge in
	// time and its copy is durable in its inbox; the others acknowledged it
	// or are listed in Failed.
	StatusStored Status = "stored"
	// StatusRejected: nothing was delivered or stored; Error says why.
	StatusRejected Status = "rejected"
)

// Sent is the answer to every message: the "sent" frame on a websocket, the
// reply on allspark.send and the body of POST /v1/messages.
type Sent struct {
	Type   string `json:"type"` // always "sent"
	ID     string `json:"id,omitempty"`
	MsgID  string `json:"msg_id,omitempty"`
	Status Status `json:"status"`
	Error  *Error `json:"error,omitempty"`
	Seq    uint64 `json:"seq,omitempty"` // a session message's seq in the session history
	// Failed lists, on a delivered or stored answer, the targets whose copy
	// was neither acknowledged nor stored. Absent when every copy arrived.
	Failed []TargetFailure `json:"failed,omitempty"`
}

// TargetFailure is one target of a multi-target message that got no copy.
type TargetFailure struct {
	Node string `json:"node"`
	Code Code   `json:"code"`
}

// NewSent builds a "sent" answer.
func NewSent(id, msgID string, st Status, err *Error) Sent {
	return Sent{Type: "sent", ID: id, MsgID: msgID, Status: st, Error: err}
}

// Truncate cuts client input quoted in an error message to n bytes.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
