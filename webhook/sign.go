package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Request headers.
const (
	// HeaderTimestamp is the Unix time (seconds) the request was signed.
	HeaderTimestamp = "X-Allspark-Timestamp"
	// HeaderSignature is "v1=" and the hex HMAC-SHA256, keyed with the
	// secret, of the timestamp, a ".", and the body.
	HeaderSignature = "X-Allspark-Signature"
	// HeaderDelivery names the batch: "<first>-<last>" stream sequences.
	// A retried batch keeps it, so a receiver can drop a duplicate.
	HeaderDelivery = "X-Allspark-Delivery"
)

// Sign returns the signature header value for body sent at ts.
func Sign(secret string, ts int64, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(strconv.FormatInt(ts, 10)))
	mac.Write([]byte("."))
	mac.Write(body)
	return "v1=" + hex.EncodeToString(mac.Sum(nil))
}

// ErrBadSignature: the request is not signed with the secret, or too old.
var ErrBadSignature = errors.New("bad webhook signature")

// Verify checks a received request's timestamp and signature headers
// against body: the signature must match and the timestamp be within
// tolerance of now (a replayed request is refused once it is older).
func Verify(secret, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	ts, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrBadSignature, timestamp)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %s is outside the %s tolerance", ErrBadSignature, time.Unix(ts, 0).UTC(), tolerance)
	}
	want := Sign(secret, ts, body)
	// Several signatures may be sent during a secret rotation.
	for _, s := range strings.Split(signature, ",") {
		if hmac.Equal([]byte(strings.TrimSpace(s)), []byte(want)) {
			return nil
		}
	}
	return fmt.Errorf("%w: no matching v1 signature", ErrBadSignature)
}
