package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/allspark-rt/allspark"
	"github.com/golang-jwt/jwt/v5"
)

const fuzzSecret = "fuzz-secret-0123456789abcdef"

// fuzzKeys have a fixed clock, so a seed minted now stays valid as long
// as the fuzzer runs.
func fuzzKeys(f *testing.F) *Keys {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	k, err := NewKeys(fuzzSecret, func() time.Time { return at })
	if err != nil {
		f.Fatal(err)
	}
	return k
}

// signedBy reports whether tok's signature is HS256 of its first two
// segments under key: what "signed by the key" means, checked without the
// JWT library.
func signedBy(tok string, key []byte) bool {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return false
	}
	sig, err := base64.RawURLEncoding.DecodeString(tok[i+1:])
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(tok[:i]))
	return hmac.Equal(sig, mac.Sum(nil))
}

// fuzzSeeds are real tokens of both kinds, from the fuzzed key and from
// another one, plus classic forgeries (alg none, a swapped kind).
func fuzzSeeds(f *testing.F, k *Keys) {
	other, err := NewKeys("another-secret-0123456789", k.now)
	if err != nil {
		f.Fatal(err)
	}
	for _, kk := range []*Keys{k, other} {
		for _, id := range []Identity{{NodeID: "alice"}, {NodeID: "bob", ClientID: "bob-phone"}, {NodeID: "ünï code"}} {
			ak, err := kk.MintAuthKey(id, time.Hour)
			if err != nil {
				f.Fatal(err)
			}
			vt, _, err := kk.MintValidationToken(id, time.Minute, k.now().Add(time.Hour))
			if err != nil {
				f.Fatal(err)
			}
			f.Add(ak)
			f.Add(vt)
		}
	}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": k.now().Add(time.Hour).Unix()}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	f.Add(none)
	f.Add("")
	f.Add("a.b.c")
	f.Add("eyJhbGciOiJIUzI1NiJ9.e30.")
}

// checkAccepted: an accepted token was signed by key and names valid ids,
// and does not pass as the other kind.
func checkAccepted(t *testing.T, tok string, key []byte, id Identity, exp time.Time) {
	if !signedBy(tok, key) {
		t.Fatalf("accepted %q, which is not signed by the key", tok)
	}
	if !allspark.ValidID(id.NodeID) || !allspark.ValidID(id.ClientID) {
		t.Fatalf("accepted %q with invalid identity %+v", tok, id)
	}
	if exp.IsZero() {
		t.Fatalf("accepted %q with no expiry", tok)
	}
}

func FuzzVerifyAuthKey(f *testing.F) {
	k := fuzzKeys(f)
	fuzzSeeds(f, k)
	f.Fuzz(func(t *testing.T, tok string) {
		id, exp, err := k.VerifyAuthKey(tok)
		if err != nil {
			return
		}
		checkAccepted(t, tok, k.authKey, id, exp)
		if !exp.After(k.now()) {
			t.Fatalf("accepted %q, expired at %s", tok, exp)
		}
		if _, _, err := k.VerifyValidationToken(tok); err == nil {
			t.Fatalf("%q passes as both an auth_key and a validation token", tok)
		}
	})
}

func FuzzVerifyValidationToken(f *testing.F) {
	k := fuzzKeys(f)
	fuzzSeeds(f, k)
	f.Fuzz(func(t *testing.T, tok string) {
		id, keyExp, err := k.VerifyValidationToken(tok)
		if err != nil {
			return
		}
		checkAccepted(t, tok, k.valKey, id, keyExp)
		if _, _, err := k.VerifyAuthKey(tok); err == nil {
			t.Fatalf("%q passes as both a validation token and an auth_key", tok)
		}
	})
}
