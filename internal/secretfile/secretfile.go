// Package secretfile keeps a generated secret in a file that several
// processes may try to create at once: exactly one creation wins, and every
// process ends up with the winner's content.
package secretfile

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreate returns the content of path. If path does not exist, it
// writes gen()'s output there (mode 0600, creating the directory 0700) and
// reports created. The file appears whole or not at all: it is written
// under a temporary name and hard-linked into place, and a link never
// replaces an existing file, so a process that loses the race reads the
// winner's content instead of overwriting it.
func LoadOrCreate(path string, gen func() ([]byte, error)) (content []byte, created bool, err error) {
	if b, err := os.ReadFile(path); err == nil {
		return b, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, false, fmt.Errorf("read %s: %w", path, err)
	}
	b, err := gen()
	if err != nil {
		return nil, false, err
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, false, fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return nil, false, fmt.Errorf("create temporary file for %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(b); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("write %s: %w", tmp.Name(), err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return nil, false, fmt.Errorf("sync %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		return nil, false, fmt.Errorf("close %s: %w", tmp.Name(), err)
	}
	if err := os.Link(tmp.Name(), path); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, false, fmt.Errorf("install %s: %w", path, err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, false, fmt.Errorf("read %s: %w", path, err)
		}
		return b, false, nil
	}
	return b, true, nil
}
