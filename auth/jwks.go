package auth

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// AsymmetricAlgs are the auth_key algorithms accepted with a JWKS file.
var asymmetricAlgs = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

// jwksRecheck is how often a verification may look at the JWKS file for a
// change: often enough that a rotated key takes effect within seconds, rare
// enough that a flood of connections costs no more than one stat a second.
const jwksRecheck = time.Second

// jwksFile holds the public keys of a JWKS file and reloads them when the
// file changes. A file that turns unreadable or invalid keeps the last good
// keys in force: a botched rotation must not lock every user out.
type jwksFile struct {
	path string
	now  func() time.Time
	log  *slog.Logger // may be nil

	mu      sync.Mutex
	keys    keyfunc.Keyfunc // guarded by mu
	checked time.Time       // guarded by mu: last look at the file
	modTime time.Time       // guarded by mu: of the file the keys came from
	size    int64           // guarded by mu
	lastErr error           // guarded by mu: the last reload failure, until one succeeds
}

func openJWKS(path string, now func() time.Time, log *slog.Logger) (*jwksFile, error) {
	j := &jwksFile{path: path, now: now, log: log}
	if err := j.reload(); err != nil {
		return nil, err
	}
	return j, nil
}

// reload reads the file if it changed since the keys were loaded.
// Called with j.mu held, or before j is shared.
func (j *jwksFile) reload() error {
	fi, err := os.Stat(j.path)
	if err != nil {
		return fmt.Errorf("read JWKS file: %w", err)
	}
	if j.keys != nil && fi.ModTime().Equal(j.modTime) && fi.Size() == j.size {
		return nil
	}
	raw, err := os.ReadFile(j.path)
	if err != nil {
		return fmt.Errorf("read JWKS file: %w", err)
	}
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(raw, &set); err != nil || len(set.Keys) == 0 {
		return fmt.Errorf("JWKS file %s: want a JSON object with a non-empty \"keys\" array", j.path)
	}
	keys, err := keyfunc.NewJWKSetJSON(raw)
	if err != nil {
		return fmt.Errorf("JWKS file %s: %w", j.path, err)
	}
	j.keys, j.modTime, j.size = keys, fi.ModTime(), fi.Size()
	return nil
}

// keyfunc picks the public key for t, reloading the file first when it is
// time to look at it again.
func (j *jwksFile) keyfunc(t *jwt.Token) (any, error) {
	j.mu.Lock()
	if now := j.now(); now.Sub(j.checked) >= jwksRecheck {
		j.checked = now
		err := j.reload()
		if err != nil && (j.lastErr == nil || err.Error() != j.lastErr.Error()) && j.log != nil {
			j.log.Warn("JWKS file unusable; the last good keys stay in force", "path", j.path, "err", err)
		}
		j.lastErr = err
	}
	keys := j.keys
	j.mu.Unlock()
	return keys.Keyfunc(t)
}

// ReloadError is the last failure to reload the JWKS file, nil when the
// keys in force match the file (or no JWKS file is used). Each new failure
// is also logged, with the logger given to WithJWKSFile.
func (k *Keys) ReloadError() error {
	if k.jwks == nil {
		return nil
	}
	k.jwks.mu.Lock()
	defer k.jwks.mu.Unlock()
	return k.jwks.lastErr
}
