package auth_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/allspark-rt/allspark/auth"
	"github.com/golang-jwt/jwt/v5"
)

type signer struct {
	kid    string
	method jwt.SigningMethod
	priv   crypto.Signer
}

func newSigners(t *testing.T) []signer {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ek, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, dk, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []signer{{"rsa-1", jwt.SigningMethodRS256, rk}, {"ec-1", jwt.SigningMethodES256, ek}, {"ed-1", jwt.SigningMethodEdDSA, dk}}
}

// writeJWKS writes the public halves of signers as a JWKS file.
func writeJWKS(t *testing.T, path string, signers ...signer) {
	t.Helper()
	set := jwkset.JWKSMarshal{}
	for _, s := range signers {
		jwk, err := jwkset.NewJWKFromKey(s.priv.Public(), jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: s.kid, ALG: jwkset.ALG(s.method.Alg())}})
		if err != nil {
			t.Fatal(err)
		}
		set.Keys = append(set.Keys, jwk.Marshal())
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

func (s signer) mint(t *testing.T, node string, exp time.Time) string {
	t.Helper()
	tok := jwt.NewWithClaims(s.method, jwt.MapClaims{"sub": node, "exp": exp.Unix()})
	tok.Header["kid"] = s.kid
	out, err := tok.SignedString(s.priv)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Asymmetric auth_keys: RS256, ES256 and EdDSA keys from a JWKS file are
// accepted; HS256 keys, unknown keys and alg confusion are not; a rotated
// file takes effect without a restart; a broken file keeps the last good keys.
func TestJWKSAuthKeys(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	clock := func() time.Time { return now }
	path := filepath.Join(t.TempDir(), "jwks.json")
	signers := newSigners(t)
	writeJWKS(t, path, signers...)
	var logged bytes.Buffer
	k, err := auth.NewKeys(secret, clock, auth.WithJWKSFile(path, slog.New(slog.NewTextHandler(&logged, nil))))
	if err != nil {
		t.Fatal(err)
	}
	exp := now.Add(time.Hour)
	for _, s := range signers {
		id, gotExp, err := k.VerifyAuthKey(s.mint(t, "alice-"+s.kid, exp))
		if err != nil || id.NodeID != "alice-"+s.kid || !gotExp.Equal(exp) {
			t.Fatalf("%s: id %+v exp %v err %v", s.method.Alg(), id, gotExp, err)
		}
	}

	hsKeys, _ := auth.NewKeys(secret, clock)
	hsKey, _ := hsKeys.MintAuthKey(auth.Identity{NodeID: "alice"}, time.Hour)
	stranger := newSigners(t)[1]
	stranger.kid = "ec-1" // a known kid, another key
	rsaPub, _ := json.Marshal(signers[0].priv.Public())
	confused := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": exp.Unix()})
	confused.Header["kid"] = "rsa-1"
	confusedTok, _ := confused.SignedString(rsaPub)
	for name, tok := range map[string]string{
		"HS256 with the shared secret":    hsKey,
		"a key not in the file":           stranger.mint(t, "alice", exp),
		"HS256 keyed with the RSA key":    confusedTok,
		"expired":                         signers[0].mint(t, "alice", now.Add(-time.Minute)),
		"RS256 token claiming the EC kid": signer{"ec-1", jwt.SigningMethodRS256, signers[0].priv}.mint(t, "alice", exp),
	} {
		if _, _, err := k.VerifyAuthKey(tok); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := k.MintAuthKey(auth.Identity{NodeID: "alice"}, time.Hour); !errors.Is(err, auth.ErrCannotMint) {
		t.Errorf("an edge minted an auth_key in JWKS mode: %v", err)
	}

	// Rotation: the RSA key is replaced; after the recheck interval the old
	// one is refused and the new one accepted.
	old := signers[0].mint(t, "alice", exp)
	rotated := newSigners(t)[0]
	rotated.kid = "rsa-2"
	writeJWKS(t, path, rotated, signers[1], signers[2])
	now = now.Add(2 * time.Second)
	if _, _, err := k.VerifyAuthKey(rotated.mint(t, "alice", exp)); err != nil {
		t.Fatalf("rotated key refused: %v", err)
	}
	if _, _, err := k.VerifyAuthKey(old); err == nil {
		t.Fatal("a key removed from the file is still accepted")
	}

	// A broken file keeps the keys in force and reports why.
	if err := os.WriteFile(path, []byte(`{"keys":[`), 0o600); err != nil {
		t.Fatal(err)
	}
	now = now.Add(2 * time.Second)
	if _, _, err := k.VerifyAuthKey(rotated.mint(t, "alice", exp)); err != nil {
		t.Fatalf("a broken JWKS file locked users out: %v", err)
	}
	if k.ReloadError() == nil || !strings.Contains(logged.String(), "JWKS file unusable") {
		t.Fatalf("a broken JWKS file is not reported (log: %q)", logged.String())
	}
}

func TestJWKSFileRequiredValid(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{"not json": "nope", "no keys": `{"keys":[]}`, "bad key": `{"keys":[{"kty":"RSA","n":"x"}]}`} {
		path := filepath.Join(dir, name)
		_ = os.WriteFile(path, []byte(content), 0o600)
		if _, err := auth.NewKeys(secret, time.Now, auth.WithJWKSFile(path, nil)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := auth.NewKeys(secret, time.Now, auth.WithJWKSFile(filepath.Join(dir, "missing"), nil)); err == nil {
		t.Error("missing file accepted")
	}
}
