package notify

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// MaxRetryAfter caps the delay a peer's Retry-After header can ask for: a
// receiver that answers "Retry-After: 31536000" must not hold a
// notifier's queue for a year.
const MaxRetryAfter = time.Hour

// ParseRetryAfter reads the Retry-After header of an HTTP response (RFC
// 9110 section 10.2.3): a number of seconds, or an HTTP-date that is
// compared with the response's Date header when it has one (so that clock
// skew does not count) and with now otherwise. The delay is capped at
// MaxRetryAfter; a date in the past gives 0. ok is false when the header
// is missing or invalid (negative or fractional seconds, anything else).
func ParseRetryAfter(h http.Header, now time.Time) (d time.Duration, ok bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if isDigits(v) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n > int64(MaxRetryAfter/time.Second) {
			// Too large for int64 or beyond the cap.
			return MaxRetryAfter, true
		}
		return time.Duration(n) * time.Second, true
	}
	at, err := http.ParseTime(v)
	if err != nil {
		return 0, false
	}
	if date, err := http.ParseTime(h.Get("Date")); err == nil {
		now = date
	}
	return min(max(at.Sub(now), 0), MaxRetryAfter), true
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}
