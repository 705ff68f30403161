package allspark

import (
	"unicode"
	"unicode/utf8"
)

// MaxIDLen is the longest id accepted, in bytes.
const MaxIDLen = 128

// ValidID reports whether s is an acceptable node, client or session id:
// 1..MaxIDLen bytes of valid UTF-8 without control characters. Ids are
// otherwise opaque: dots, wildcards and spaces are fine because no id ever
// reaches a NATS subject unencoded.
func ValidID(s string) bool {
	if len(s) == 0 || len(s) > MaxIDLen || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}
