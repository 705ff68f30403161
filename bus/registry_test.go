package bus_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/allspark-rt/allspark/bus"
	"github.com/allspark-rt/allspark/internal/testutil"
	"github.com/nats-io/nats.go/jetstream"
)

// skewedClock is a local clock off the NATS server's by a fixed skew,
// advanced by hand.
type skewedClock struct {
	mu  sync.Mutex
	off time.Duration // guarded by mu
}

func (c *skewedClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *skewedClock) advance(d time.Duration) {
	c.mu.Lock()
	c.off += d
	c.mu.Unlock()
}

// watchRegistry opens a registry on js with clock and runs its watcher
// until the test ends.
func watchRegistry(t *testing.T, js jetstream.JetStream, clock func() time.Time, staleAfter time.Duration) *bus.Registry {
	t.Helper()
	reg, err := bus.OpenRegistry(t.Context(), js, bus.RegistryConfig{Bucket: "edges", StaleAfter: staleAfter}, clock, testutil.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); reg.Watch(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-reg.Ready():
	case <-time.After(10 * time.Second):
		t.Fatal("registry not ready after 10s")
	}
	return reg
}

func liveIDs(reg *bus.Registry) map[string]bool {
	out := map[string]bool{}
	for _, e := range reg.Live() {
		out[e.ID] = true
	}
	return out
}

// Liveness is judged on the local clock alone: a local clock hours off the
// server's neither kills live edges nor keeps dead ones alive.
func TestRegistryLivenessSurvivesClockSkew(t *testing.T) {
	for _, skew := range []time.Duration{2 * time.Hour, -2 * time.Hour} {
		t.Run(fmt.Sprint(skew), func(t *testing.T) {
			nc := testutil.Connect(t, testutil.RunNATS(t).ClientURL())
			js, err := jetstream.New(nc)
			if err != nil {
				t.Fatal(err)
			}
			const stale = 5 * time.Second
			clock := &skewedClock{off: skew}
			// An edge announced before the watcher starts is in the initial state.
			announcer := watchRegistry(t, js, time.Now, stale)
			if err := announcer.Announce(t.Context(), bus.EdgeInfo{ID: "early"}); err != nil {
				t.Fatal(err)
			}
			reg := watchRegistry(t, js, clock.now, stale)
			if !liveIDs(reg)["early"] {
				t.Fatalf("edge in the initial state not live with the local clock %s off: %v", skew, reg.Live())
			}
			if err := announcer.Announce(t.Context(), bus.EdgeInfo{ID: "late"}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, func() error {
				if live := liveIDs(reg); !live["late"] {
					return fmt.Errorf("announced edge not live with the local clock %s off: %v", skew, live)
				}
				return nil
			})
			// Silent for longer than stale on the local clock: dead.
			clock.advance(stale + time.Second)
			if live := liveIDs(reg); len(live) != 0 {
				t.Fatalf("edges silent past %s still live: %v", stale, live)
			}
			// A new announcement revives it.
			if err := announcer.Announce(t.Context(), bus.EdgeInfo{ID: "late"}); err != nil {
				t.Fatal(err)
			}
			testutil.Eventually(t, 10*time.Second, func() error {
				if live := liveIDs(reg); !live["late"] {
					return fmt.Errorf("re-announced edge not live: %v", live)
				}
				return nil
			})
		})
	}
}
