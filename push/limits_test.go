package push_test

import (
	"testing"
	"time"

	tu "github.com/allspark-rt/allspark/internal/testutil"
	"github.com/allspark-rt/allspark/push"
	"github.com/allspark-rt/allspark/push/pushtest"
	"github.com/prometheus/client_golang/prometheus"
)

// ALLSPARK_PUSH_MAX_RETRIES: a provider that keeps answering a transient
// failure is tried 1 + MaxRetries times, then the notification is given up
// (counted failed) and its event leaves the queue.
func TestPushGivesUpAfterMaxRetries(t *testing.T) {
	r := newRig(t)
	if err := r.tokens.Add(t.Context(), "bob", push.APNs, "apns-bob"); err != nil {
		t.Fatal(err)
	}
	const retries = 2
	unavailable := pushtest.Reply{Status: 503, Body: `{"reason":"ServiceUnavailable"}`}
	r.apns.Script(unavailable, unavailable, unavailable, unavailable, unavailable, unavailable) // more than the tries allowed
	reg := prometheus.NewRegistry()
	run(t, r.worker(reg, func(c *push.Config) { c.MaxRetries = retries }))
	r.store("bob", 1)
	// The event leaves the queue only once the worker is done with it, so
	// the tries counted afterwards are all there will be.
	tu.Eventually(t, 20*time.Second, r.queueEmpty)
	if got := r.apns.Tries(); got != 1+retries {
		t.Fatalf("provider tried %d times, want %d (1 + %d retries)", got, 1+retries, retries)
	}
	if n := len(r.apns.Requests()); n != 0 {
		t.Fatalf("%d notifications delivered, want none", n)
	}
	if n := tu.CounterValue(t, reg, "allspark_push_failed_total"); n != 1 {
		t.Fatalf("allspark_push_failed_total = %v, want 1 given up", n)
	}
}
