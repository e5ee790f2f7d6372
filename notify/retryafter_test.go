package notify

import (
	"net/http"
	"testing"
	"time"
)

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
		wantOK bool
	}{
		{"missing", http.Header{}, 0, false},
		{"seconds", http.Header{"Retry-After": {"7"}}, 7 * time.Second, true},
		{"zero", http.Header{"Retry-After": {"0"}}, 0, true},
		{"spaces", http.Header{"Retry-After": {" 120 "}}, 2 * time.Minute, true},
		{"capped", http.Header{"Retry-After": {"86400"}}, MaxRetryAfter, true},
		{"a year", http.Header{"Retry-After": {"31536000"}}, MaxRetryAfter, true},
		{"overflow", http.Header{"Retry-After": {"99999999999999999999999"}}, MaxRetryAfter, true},
		{"negative", http.Header{"Retry-After": {"-5"}}, 0, false},
		{"fraction", http.Header{"Retry-After": {"1.5"}}, 0, false},
		{"garbage", http.Header{"Retry-After": {"soon"}}, 0, false},
		{"date", http.Header{"Retry-After": {"Sat, 21 Nov 2026 08:00:30 GMT"}}, 30 * time.Second, true},
		{"rfc850 date", http.Header{"Retry-After": {"Saturday, 21-Nov-26 08:01:00 GMT"}}, time.Minute, true},
		{"asctime date", http.Header{"Retry-After": {"Sat Nov 21 08:00:10 2026"}}, 10 * time.Second, true},
		{"date in the past", http.Header{"Retry-After": {"Sat, 21 Nov 2026 07:00:00 GMT"}}, 0, true},
		{"date far ahead", http.Header{"Retry-After": {"Sun, 22 Nov 2026 08:00:00 GMT"}}, MaxRetryAfter, true},
		{"date against the server's Date", http.Header{
			"Retry-After": {"Sat, 21 Nov 2026 09:00:20 GMT"},
			"Date":        {"Sat, 21 Nov 2026 09:00:00 GMT"}, // server clock 1h ahead
		}, 20 * time.Second, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseRetryAfter(tt.header, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("ParseRetryAfter = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

// FuzzParseRetryAfter feeds any header value (and Date) from a peer: the
// delay is never negative and never beyond MaxRetryAfter, and an invalid
// header asks for no delay.
func FuzzParseRetryAfter(f *testing.F) {
	for _, v := range []string{"", "7", " 120 ", "86400", "31536000", "99999999999999999999999", "-5", "1.5", "soon",
		"Sat, 21 Nov 2026 08:00:30 GMT", "Saturday, 21-Nov-26 08:01:00 GMT", "Sat Nov 21 08:00:10 2026"} {
		f.Add(v, "")
	}
	f.Add("Sat, 21 Nov 2026 09:00:20 GMT", "Sat, 21 Nov 2026 09:00:00 GMT")
	f.Add("Sat, 21 Nov 2026 09:00:20 GMT", "Mon, 01 Jan 0001 00:00:00 GMT")
	now := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, value, date string) {
		h := http.Header{}
		h.Set("Retry-After", value)
		if date != "" {
			h.Set("Date", date)
		}
		d, ok := ParseRetryAfter(h, now)
		if d < 0 || d > MaxRetryAfter {
			t.Fatalf("ParseRetryAfter(%q, Date %q) = %s, outside [0, %s]", value, date, d, MaxRetryAfter)
		}
		if !ok && d != 0 {
			t.Fatalf("ParseRetryAfter(%q) = %s with ok false", value, d)
		}
	})
}
