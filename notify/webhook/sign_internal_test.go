package webhook

import (
	"net/http"
	"testing"
	"time"
)

// TestSignStandardWebhooksVector reproduces the test vector of the Standard
// Webhooks reference libraries: a round trip through our own verifier
// would not show a wrong delimiter, alphabet or key decoding; this does.
func TestSignStandardWebhooksVector(t *testing.T) {
	key, err := ParseSecret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	if err != nil {
		t.Fatal(err)
	}
	got := sign(key, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330", []byte(`{"test": 2432232314}`))
	if want := "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="; got != want {
		t.Errorf("sign = %q, want %q", got, want)
	}
}

func TestRetryAfter(t *testing.T) {
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
			got, ok := retryAfter(tt.header, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("retryAfter = %s, %v; want %s, %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
