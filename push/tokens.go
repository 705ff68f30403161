// Package push sends APNs and FCM notifications for messages stored for
// offline nodes: it keeps each node's device tokens, and its Worker
// consumes the undelivered-message work queue.
package push

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
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

// ErrTokenTaken is returned by Register for a token registered by another
// client: a device token names one app install, and letting any client
// claim it would let one user receive another's notifications.
var ErrTokenTaken = errors.New("push token registered by another client")

// tokenOwner is who registered a token: the client (the app user) and the
// node (the device) whose list holds it.
type tokenOwner struct {
	ClientID string `json:"client_id"`
	NodeID   string `json:"node_id"`
}

// ownerKey is the bucket key of tok's owner record. Node keys are base64url
// and never contain '.', so the two kinds of key cannot collide; the hash
// keeps the key short and valid whatever the token holds.
func ownerKey(tok string) string {
	sum := sha256.Sum256([]byte(tok))
	return "owner." + hex.EncodeToString(sum[:])
}

// ownerOf names a registrant: its client id, or the node itself when the
// key has no client id, so two such nodes never count as one client.
func ownerOf(client, node string) string {
	if client == "" {
		return "node:" + node
	}
	return client
}

// Register registers tok for node of client. A token held by another
// client is refused with ErrTokenTaken (that client must remove it first);
// one held by another node of the same client moves to node, as when a
// user reinstalls the app on the same device. Registering again makes the
// token node's newest.
func (t *Tokens) Register(ctx context.Context, client, node string, p Platform, tok string) error {
	if err := Validate(p, tok); err != nil {
		return err
	}
	who := ownerOf(client, node)
	var prev string
	err := bus.UpdateKV(ctx, t.kv, ownerKey(tok), func(cur []byte) ([]byte, error) {
		prev = ""
		var o tokenOwner
		if len(cur) > 0 && json.Unmarshal(cur, &o) == nil {
			switch {
			case o.ClientID != who:
				return nil, ErrTokenTaken
			case o.NodeID == node:
				return nil, bus.ErrNoChange
			}
			prev = o.NodeID
		}
		return json.Marshal(tokenOwner{ClientID: who, NodeID: node})
	})
	if err != nil {
		return fmt.Errorf("claim push token: %w", err)
	}
	if prev != "" {
		if err := t.removeFromNode(ctx, prev, tok); err != nil {
			return err
		}
	}
	evicted, err := t.addToNode(ctx, node, p, tok)
	if err != nil {
		return err
	}
	for _, x := range evicted {
		t.release(ctx, node, x.Token)
	}
	return nil
}

// Add puts a token in node's list without claiming it: for tools and tests
// that seed a bucket. Clients register through Register.
func (t *Tokens) Add(ctx context.Context, node string, p Platform, tok string) error {
	if err := Validate(p, tok); err != nil {
		return err
	}
	_, err := t.addToNode(ctx, node, p, tok)
	return err
}

// addToNode puts tok in node's list as its newest and returns the tokens
// that fell off the end.
func (t *Tokens) addToNode(ctx context.Context, node string, p Platform, tok string) ([]Token, error) {
	var evicted []Token
	err := bus.UpdateKV(ctx, t.kv, bus.Token(node), func(cur []byte) ([]byte, error) {
		out := without(decodeTokens(cur), tok)
		out = append(out, Token{Platform: p, Token: tok, AddedAt: t.now().UnixMilli()})
		evicted = nil
		if len(out) > MaxTokensPerNode {
			evicted = append(evicted, out[:len(out)-MaxTokensPerNode]...)
			out = out[len(out)-MaxTokensPerNode:]
		}
		return json.Marshal(out)
	})
	if err != nil {
		return nil, fmt.Errorf("add push token: %w", err)
	}
	return evicted, nil
}

// Remove forgets a token of node, and its claim; removing an unknown token
// is not an error.
func (t *Tokens) Remove(ctx context.Context, node, tok string) error {
	if err := t.removeFromNode(ctx, node, tok); err != nil {
		return err
	}
	t.release(ctx, node, tok)
	return nil
}

func (t *Tokens) removeFromNode(ctx context.Context, node, tok string) error {
	err := bus.UpdateKV(ctx, t.kv, bus.Token(node), func(cur []byte) ([]byte, error) {
		ts := decodeTokens(cur)
		out := without(ts, tok)
		if len(out) == len(ts) {
			return nil, bus.ErrNoChange
		}
		return json.Marshal(out)
	})
	if err != nil {
		return fmt.Errorf("remove push token: %w", err)
	}
	return nil
}

// release drops tok's claim if node holds it. Best effort: a claim left
// behind only keeps other clients from the token until it is registered
// again by its client and removed.
func (t *Tokens) release(ctx context.Context, node, tok string) {
	e, err := t.kv.Get(ctx, ownerKey(tok))
	if err != nil {
		return
	}
	var o tokenOwner
	if json.Unmarshal(e.Value(), &o) != nil || o.NodeID != node {
		return
	}
	_ = t.kv.Delete(ctx, ownerKey(tok), jetstream.LastRevision(e.Revision()))
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
