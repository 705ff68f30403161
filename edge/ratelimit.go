package edge

import "time"

// rateLimiter is one connection's token bucket for the frames it sends. It
// is used only by the connection's reader goroutine, so it has no lock.
//
// A frame over the rate is refused (rate_limited) rather than queued, so
// nothing the edge holds grows; the reader then pauses for one token's time
// (see conn.pauseReader), so a flood costs the edge at most about twice the
// allowed rate. A client that keeps sending over the rate for the whole
// grace period is closed (4008).
//
// "Over the rate" is a run of refusals with no quiet spell between them: a
// flood still gets a token now and then as the bucket refills, and that
// must not end its run, so a run ends only when no frame has been refused
// for runQuiet.
type rateLimiter struct {
	rate     float64       // tokens per second; <= 0 disables the limiter
	burst    float64       // bucket size
	grace    time.Duration // how long a client may stay over the rate before 4008
	runQuiet time.Duration // a spell this long without a refusal ends a run

	tokens      float64
	last        time.Time // when tokens was last refilled
	overFrom    time.Time // first refusal of the current run of refusals; zero when none
	lastRefusal time.Time
}

func newRateLimiter(perSecond, burst int, grace time.Duration, now time.Time) rateLimiter {
	l := rateLimiter{rate: float64(perSecond), burst: float64(burst), grace: grace, tokens: float64(burst), last: now,
		runQuiet: time.Second}
	if perSecond > 0 {
		// Longer than the reader's pause after a refusal (one token's time).
		l.runQuiet = max(time.Second, 2*time.Second/time.Duration(perSecond))
	}
	return l
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
	if !l.overFrom.IsZero() && now.Sub(l.lastRefusal) >= l.runQuiet {
		l.overFrom = time.Time{} // slowed down: the run is over
	}
	if l.tokens >= 1 {
		l.tokens--
		return allow
	}
	l.lastRefusal = now
	if l.overFrom.IsZero() {
		l.overFrom = now
	}
	if now.Sub(l.overFrom) >= l.grace {
		return disconnect
	}
	return refuse
}
