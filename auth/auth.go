// Package auth mints and verifies the two credentials of the protocol:
// the auth_key an application backend mints for a node, and the short-lived
// validation_token an edge hands out in pre-connection info.
package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/golang-jwt/jwt/v5"
)

var (
	// ErrInvalid: the token is missing, malformed, forged or names no valid node.
	ErrInvalid = errors.New("invalid token")
	// ErrExpired: the token was valid but its exp has passed.
	ErrExpired = errors.New("token expired")
)

// MinSecretLen is the shortest shared secret accepted. HS256 with a short
// secret can be brute-forced offline from any token a client holds.
const MinSecretLen = 16

// Identity is who a credential speaks for.
type Identity struct {
	NodeID   string
	ClientID string
}

type claims struct {
	ClientID string `json:"cid,omitempty"`
	Kind     string `json:"knd,omitempty"` // "vt" on validation tokens; absent on auth keys
	// KeyExp, on validation tokens only, is the expiry of the auth_key the
	// token was minted for. A connection opened with the token must end by
	// then: the token admits a connection, the key bounds its life.
	KeyExp *jwt.NumericDate `json:"kex,omitempty"`
	// Service, on auth_keys, allows a sub in the service namespace (svc:...).
	// Without it such a key is refused: a device must not receive, or send
	// as, a backend service's id.
	Service bool `json:"svc,omitempty"`
	jwt.RegisteredClaims
}

const kindValidation = "vt"

// Keys mints and verifies tokens with one shared secret. Validation tokens are
// signed with a key derived from it, so an auth_key can never pass as a
// validation token (nor the reverse) even though both are HS256 JWTs.
//
// With a JWKS file (WithJWKSFile), auth_keys are instead signed by the
// application's private key (RS*, PS*, ES*, EdDSA) and verified with the
// public keys in the file; the secret then only signs validation tokens,
// so an edge holds nothing that can mint an auth_key.
type Keys struct {
	authKey []byte
	valKey  []byte
	now     func() time.Time
	jwks    *jwksFile // nil: auth_keys are HS256 with the secret
}

// Option configures Keys.
type Option func(*Keys) error

// WithJWKSFile verifies auth_keys with the public keys of the JWKS file at
// path, reloaded when the file changes, instead of the shared secret. A
// reload that fails keeps the last good keys and is logged to log (which
// may be nil).
func WithJWKSFile(path string, log *slog.Logger) Option {
	return func(k *Keys) error {
		j, err := openJWKS(path, k.now, log)
		if err != nil {
			return err
		}
		k.jwks = j
		return nil
	}
}

