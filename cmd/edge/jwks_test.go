package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

// ALLSPARK_AUTH_JWKS_FILE switches auth_keys to the application's
// asymmetric keys: they verify, HS256 keys minted with the secret do not,
// and nothing on the edge can mint one.
func TestAuthJWKSFile(t *testing.T) {
	dir := t.TempDir()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := jwkset.NewJWKFromKey(pub, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "app-1"}})
	if err != nil {
		t.Fatal(err)
	}
	set, _ := json.Marshal(jwkset.JWKSMarshal{Keys: []jwkset.JWKMarshal{jwk.Marshal()}})
	path := filepath.Join(dir, "jwks.json")
	if err := os.WriteFile(path, set, 0o600); err != nil {
		t.Fatal(err)
	}
	const secret = "a-configured-secret-0123456789"
	env := map[string]string{"ALLSPARK_DATA_DIR": dir, "ALLSPARK_AUTH_SECRET": secret, "ALLSPARK_AUTH_JWKS_FILE": path, "ALLSPARK_LISTEN": "127.0.0.1:0"}
	cfg, err := loadConfig(envOf(env))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := newKeys(cfg, secret, nil)
	if err != nil {
		t.Fatal(err)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()})
	tok.Header["kid"] = "app-1"
	signed, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	if id, _, err := keys.VerifyAuthKey(signed); err != nil || id.NodeID != "alice" {
		t.Fatalf("EdDSA auth_key: %+v %v", id, err)
	}
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix()}).SignedString([]byte(secret))
	if _, _, err := keys.VerifyAuthKey(hs); err == nil {
		t.Fatal("an HS256 auth_key signed with the shared secret is accepted in JWKS mode")
	}

	err = run(context.Background(), []string{"token", "--node", "alice"}, envOf(env), io.Discard)
	if err == nil || !strings.Contains(err.Error(), "private key") {
		t.Fatalf("edge token in JWKS mode: %v", err)
	}
	env["ALLSPARK_DEV_TOKENS"] = "true"
	if _, err := loadConfig(envOf(env)); err == nil || !strings.Contains(err.Error(), "ALLSPARK_DEV_TOKENS") {
		t.Fatalf("dev tokens with a JWKS file: %v", err)
	}
	// Nor does the all-in-one mode turn them on by default with a JWKS file.
	devEnv := map[string]string{"ALLSPARK_DATA_DIR": dir, "ALLSPARK_AUTH_JWKS_FILE": path, "ALLSPARK_LISTEN": "127.0.0.1:0"}
	if cfg, err := loadConfig(envOf(devEnv)); err != nil || cfg.DevTokens {
		t.Fatalf("all-in-one with a JWKS file: dev tokens %v, err %v", cfg.DevTokens, err)
	}
	env["ALLSPARK_DEV_TOKENS"] = ""
	env["ALLSPARK_AUTH_JWKS_FILE"] = filepath.Join(dir, "missing.json")
	cfg, _ = loadConfig(envOf(env))
	if _, err := newKeys(cfg, secret, nil); err == nil || !strings.Contains(err.Error(), "ALLSPARK_AUTH_JWKS_FILE") {
		t.Fatalf("a missing JWKS file: %v", err)
	}
}
