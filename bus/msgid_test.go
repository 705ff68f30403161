package bus_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/oklog/ulid/v2"
)

// msg_ids take their randomness from the router's entropy source (crypto/rand
// unless a test injects one): a client that learns one id learns nothing of
// the next.
func TestMsgIDsComeFromEntropySource(t *testing.T) {
	at := time.UnixMilli(1_800_000_000_123)
	entropy := []byte("0123456789abcdefghij")
	r := bus.NewRouter(bus.RouterDeps{Now: func() time.Time { return at }, Log: testutil.Logger(t), Rand: bytes.NewReader(entropy)})
	defer r.Close()
	for i := range 2 {
		id, err := ulid.Parse(r.NewMsgID())
		if err != nil {
			t.Fatal(err)
		}
		if want := entropy[i*10 : i*10+10]; !bytes.Equal(id.Entropy(), want) || id.Time() != ulid.Timestamp(at) {
			t.Fatalf("id %d: entropy %q at %d, want %q at %d", i, id.Entropy(), id.Time(), want, ulid.Timestamp(at))
		}
	}
	// Exhausted: the router falls back to the CSPRNG, never to a guessable id.
	a, b := r.NewMsgID(), r.NewMsgID()
	if a == b {
		t.Fatalf("two ids alike: %s", a)
	}

	def := bus.NewRouter(bus.RouterDeps{Now: time.Now, Log: testutil.Logger(t)})
	defer def.Close()
	seen := map[string]bool{}
	for range 1000 {
		id := def.NewMsgID()
		if seen[id] {
			t.Fatalf("duplicate msg_id %s", id)
		}
		seen[id] = true
	}
}
