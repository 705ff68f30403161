package edge

import "time"

// rateLimiter is one connection's token bucket for the frames it sends. It
// is used only by the connection's reader goroutine, so it has no lock.
//
// A frame over the rate is refused (rate_limited) rather than queued: the
// reader never waits, so a flooding client costs the edge one decode and
// one small answer per frame, and nothing it holds grows. A client that
// keeps sending over the rate for the whole grace period is closed (4008).
type rateLimiter struct {
	rate  float64       // tokens per second; <= 0 disables the limiter
	burst float64       // bucket size
	grace time.Duration // how long a client may stay over the rate before 4008

	tokens   float64
	last     time.Time // when tokens was last refilled
	overFrom time.Time // first refusal of the current run of refusals; zero when none (see take)
}

func newRateLimiter(perSecond, burst int, grace time.Duration, now time.Time) rateLimiter {
	return rateLimiter{rate: float64(perSecond), burst: float64(burst), grace: grace, tokens: float64(burst), last: now}
}

// verdict of one frame.
type verdict int

const (
	allow      verdict = iota
	refuse             // answer rate_limited, keep the connection
	disconnect         // over the rate for the whole grace: close 4008
)

// take spends a token for a frame arriving at now.
func (l *rateLimiter) take(now time.Time) verdict {
	if l.rate <= 0 {
		return allow
	}
	if d := now.Sub(l.last); d > 0 {
		l.tokens = min(l.burst, l.tokens+d.Seconds()*l.rate)
		l.last = now
	}
	if l.tokens >= 1 {
		// A flood still gets a token now and then, as the bucket refills;
		// that does not end its run of refusals. Only a client that lets
		// the bucket gain a second token has slowed below the rate.
		if l.tokens >= min(2, l.burst) {
			l.overFrom = time.Time{}
		}
		l.tokens--
		return allow
	}
	if l.overFrom.IsZero() {
		l.overFrom = now
	}
	if now.Sub(l.overFrom) >= l.grace {
		return disconnect
	}
	return refuse
}
