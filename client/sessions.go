package client

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	"github.com/allspark-rt/allspark"
)

// Session membership and catch-up. The client tracks the sessions it
// created or joined (and any given to TrackSession) with the last seq it
// received in each. After every reconnect, once the inbox replay is done,
// it syncs each of them from that seq, page by page, so messages sent to
// a session while this node was away reach the handler.

// SessionInfo is the answer of GET /v1/sessions/{id}.
type SessionInfo struct {
	SessionID string `json:"session_id"`
	Members   []struct {
		MemberID string `json:"member_id"`
		Online   bool   `json:"online"`
	} `json:"members"`
	// MemberCount counts every member; Members is the first page of them
	// (up to the edge's ALLSPARK_SESSION_PAGE_DEFAULT), and NextCursor,
	// when set, is the ?cursor= of the next page.
	MemberCount int    `json:"member_count"`
	NextCursor  string `json:"next_cursor,omitempty"`
	LastSeq     uint64 `json:"last_seq"`
	AckedSeq    uint64 `json:"acked_seq"` // this node's read cursor
}

// CreateSession creates a session (id "" lets the edge pick one) with
// this node as its first member, and tracks it.
func (c *Client) CreateSession(ctx context.Context, id string, allowAnonymous bool) (string, error) {
	if id != "" && !allspark.ValidID(id) {
		return "", allspark.Errorf(allspark.CodeBadID, "invalid session_id")
	}
	var out struct {
		SessionID string `json:"session_id"`
	}
	if err := c.api(ctx, http.MethodPost, "/v1/sessions", map[string]any{"session_id": id, "allow_anonymous": allowAnonymous}, &out); err != nil {
		return "", fmt.Errorf("create session: %w", err)
	}
	c.TrackSession(out.SessionID, 0)
	return out.SessionID, nil
}

// JoinSession joins a session (anonymously: under a random alias) and
// tracks it from its current last seq. It returns this node's member id.
func (c *Client) JoinSession(ctx context.Context, id string, anonymous bool) (string, error) {
	if !allspark.ValidID(id) {
		return "", allspark.Errorf(allspark.CodeBadID, "invalid session_id")
	}
	var out struct {
		MemberID string `json:"member_id"`
	}
	if err := c.api(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/join", map[string]bool{"anonymous": anonymous}, &out); err != nil {
		return "", fmt.Errorf("join session: %w", err)
	}
	info, err := c.Session(ctx, id)
	if err != nil {
		return out.MemberID, err
	}
	c.TrackSession(id, info.LastSeq)
	return out.MemberID, nil
}

// UnjoinSession leaves a session and stops tracking it.
func (c *Client) UnjoinSession(ctx context.Context, id string) error {
	if !allspark.ValidID(id) {
		return allspark.Errorf(allspark.CodeBadID, "invalid session_id")
	}
	if err := c.api(ctx, http.MethodPost, "/v1/sessions/"+url.PathEscape(id)+"/unjoin", nil, nil); err != nil {
		return fmt.Errorf("unjoin session: %w", err)
	}
	c.mu.Lock()
	delete(c.cursors, id)
	c.mu.Unlock()
	return nil
}

// Session returns a session's members (with presence), its last seq and
// this node's read cursor.
func (c *Client) Session(ctx context.Context, id string) (SessionInfo, error) {
	var info SessionInfo
	if !allspark.ValidID(id) {
		return info, allspark.Errorf(allspark.CodeBadID, "invalid session_id")
	}
	if err := c.api(ctx, http.MethodGet, "/v1/sessions/"+url.PathEscape(id), nil, &info); err != nil {
		return info, fmt.Errorf("get session: %w", err)
	}
	return info, nil
}

// TrackSession makes the client sync session id from afterSeq after each
// reconnect (for a node restoring its state, e.g. from SessionInfo.AckedSeq).
// A cursor only moves forward.
func (c *Client) TrackSession(id string, afterSeq uint64) {
	c.mu.Lock()
	c.cursors[id] = max(c.cursors[id], afterSeq)
	c.mu.Unlock()
}

// Sync asks for a session's messages after afterSeq (at most limit, 0 for
// the edge's default). They reach OnMessage like live ones; Sync returns
// the session's last seq once they have all been received.
func (c *Client) Sync(ctx context.Context, id string, afterSeq uint64, limit int) (uint64, error) {
	if !allspark.ValidID(id) {
		return 0, allspark.Errorf(allspark.CodeBadID, "sync needs a valid session_id")
	}
	w, err := c.connection(ctx)
	if err != nil {
		return 0, err
	}
	done, err := w.startSync(ctx, id, afterSeq, limit, false)
	if err != nil {
		return 0, fmt.Errorf("sync: %w", err)
	}
	select {
	case r := <-done:
		if r.err != nil {
			return 0, fmt.Errorf("sync: %w", r.err)
		}
		return r.lastSeq, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("sync: %w", ctx.Err())
	}
}

func (c *Client) cursor(sid string) (uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cursors[sid]
	return v, ok
}

// resumeSessions syncs every tracked session from its cursor.
func (c *Client) resumeSessions(w *wsConn) {
	c.mu.Lock()
	cursors := make(map[string]uint64, len(c.cursors))
	for sid, seq := range c.cursors {
		cursors[sid] = seq
	}
	c.mu.Unlock()
	for sid, seq := range cursors {
		if _, err := w.startSync(c.ctx, sid, seq, maxSyncPage, true); err != nil {
			return
		}
	}
}
