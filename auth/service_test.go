package auth_test

import (
	"errors"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/golang-jwt/jwt/v5"
)

// Issue 14, bad input: an auth_key whose sub is a service id is refused
// unless it carries the svc claim.
func TestServiceIDNeedsSvcClaim(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	k := newKeys(t, &now)
	sign := func(c jwt.MapClaims) string {
		s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	exp := now.Add(time.Hour).Unix()
	plain, _ := k.MintAuthKey(auth.Identity{NodeID: "svc:matchmaker"}, time.Hour)
	for name, tok := range map[string]string{
		"minted by the edge": plain,
		"no claim":           sign(jwt.MapClaims{"sub": "svc:matchmaker", "exp": exp}),
		"claim false":        sign(jwt.MapClaims{"sub": "svc:matchmaker", "exp": exp, "svc": false}),
	} {
		if _, _, err := k.VerifyAuthKey(tok); !errors.Is(err, auth.ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	id, _, err := k.VerifyAuthKey(sign(jwt.MapClaims{"sub": "svc:matchmaker", "exp": exp, "svc": true}))
	if err != nil || id.NodeID != "svc:matchmaker" {
		t.Fatalf("key with svc claim: %+v %v", id, err)
	}
	// "svc:" alone and ids merely containing it are not service ids.
	for _, node := range []string{"svc:", "my-svc:x"} {
		tok, _ := k.MintAuthKey(auth.Identity{NodeID: node}, time.Hour)
		if _, _, err := k.VerifyAuthKey(tok); err != nil {
			t.Errorf("%q: %v", node, err)
		}
	}
}
