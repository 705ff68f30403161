package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/allspark-rt/allspark/auth"
	"github.com/allspark-rt/allspark/internal/secretfile"
)

// secretFile is where the all-in-one edge keeps its generated secret.
func secretFile(dataDir string) string { return filepath.Join(dataDir, "auth_secret") }

// authSecret returns the configured secret. In the all-in-one mode an
// unset secret is read from DATA_DIR, so restarts and `edge token` agree; a
// cluster must be given one explicitly.
//
// Only when create is set is a missing secret generated. The edge sets it;
// `edge token` only with --create-secret, because a token minted with a
// fresh secret (typically: another ALLSPARK_DATA_DIR than the edge's) would
// be rejected by the edge with nothing saying why.
func authSecret(cfg config, create bool, log *slog.Logger) (string, error) {
	if cfg.AuthSecret != "" {
		if len(cfg.AuthSecret) < auth.MinSecretLen {
			return "", fmt.Errorf("ALLSPARK_AUTH_SECRET: must be at least %d bytes", auth.MinSecretLen)
		}
		return cfg.AuthSecret, nil
	}
	if !cfg.embedded() {
		return "", errors.New("ALLSPARK_AUTH_SECRET: required when ALLSPARK_NATS_URL is set (every edge must share it)")
	}
	path := secretFile(cfg.DataDir)
	if !create {
		s, err := readSecret(path)
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no development secret at %s (ALLSPARK_DATA_DIR=%s): the edge generates it on its first start; "+
				"use the edge's ALLSPARK_DATA_DIR, set ALLSPARK_AUTH_SECRET, or pass --create-secret to generate it now", path, cfg.DataDir)
		}
		return s, err
	}
	s, created, err := loadOrCreateSecret(path)
	if err != nil {
		return "", err
	}
	if log != nil {
		if created {
			log.Warn("!!! ALLSPARK_AUTH_SECRET is not set: GENERATED a development secret and saved it to " + path + ". Set ALLSPARK_AUTH_SECRET in production. !!!")
		} else {
			log.Warn("ALLSPARK_AUTH_SECRET is not set: using the development secret kept in " + path + "; set it in production")
		}
	}
	return s, nil
}

// newKeys builds the edge's credentials from secret and, when configured,
// the JWKS file that verifies auth_keys.
func newKeys(cfg config, secret string, log *slog.Logger) (*auth.Keys, error) {
	var opts []auth.Option
	if cfg.AuthJWKSFile != "" {
		opts = append(opts, auth.WithJWKSFile(cfg.AuthJWKSFile, log))
	}
	keys, err := auth.NewKeys(secret, time.Now, opts...)
	if err != nil {
		if cfg.AuthJWKSFile != "" {
			return nil, fmt.Errorf("ALLSPARK_AUTH_SECRET or ALLSPARK_AUTH_JWKS_FILE=%s: %w", cfg.AuthJWKSFile, err)
		}
		return nil, fmt.Errorf("ALLSPARK_AUTH_SECRET: %w", err)
	}
	return keys, nil
}

// readSecret reads a saved secret. A missing file is fs.ErrNotExist; a
// file that holds no usable secret is an error rather than a reason to
// replace it, since tokens may have been minted with whatever wrote it.
func readSecret(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read auth secret: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if len(s) < auth.MinSecretLen {
		return "", fmt.Errorf("%s holds no valid secret (want at least %d characters): delete it to generate a new one, or set ALLSPARK_AUTH_SECRET", path, auth.MinSecretLen)
	}
	return s, nil
}

// loadOrCreateSecret returns the secret saved at path, generating it if
// there is none. Processes that start together (the edge and `edge token
// --create-secret`, or two edges) end up with one secret: see secretfile.
func loadOrCreateSecret(path string) (secret string, created bool, err error) {
	if s, err := readSecret(path); !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	_, created, err = secretfile.LoadOrCreate(path, func() ([]byte, error) {
		var raw [32]byte
		if _, err := rand.Read(raw[:]); err != nil {
			return nil, fmt.Errorf("generate auth secret: %w", err)
		}
		return []byte(hex.EncodeToString(raw[:]) + "\n"), nil
	})
	if err != nil {
		return "", false, fmt.Errorf("save generated auth secret: %w", err)
	}
	// Whoever won, the file is now whole: read it as any later start would.
	s, err := readSecret(path)
	return s, created, err
}
