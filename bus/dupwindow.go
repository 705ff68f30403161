package bus

import "time"

// defaultDupWindow is how long JetStream remembers a published message id
// so a retried publish is stored once.
const defaultDupWindow = 2 * time.Minute

// dupWindow is the dedup window of a stream whose messages live maxAge (0:
// forever). JetStream refuses a window longer than the max age, so a TTL
// under two minutes (ALLSPARK_INBOX_TTL, ALLSPARK_HISTORY_TTL, …) shortens
// the window instead of stopping the edge from starting: a message cannot
// be deduplicated after it expired anyway.
func dupWindow(maxAge time.Duration) time.Duration {
	if maxAge > 0 && maxAge < defaultDupWindow {
		return maxAge
	}
	return defaultDupWindow
}
