package client

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/allspark-rt/allspark"
)

// Outgoing is a message to send. Exactly one destination is set.
type Outgoing struct {
	// ID correlates the answer; empty: the client picks one.
	ID            string
	DestID        string
	DestClientID  string
	DestSessionID string
	MemberID      string // with DestSessionID: one member only
	// Payloads are any JSON values (a json.RawMessage is sent as is).
	Payload, Payload1, Payload2 any
}

// Send sends m and returns the edge's answer: delivered, stored, or
// rejected with a code. An invalid destination is rejected here, with the
// code the edge would give, without a round trip. Send waits for a
// connection; the error is non-nil when no answer could be had (ctx,
// Close, or ErrAnswerLost when the connection dropped after writing).
func (c *Client) Send(ctx context.Context, m Outgoing) (Outcome, error) {
	if m.ID == "" {
		m.ID = c.nextID()
	}
	if perr := checkOutgoing(m); perr != nil {
		return allspark.NewSent(m.ID, "", allspark.StatusRejected, perr), nil
	}
	f := clientFrame{ID: m.ID, DestID: m.DestID, DestClientID: m.DestClientID, DestSessionID: m.DestSessionID, MemberID: m.MemberID}
	for _, p := range []struct {
		v   any
		dst *json.RawMessage
	}{{m.Payload, &f.Payload}, {m.Payload1, &f.Payload1}, {m.Payload2, &f.Payload2}} {
		if p.v == nil {
			continue
		}
		b, err := json.Marshal(p.v)
		if err != nil {
			return Outcome{}, fmt.Errorf("encode payload: %w", err)
		}
		*p.dst = b
	}
	b, err := encode(f)
	if err != nil {
		return Outcome{}, err
	}
	w, err := c.connection(ctx)
	if err != nil {
		return Outcome{}, err
	}
	ch := make(chan result, 1)
	w.mu.Lock()
	for w.pending == nil { // that connection just ended: nothing was written, wait for the next
		w.mu.Unlock()
		if w, err = c.connection(ctx); err != nil {
			return Outcome{}, err
		}
		w.mu.Lock()
	}
	if _, dup := w.pending[m.ID]; dup {
		w.mu.Unlock()
		return Outcome{}, fmt.Errorf("send: id %q is already waiting for an answer", m.ID)
	}
	w.pending[m.ID] = ch
	w.mu.Unlock()
	if err := w.enqueue(ctx, b); err != nil {
		w.mu.Lock()
		delete(w.pending, m.ID)
		w.mu.Unlock()
		return Outcome{}, fmt.Errorf("send: %w", err)
	}
	select {
	case r := <-ch:
		return r.out, r.err
	case <-ctx.Done():
		w.mu.Lock()
		delete(w.pending, m.ID)
		w.mu.Unlock()
		return Outcome{}, fmt.Errorf("send: %w", ctx.Err())
	case <-c.stop:
		return Outcome{}, ErrClosed
	}
}

// checkOutgoing validates m as the edge would, with the same codes.
func checkOutgoing(m Outgoing) *allspark.Error {
	if m.DestID == "" && m.DestClientID == "" && m.DestSessionID == "" {
		return allspark.Errorf(allspark.CodeBadFrame, "message needs dest_id, dest_client_id or dest_session_id")
	}
	am := allspark.Message{DestID: m.DestID, DestClientID: m.DestClientID, DestSessionID: m.DestSessionID, MemberID: m.MemberID}
	return am.CheckDest()
}
