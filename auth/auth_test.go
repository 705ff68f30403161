package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

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
	vt, _, _ := k.MintValidationToken(auth.Identity{NodeID: "alice"}, time.Minute)
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
