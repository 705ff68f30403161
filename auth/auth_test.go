package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/golang-jwt/jwt/v5"
)

const secret = "0123456789abcdef-test-secret"

func newKeys(t *testing.T, now *time.Time) *auth.Keys {
	t.Helper()
	k, err := auth.NewKeys(secret, func() time.Time { return *now })
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestAuthKeyRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeys(t, &now)
	tok, err := k.MintAuthKey(auth.Identity{NodeID: "alice.phone *>", ClientID: "acme-7"}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id, exp, err := k.VerifyAuthKey(tok)
	if err != nil {
		t.Fatal(err)
	}
	if id.NodeID != "alice.phone *>" || id.ClientID != "acme-7" || !exp.Equal(now.Add(time.Hour)) {
		t.Fatalf("got %+v exp %v", id, exp)
	}
}

func TestClientIDDefaultsToNodeID(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeys(t, &now)
	tok, _ := k.MintAuthKey(auth.Identity{NodeID: "bob"}, time.Hour)
	id, _, err := k.VerifyAuthKey(tok)
	if err != nil || id.ClientID != "bob" {
		t.Fatalf("id %+v err %v", id, err)
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeys(t, &now)
	other, _ := auth.NewKeys("another-secret-of-enough-length", func() time.Time { return now })
	good, _ := k.MintAuthKey(auth.Identity{NodeID: "alice"}, time.Minute)
	forged, _ := other.MintAuthKey(auth.Identity{NodeID: "alice"}, time.Minute)
	vt, _, _ := k.MintValidationToken(auth.Identity{NodeID: "alice"}, time.Minute, now.Add(time.Hour))
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice"}).SignedString([]byte(secret))
	noSub, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"exp": now.Add(time.Hour).Unix()}).SignedString([]byte(secret))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)

	cases := []struct {
		name string
		tok  string
		want error
	}{
		{"empty", "", auth.ErrInvalid},
		{"garbage", "not-a-jwt", auth.ErrInvalid},
		{"forged", forged, auth.ErrInvalid},
		{"validation token as auth key", vt, auth.ErrInvalid},
		{"no exp", noExp, auth.ErrInvalid},
		{"no sub", noSub, auth.ErrInvalid},
		{"alg none", none, auth.ErrInvalid},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if _, _, err := k.VerifyAuthKey(c.tok); !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
	t.Run("auth key as validation token", func(t *testing.T) {
		if _, _, err := k.VerifyValidationToken(good); !errors.Is(err, auth.ErrInvalid) {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		later := now.Add(2 * time.Minute)
		k2, _ := auth.NewKeys(secret, func() time.Time { return later })
		if _, _, err := k2.VerifyAuthKey(good); !errors.Is(err, auth.ErrExpired) {
			t.Fatalf("err = %v", err)
		}
	})
}

// A validation token never outlives its auth_key, and it tells the edge
// when the key expires, so a connection it admits ends by then.
func TestValidationTokenBoundByKey(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeys(t, &now)
	alice := auth.Identity{NodeID: "alice"}
	cases := []struct {
		name           string
		ttl, keyLeft   time.Duration
		wantExp, wantK time.Duration // token exp and reported key expiry, from now
	}{
		{"key outlives token", time.Minute, time.Hour, time.Minute, time.Hour},
		{"key expires first", time.Minute, 10 * time.Second, 10 * time.Second, 10 * time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tok, exp, err := k.MintValidationToken(alice, c.ttl, now.Add(c.keyLeft))
			if err != nil {
				t.Fatal(err)
			}
			if !exp.Equal(now.Add(c.wantExp)) {
				t.Fatalf("token expires at +%s, want +%s", exp.Sub(now), c.wantExp)
			}
			_, keyExp, err := k.VerifyValidationToken(tok)
			if err != nil || !keyExp.Equal(now.Add(c.wantK)) {
				t.Fatalf("key expiry +%s (err %v), want +%s", keyExp.Sub(now), err, c.wantK)
			}
		})
	}
	if _, _, err := k.MintValidationToken(alice, time.Minute, time.Time{}); err == nil {
		t.Fatal("a validation token was minted without its key's expiry")
	}
	if _, _, err := k.MintValidationToken(alice, time.Minute, now.Add(-time.Second)); err == nil {
		t.Fatal("a validation token was minted for an expired key")
	}
}

func TestShortSecretRefused(t *testing.T) {
	if _, err := auth.NewKeys("short", time.Now); err == nil {
		t.Fatal("short secret accepted")
	}
}

// The edge tells a missing key ("auth_key missing") from a bad one by this
// error: ErrInvalid ending in ": empty". A token sent without the Bearer
// scheme never gets here; the edge answers that itself.
func TestEmptyTokenIsInvalidEmpty(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeys(t, &now)
	for _, verify := range []func(string) (auth.Identity, time.Time, error){k.VerifyAuthKey, k.VerifyValidationToken} {
		_, _, err := verify("")
		if !errors.Is(err, auth.ErrInvalid) || err.Error() != "invalid token: empty" {
			t.Fatalf("err = %v", err)
		}
	}
}
