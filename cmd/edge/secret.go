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

	"github.com/allspark-rt/allspark/auth"
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
// --create-secret`, or two edges) must end up with one secret: each writes
// a complete candidate to its own temporary file and hard-links it to path.
// link(2) fails if path exists, so exactly one candidate wins, readers never
// see a partly written file, and every loser reads the winner's secret.
func loadOrCreateSecret(path string) (secret string, created bool, err error) {
	if s, err := readSecret(path); !errors.Is(err, fs.ErrNotExist) {
		return s, false, err
	}
	var raw [32]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", false, fmt.Errorf("generate auth secret: %w", err)
	}
	s := hex.EncodeToString(raw[:])
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", false, fmt.Errorf("create data dir: %w", err)
	}
	tmp, err := writeTemp(dir, s+"\n")
	if err != nil {
		return "", false, fmt.Errorf("save generated auth secret: %w", err)
	}
	defer os.Remove(tmp)
	switch err := os.Link(tmp, path); {
	case errors.Is(err, fs.ErrExist):
		s, err := readSecret(path)
		return s, false, err
	case err != nil:
		return "", false, fmt.Errorf("save generated auth secret: %w", err)
	}
	return s, true, nil
}

// writeTemp writes data to a new private file in dir and returns its name.
func writeTemp(dir, data string) (string, error) {
	f, err := os.CreateTemp(dir, ".auth_secret-*")
	if err != nil {
		return "", err
	}
	_, err = f.WriteString(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", err
	}
	return f.Name(), nil
}
