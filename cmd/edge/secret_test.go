package main

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/auth"
)

// Generators that start together (the edge and `edge token
// --create-secret`, or two edges on one data dir) end up with one secret:
// exactly one of them creates it, every other returns the same one, and
// the file holds it.
func TestSecretCreationIsAtomic(t *testing.T) {
	const rounds, generators = 20, 16
	for round := range rounds {
		path := filepath.Join(t.TempDir(), "data", "auth_secret")
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			secrets = make([]string, generators)
			created = make([]bool, generators)
			errs    = make([]error, generators)
		)
		for i := range generators {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				secrets[i], created[i], errs[i] = loadOrCreateSecret(path)
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range generators {
			if errs[i] != nil {
				t.Fatalf("round %d generator %d: %v", round, i, errs[i])
			}
			if secrets[i] != secrets[0] {
				t.Fatalf("round %d: generators disagree: %q vs %q", round, secrets[i], secrets[0])
			}
			if created[i] {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d generators say they created the secret, want 1", round, winners)
		}
		b, err := os.ReadFile(path)
		if err != nil || strings.TrimSpace(string(b)) != secrets[0] {
			t.Fatalf("round %d: file holds %q (%v), generators returned %q", round, b, err, secrets[0])
		}
		left, _ := filepath.Glob(filepath.Join(filepath.Dir(path), ".auth_secret-*"))
		if len(left) > 0 {
			t.Fatalf("round %d: temporary files left behind: %v", round, left)
		}
	}
}

// The edge and `edge token --create-secret` started together on a fresh
// data dir: the token is signed with the secret the edge uses.
func TestEdgeAndTokenAgreeWhenStartedTogether(t *testing.T) {
	for round := range 10 {
		dir := t.TempDir()
		cfg, err := loadConfig(envOf(map[string]string{"ALLSPARK_DATA_DIR": dir, "ALLSPARK_LISTEN": "127.0.0.1:0"}))
		if err != nil {
			t.Fatal(err)
		}
		var (
			wg      sync.WaitGroup
			start   = make(chan struct{})
			edgeSec string
			edgeErr error
			tok     strings.Builder
			tokErr  error
		)
		wg.Add(2)
		go func() { defer wg.Done(); <-start; edgeSec, edgeErr = authSecret(cfg, true, nil) }()
		go func() {
			defer wg.Done()
			<-start
			tokErr = run(context.Background(), []string{"token", "--node", "alice", "--create-secret"},
				envOf(map[string]string{"ALLSPARK_DATA_DIR": dir}), &tok)
		}()
		close(start)
		wg.Wait()
		if edgeErr != nil || tokErr != nil {
			t.Fatalf("round %d: edge %v, token %v", round, edgeErr, tokErr)
		}
		keys, err := auth.NewKeys(edgeSec, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := keys.VerifyAuthKey(strings.TrimSpace(tok.String())); err != nil {
			t.Fatalf("round %d: the edge rejects the token minted at the same moment: %v", round, err)
		}
	}
}

// `edge token` does not invent a secret: with a data dir the edge never
// used it says where it looked and what to do, and creates nothing.
func TestTokenRefusesMissingSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "elsewhere")
	env := envOf(map[string]string{"ALLSPARK_DATA_DIR": dir})
	var out strings.Builder
	err := run(context.Background(), []string{"token", "--node", "alice"}, env, &out)
	if err == nil {
		t.Fatalf("token minted with no secret: %q", out.String())
	}
	for _, want := range []string{"ALLSPARK_DATA_DIR=" + dir, secretFile(dir), "--create-secret", "ALLSPARK_AUTH_SECRET"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %s", err, want)
		}
	}
	if _, serr := os.Stat(secretFile(dir)); !errors.Is(serr, fs.ErrNotExist) {
		t.Fatalf("a secret was created: %v", serr)
	}

	// Asked explicitly, it creates one, and uses it again next time.
	if err := run(context.Background(), []string{"token", "--node", "alice", "--create-secret"}, env, &out); err != nil {
		t.Fatal(err)
	}
	saved, err := readSecret(secretFile(dir))
	if err != nil {
		t.Fatal(err)
	}
	out.Reset()
	if err := run(context.Background(), []string{"token", "--node", "bob"}, env, &out); err != nil {
		t.Fatal(err)
	}
	keys, _ := auth.NewKeys(saved, time.Now)
	if id, _, err := keys.VerifyAuthKey(strings.TrimSpace(out.String())); err != nil || id.NodeID != "bob" {
		t.Fatalf("token not signed with the saved secret: %v %+v", err, id)
	}
}

// A secret file that holds no usable secret is reported, not replaced:
// replacing it would silently invalidate whatever was minted with it.
func TestCorruptSecretIsAnError(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(secretFile(dir), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, _, err := loadOrCreateSecret(secretFile(dir))
	if err == nil || !strings.Contains(err.Error(), secretFile(dir)) {
		t.Fatalf("err = %v", err)
	}
	if b, _ := os.ReadFile(secretFile(dir)); string(b) != "short\n" {
		t.Fatalf("file replaced: %q", b)
	}
}
