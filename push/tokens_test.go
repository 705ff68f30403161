package push_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/allspark-rt/allspark/push"
)

// A token that falls off a node's list (the eleventh registration) loses
// its claim, so another client may register it; one still listed may not.
func TestRegisterEvictionReleasesClaim(t *testing.T) {
	r := newRig(t)
	ctx := t.Context()
	for i := range push.MaxTokensPerNode + 1 {
		if err := r.tokens.Register(ctx, "alice", "alice-phone", push.APNs, fmt.Sprintf("tok-%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := r.tokens.Register(ctx, "mallory", "m", push.APNs, "tok-00"); err != nil {
		t.Fatalf("evicted token: %v, want it free", err)
	}
	if err := r.tokens.Register(ctx, "mallory", "m", push.APNs, "tok-01"); !errors.Is(err, push.ErrTokenTaken) {
		t.Fatalf("listed token: %v, want ErrTokenTaken", err)
	}
}

// Two clients racing for one new token: exactly one gets it.
func TestRegisterRaceHasOneWinner(t *testing.T) {
	r := newRig(t)
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = r.tokens.Register(t.Context(), fmt.Sprintf("client-%d", i), fmt.Sprintf("node-%d", i), push.FCM, "contested")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, push.ErrTokenTaken):
			t.Fatalf("register: %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d clients registered the same token, want 1", won)
	}
}
