// Package push sends APNs and FCM notifications for messages stored for
// offline nodes: it keeps each node's device tokens, and its Worker
// consumes the undelivered-message work queue.
package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/nats-io/nats.go/jetstream"
)

// Platform names a push provider.
type Platform string

const (
	APNs Platform = "apns"
	FCM  Platform = "fcm"
)

const (
	// MaxTokenLen bounds a device token (FCM tokens are ~160 bytes, APNs 64 hex).
	MaxTokenLen = 1024
	// MaxTokensPerNode bounds one node's registrations; the oldest goes first.
	MaxTokensPerNode = 10
)

// Token is one device registration.
type Token struct {
	Platform Platform `json:"platform"`
	Token    string   `json:"token"`
	AddedAt  int64    `json:"added_at"` // Unix ms
}

// ErrBadToken is wrapped by Validate's errors.
var ErrBadToken = errors.New("bad push token")

// Validate checks a registration.
func Validate(p Platform, tok string) error {
	switch {
	case p != APNs && p != FCM:
		return fmt.Errorf("%w: platform must be %q or %q", ErrBadToken, APNs, FCM)
	case tok == "":
		return fmt.Errorf("%w: token is empty", ErrBadToken)
	case len(tok) > MaxTokenLen:
		return fmt.Errorf("%w: token is over %d bytes", ErrBadToken, MaxTokenLen)
	}
	for _, r := range tok {
		if r <= ' ' || r == 0x7f {
			return fmt.Errorf("%w: token has spaces or control characters", ErrBadToken)
		}
	}
	return nil
}

// Tokens stores each node's device tokens in a KV bucket, one value per node.
type Tokens struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// OpenTokens creates or binds the tokens bucket.
func OpenTokens(ctx context.Context, js jetstream.JetStream, subj bus.Subjects, replicas int, now func() time.Time) (*Tokens, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: subj.Prefix() + "_push_tokens", Description: "AllSpark push tokens per node",
		History: 1, Storage: jetstream.FileStorage, Replicas: max(replicas, 1),
	})
	if err != nil {
		return nil, fmt.Errorf("open push tokens bucket: %w", err)
	}
	return &Tokens{kv: kv, now: now}, nil
}

func decodeTokens(b []byte) []Token {
	var ts []Token
	if len(b) > 0 {
		_ = json.Unmarshal(b, &ts)
	}
	return ts
}

// without returns ts minus tok (in a new slice).
func without(ts []Token, tok string) []Token {
	out := make([]Token, 0, len(ts))
	for _, x := range ts {
		if x.Token != tok {
			out = append(out, x)
		}
	}
	return out
}

// Add registers a token for node (again, if it was there: it moves to newest).
func (t *Tokens) Add(ctx context.Context, node string, p Platform, tok string) error {
	if err := Validate(p, tok); err != nil {
		return err
	}
	return bus.UpdateKV(ctx, t.kv, bus.Token(node), func(cur []byte) ([]byte, error) {
		out := without(decodeTokens(cur), tok)
		out = append(out, Token{Platform: p, Token: tok, AddedAt: t.now().UnixMilli()})
		if len(out) > MaxTokensPerNode {
			out = out[len(out)-MaxTokensPerNode:]
		}
		return json.Marshal(out)
	})
}

// Remove forgets a token of node; removing an unknown token is not an error.
func (t *Tokens) Remove(ctx context.Context, node, tok string) error {
	return bus.UpdateKV(ctx, t.kv, bus.Token(node), func(cur []byte) ([]byte, error) {
		ts := decodeTokens(cur)
		out := without(ts, tok)
		if len(out) == len(ts) {
			return nil, bus.ErrNoChange
		}
		return json.Marshal(out)
	})
}

// List returns node's tokens.
func (t *Tokens) List(ctx context.Context, node string) ([]Token, error) {
	e, err := t.kv.Get(ctx, bus.Token(node))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read push tokens: %w", err)
	}
	return decodeTokens(e.Value()), nil
}