// NewKeys returns Keys for secret (its UTF-8 bytes as given). now is the clock.
func NewKeys(secret string, now func() time.Time, opts ...Option) (*Keys, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("auth secret must be at least %d bytes, got %d", MinSecretLen, len(secret))
	}
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("allspark validation token v1"))
	k := &Keys{authKey: []byte(secret), valKey: mac.Sum(nil), now: now}
	for _, o := range opts {
		if err := o(k); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// ErrCannotMint: with a JWKS file, auth_keys are signed by the application's
// private key, which an edge never holds.
var ErrCannotMint = errors.New("auth_keys are verified with a JWKS file: sign them with your private key, not the edge")

// MintAuthKey signs an auth_key for id valid for ttl. Applications normally
// mint these in their own backend; this serves `edge token` and tests.
func (k *Keys) MintAuthKey(id Identity, ttl time.Duration) (string, error) {
	if k.jwks != nil {
		return "", ErrCannotMint
	}
	tok, _, err := k.mint(k.authKey, id, k.now().Add(ttl), claims{})
	return tok, err
}

// MintValidationToken signs a validation token for id, valid for ttl but
// never past keyExp, the expiry of the auth_key it was minted for, and
// returns its expiry.
func (k *Keys) MintValidationToken(id Identity, ttl time.Duration, keyExp time.Time) (string, time.Time, error) {
	if keyExp.IsZero() || ttl <= 0 {
		return "", time.Time{}, fmt.Errorf("mint validation token: need a positive ttl (got %s) and the auth_key's expiry", ttl)
	}
	exp := k.now().Add(ttl)
	if keyExp.Before(exp) {
		exp = keyExp
	}
	return k.mint(k.valKey, id, exp, claims{Kind: kindValidation, KeyExp: jwt.NewNumericDate(keyExp)})
}

// VerifyAuthKey checks an auth_key and returns its identity and expiry.
// ClientID defaults to NodeID when the token has no cid.
func (k *Keys) VerifyAuthKey(tok string) (Identity, time.Time, error) {
	key, algs := secretKey(k.authKey), []string{jwt.SigningMethodHS256.Alg()}
	if k.jwks != nil {
		key, algs = k.jwks.keyfunc, asymmetricAlgs
	}
	id, c, err := k.verify(key, algs, tok, "")
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if allspark.IsServiceID(id.NodeID) && !c.Service {
		return Identity{}, time.Time{}, fmt.Errorf("%w: sub %q is a service id and the key has no svc claim", ErrInvalid, id.NodeID)
	}
	return id, c.ExpiresAt.Time, nil
}

// VerifyValidationToken checks a validation token minted by
// MintValidationToken. It returns the expiry of the auth_key the token was
// minted for: a connection the token admits must end by then.
func (k *Keys) VerifyValidationToken(tok string) (Identity, time.Time, error) {
	id, c, err := k.verify(secretKey(k.valKey), []string{jwt.SigningMethodHS256.Alg()}, tok, kindValidation)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if c.KeyExp == nil {
		return Identity{}, time.Time{}, fmt.Errorf("%w: no auth_key expiry (kex)", ErrInvalid)
	}
	return id, c.KeyExp.Time, nil
}

// mint signs c, completed with id and exp, with key.
func (k *Keys) mint(key []byte, id Identity, exp time.Time, c claims) (string, time.Time, error) {
	if !allspark.ValidID(id.NodeID) {
		return "", time.Time{}, fmt.Errorf("mint token: invalid node id %q", id.NodeID)
	}
	if id.ClientID != "" && !allspark.ValidID(id.ClientID) {
		return "", time.Time{}, fmt.Errorf("mint token: invalid client id %q", id.ClientID)
	}
	now := k.now()
	if !exp.After(now) {
		return "", time.Time{}, fmt.Errorf("mint token: expiry %s is not in the future", exp.UTC().Format(time.RFC3339))
	}
	c.ClientID = id.ClientID
	c.RegisteredClaims = jwt.RegisteredClaims{
		Subject:   id.NodeID,
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(exp),
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	// exp is encoded with second precision; report what the token says.
	return s, exp.Truncate(time.Second), nil
}

func secretKey(b []byte) jwt.Keyfunc { return func(*jwt.Token) (any, error) { return b, nil } }

// verify checks tok's signature with key, accepting only algs, and its
// claims for a token of kind.
func (k *Keys) verify(key jwt.Keyfunc, algs []string, tok string, kind string) (Identity, claims, error) {
	if tok == "" {
		return Identity{}, claims{}, fmt.Errorf("%w: empty", ErrInvalid)
	}
	var c claims
	_, err := jwt.ParseWithClaims(tok, &c, key,
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(k.now),
	)
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return Identity{}, claims{}, ErrExpired
	case err != nil:
		return Identity{}, claims{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	case c.Kind != kind:
		return Identity{}, claims{}, fmt.Errorf("%w: wrong token kind", ErrInvalid)
	case !allspark.ValidID(c.Subject):
		return Identity{}, claims{}, fmt.Errorf("%w: sub is not a valid node id", ErrInvalid)
	case c.ClientID != "" && !allspark.ValidID(c.ClientID):
		return Identity{}, claims{}, fmt.Errorf("%w: cid is not a valid client id", ErrInvalid)
	}
	id := Identity{NodeID: c.Subject, ClientID: c.ClientID}
	if id.ClientID == "" {
		id.ClientID = id.NodeID
	}
	return id, c, nil
}
