package bus_test

import (
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// testKV opens a fresh bucket on a fresh embedded server.
func testKV(t *testing.T) jetstream.KeyValue {
	t.Helper()
	nc := testutil.Connect(t, testutil.RunNATS(t).ClientURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.CreateKeyValue(t.Context(), jetstream.KeyValueConfig{Bucket: "test", History: 1})
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

func increment(cur []byte) ([]byte, error) {
	n := 0
	if cur != nil {
		var err error
		if n, err = strconv.Atoi(string(cur)); err != nil {
			return nil, fmt.Errorf("counter %q: %w", cur, err)
		}
	}
	return []byte(strconv.Itoa(n + 1)), nil
}

// Concurrent read-modify-writes of one key lose no update: the final value
// counts every increment exactly once.
func TestUpdateKVUnderContention(t *testing.T) {
	kv := testKV(t)
	const workers, each = 16, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				if err := bus.UpdateKV(t.Context(), kv, "counter", increment); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("update: %v", err)
	}
	e, err := kv.Get(t.Context(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(e.Value()); got != strconv.Itoa(workers*each) {
		t.Fatalf("counter = %s after %d increments", got, workers*each)
	}
}

// An error from change aborts the update: it is returned as is, and
// nothing is written.
func TestUpdateKVChangeErrorAborts(t *testing.T) {
	kv := testKV(t)
	rev, err := kv.Put(t.Context(), "k", []byte("v1"))
	if err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	calls := 0
	err = bus.UpdateKV(t.Context(), kv, "k", func(cur []byte) ([]byte, error) {
		calls++
		return []byte("v2"), boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want boom", err)
	}
	if calls != 1 {
		t.Fatalf("change called %d times, want 1 (an error is not a conflict to retry)", calls)
	}
	e, err := kv.Get(t.Context(), "k")
	if err != nil {
		t.Fatal(err)
	}
	if string(e.Value()) != "v1" || e.Revision() != rev {
		t.Fatalf("value %q rev %d after an aborted update, want v1 rev %d", e.Value(), e.Revision(), rev)
	}
}

// ErrNoChange skips the write; UpdateKVRev reports the revision read and
// that it wrote nothing, and for a write the revision written.
func TestUpdateKVRevNoChangeAndRevision(t *testing.T) {
	kv := testKV(t)
	rev, wrote, err := bus.UpdateKVRev(t.Context(), kv, "k", func(cur []byte) ([]byte, error) {
		if cur != nil {
			t.Errorf("absent key read as %q", cur)
		}
		return []byte("a"), nil
	})
	if err != nil || !wrote || rev == 0 {
		t.Fatalf("create: rev %d wrote %v err %v", rev, wrote, err)
	}
	again, wrote, err := bus.UpdateKVRev(t.Context(), kv, "k", func(cur []byte) ([]byte, error) { return nil, bus.ErrNoChange })
	if err != nil || wrote || again != rev {
		t.Fatalf("no-op: rev %d (want %d) wrote %v err %v", again, rev, wrote, err)
	}
	e, err := kv.Get(t.Context(), "k")
	if err != nil || e.Revision() != rev {
		t.Fatalf("after no-op: %v rev %d, want rev %d", err, e.Revision(), rev)
	}
}
