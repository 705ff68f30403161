package client

import (
	"errors"
	"fmt"

	"github.com/allspark-rt/allspark"
)

// State is where the client's connection stands.
type State int

const (
	// Connecting: the first connection is being opened.
	Connecting State = iota + 1
	// Connected: the websocket is open and the inbox replay has finished
	// (the edge sent sync_done): every message stored while offline has
	// been handed to the client.
	Connected
	// Disconnected: the connection ended. Reconnecting follows unless the
	// client was closed or its auth_key was refused.
	Disconnected
	// Reconnecting: a new connection is being opened after a delay.
	Reconnecting
)

func (s State) String() string {
	switch s {
	case Connecting:
		return "connecting"
	case Connected:
		return "connected"
	case Disconnected:
		return "disconnected"
	case Reconnecting:
		return "reconnecting"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// StateChange is a state event. Err says why a connection ended (nil for
// a Close); CloseCode is the websocket close code when the edge sent one.
type StateChange struct {
	State     State
	Err       error
	CloseCode int
	EdgeURL   string // the websocket URL, when Connected
}

// Presence is a session member coming online or going offline.
type Presence struct {
	SessionID string `json:"session_id"`
	MemberID  string `json:"member_id"`
	Online    bool   `json:"online"`
}

// PresenceSummary is how many named members of a large session are
// online. A session with more members than the edge's
// ALLSPARK_PRESENCE_MAX_MEMBERS (default 100) gets these instead of
// Presence events: at most one per summary interval and only when the
// count changed, and one when this node connects or joins. The count is
// approximate: a node connected to two edges counts twice, and the
// members of an edge that died count until it is considered dead.
// Anonymous members are never counted.
type PresenceSummary struct {
	SessionID string `json:"session_id"`
	Online    int    `json:"online"`
}

// Outcome is the edge's answer to a Send: the "sent" frame.
type Outcome = allspark.Sent

// Errors the client reports.
var (
	// ErrClosed: the client was closed.
	ErrClosed = errors.New("client closed")
	// ErrAnswerLost: the connection ended after the message was written
	// and before its "sent" answer arrived. It may or may not have been
	// routed; a resend gets a new msg_id.
	ErrAnswerLost = errors.New("connection lost before the sent answer")
	// ErrUnauthorized: the edge refused the auth_key and no new one was
	// supplied.
	ErrUnauthorized = errors.New("auth_key refused")
	// ErrReplaced: the edge closed the connection with 4011: another
	// connection of this node took precedence (single-connection mode).
	// The client does not reconnect, or two instances of one node would
	// replace each other for ever; Close it, or start a new one on purpose.
	ErrReplaced = errors.New("replaced by another connection of this node (close 4011)")
)

// FrameError is reported (OnError) for a frame from the edge that the
// client cannot understand. The connection stays open.
type FrameError struct {
	Frame []byte // the frame, cut to 256 bytes
	Err   error
}

func (e *FrameError) Error() string {
	return fmt.Sprintf("malformed frame from the edge: %v: %q", e.Err, e.Frame)
}

func (e *FrameError) Unwrap() error { return e.Err }

// ServerError is an "error" frame the edge sent that answers no pending
// call of this client.
type ServerError struct {
	ID  string
	Err *allspark.Error
}

func (e *ServerError) Error() string { return "edge error: " + e.Err.Error() }

func (e *ServerError) Unwrap() error { return e.Err }
