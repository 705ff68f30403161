package edge

import (
	"testing"
	"time"
)

func TestRateLimiter(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	cases := []struct {
		name   string
		rate   int
		burst  int
		frames []int // arrival times in ms
		want   []verdict
		grace  time.Duration
	}{
		{"burst then refuse", 10, 3, []int{0, 0, 0, 0}, []verdict{allow, allow, allow, refuse}, time.Second},
		{"refills at the rate", 10, 1, []int{0, 50, 100, 150, 200}, []verdict{allow, refuse, allow, refuse, allow}, time.Second},
		{"refill never exceeds the burst", 10, 2, []int{0, 5000, 5000, 5000}, []verdict{allow, allow, allow, refuse}, time.Second},
		{"a quiet second ends a run of refusals", 10, 1, []int{0, 10, 500, 600, 1700, 1705, 1800, 1805},
			[]verdict{allow, refuse, allow, allow, allow, refuse, allow, refuse}, 1500 * time.Millisecond},
		{"a run of refusals lasting the grace", 1, 1, []int{0, 100, 400, 600}, []verdict{allow, refuse, refuse, disconnect}, 500 * time.Millisecond},
		{"a steady flood stays over the rate between trickling tokens", 10, 2, []int{0, 0, 50, 100, 150, 200, 250, 300, 350},
			[]verdict{allow, allow, refuse, allow, refuse, allow, refuse, allow, disconnect}, 250 * time.Millisecond},
		{"tokens between refusals do not end the run", 10, 2, []int{0, 0, 50, 300, 300, 350},
			[]verdict{allow, allow, refuse, allow, allow, disconnect}, 250 * time.Millisecond},
		{"disabled", 0, 0, []int{0, 0, 0}, []verdict{allow, allow, allow}, time.Second},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			grace := c.grace
			if grace == 0 {
				grace = time.Second
			}
			l := newRateLimiter(c.rate, c.burst, grace, t0)
			for i, ms := range c.frames {
				if got := l.take(at(ms)); got != c.want[i] {
					t.Fatalf("frame %d at %dms: verdict %d, want %d", i, ms, got, c.want[i])
				}
			}
		})
	}
}
