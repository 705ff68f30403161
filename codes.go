// Package allspark holds the domain types shared by every part of AllSpark:
// the message that is routed, the outcome a sender is told, identifiers, and
// the one catalog of error and close codes (documented for client authors
// in docs/PROTOCOL.md).
package allspark

// Code is a machine-readable error code. It appears in HTTP error bodies,
// in "error" frames and in rejected "sent" answers. This file is the
// catalog; docs/PROTOCOL.md documents it for client authors, so a change
// here means a change there in the same commit. (The original contract
// names only some of these codes; the others came with later features.)
type Code string

const (
	CodeBadFrame     Code = "bad_frame"    // frame is not a JSON object, or its fields are inconsistent
	CodeUnknownType  Code = "unknown_type" // "type" names no control frame
	CodeBadID        Code = "bad_id"       // an id is empty, too long or has control characters
	CodeTooLarge     Code = "too_large"    // body over the configured limit
	CodeRateLimited  Code = "rate_limited" // sender exceeded its rate
	CodeNotMember    Code = "not_member"   // sender is not a member of the session
	CodeUnavailable  Code = "unavailable"  // the cluster could not route or store the message
	CodeOffline      Code = "offline"      // the client has no known device to deliver to or store for
	CodeInboxFull    Code = "inbox_full"   // the target inbox holds its maximum of pending messages
	CodeOverloaded   Code = "overloaded"   // the edge has its maximum of stores in flight; retry later
	CodeUnauthorized Code = "unauthorized" // missing, malformed, expired or forged credentials
	CodeNotFound     Code = "not_found"    // unknown resource
	CodeConflict     Code = "conflict"     // the resource exists already, or is full
	CodeForbidden    Code = "forbidden"    // authenticated, but not allowed
	CodeBadRequest   Code = "bad_request"  // malformed HTTP request body or parameters
	CodeInternal     Code = "internal"     // a bug or an unexpected failure on our side
	CodeBusy         Code = "busy"         // the connection already runs a request of this kind (a session sync); retry after it ends
)

// CodeMethodNotAllowed answers HTTP 405: the path exists, but not for this
// method; the Allow header lists the methods it has.
const CodeMethodNotAllowed Code = "method_not_allowed"

// Error is the JSON shape of an error: {"code":"…","message":"…"}.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message,omitempty"`
}

func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return string(e.Code) + ": " + e.Message
}

// Errorf is a shorthand for an *Error with a message.
func Errorf(code Code, msg string) *Error { return &Error{Code: code, Message: msg} }

// Websocket close codes sent by an edge, documented with the error codes in
// docs/PROTOCOL.md. 1000–1015 are RFC 6455; 4000–4999 are ours.
const (
	CloseNormal       = 1000
	CloseGoingAway    = 1001 // edge shutting down, after a "reconnect" frame
	CloseTooLarge     = 1009 // frame over ALLSPARK_MAX_FRAME_BYTES
	CloseAuthExpired  = 4001 // auth_key expired, or a browser's upgrade credentials refused (the reason says which)
	CloseRateLimited  = 4008 // rate limit exceeded repeatedly
	CloseSlowConsumer = 4009 // the client did not drain its send queue
	CloseTryAgain     = 1013 // the edge could not read the inbox; reconnect
	CloseReplaced     = 4011 // the node's other connections take precedence: replaced by a newer one (single-connection mode), or refused past ALLSPARK_MAX_CONNS_PER_NODE (the reason says which)
)
