package secretfile_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/allspark-rt/allspark/internal/secretfile"
)

// Many processes creating the same secret at once all end up with one
// content, and exactly one of them reports that it created it.
func TestLoadOrCreateRace(t *testing.T) {
	for round := range 20 {
		path := filepath.Join(t.TempDir(), "sub", "secret")
		const n = 16
		var created atomic.Int32
		got := make([]string, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, c, err := secretfile.LoadOrCreate(path, func() ([]byte, error) { return []byte(fmt.Sprintf("secret-%d", i)), nil })
				if err != nil {
					t.Error(err)
				}
				if c {
					created.Add(1)
				}
				got[i] = string(b)
			}()
		}
		wg.Wait()
		if created.Load() != 1 {
			t.Fatalf("round %d: %d creators, want 1", round, created.Load())
		}
		for i := range got {
			if got[i] != got[0] {
				t.Fatalf("round %d: process %d read %q, process 0 %q", round, i, got[i], got[0])
			}
		}
		if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("round %d: %v %v", round, fi, err)
		}
		if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
			t.Fatalf("round %d: temporary files left: %v", round, entries)
		}
	}
}
