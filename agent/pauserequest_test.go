package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
)

// TestParsePauseReason: the reason comes back with its control characters
// escaped.
func TestParsePauseReason(t *testing.T) {
	req, _, err := agent.ParsePauseRequest([]byte(`{"check":"web","for":"1m","reason":"\u001b]0;pwned\u0007\u001b[2J\r deploy"}`))
	if want := `\x1b]0;pwned\x07\x1b[2J\r deploy`; err != nil || req.Reason != want {
		t.Errorf("reason %q, %v; want %q", req.Reason, err, want)
	}
}

func TestParsePauseRequest(t *testing.T) {
	tests := []struct {
		body    string
		wantErr string
		want    time.Duration
	}{
		{`{"check":"web","for":"30m","reason":"deploy"}`, "", 30 * time.Minute},
		{`{"check":"web","for":"30m"} {"check":"db"}`, "data after the JSON object", 0},
		{`{"check":"web","for":"soon"}`, "want a duration", 0},
		{`{"check":"web","for":"800h"}`, "up to 24h", 0},
		{`{"check":"web","for":"25h"}`, "up to 24h", 0},
		{`{"check":"web","for":"24h"}`, "", 24 * time.Hour},
		{`{"check":"web","for":"1m","reason":"` + strings.Repeat("x", agent.MaxPauseReason+1) + `"}`, "at most 256", 0},
		{`{"check":"web","for":"1m","reason":"` + strings.Repeat(`\u001b`, agent.MaxPauseReason/4+1) + `"}`, "at most 256", 0},
		{`{"for":"1m"}`, "missing check", 0},
		{`{"check":"web","for":"1m","force":true}`, "unknown field", 0},
	}
	for _, tt := range tests {
		_, d, err := agent.ParsePauseRequest([]byte(tt.body))
		switch {
		case tt.wantErr == "" && (err != nil || d != tt.want):
			t.Errorf("%s: %v, %v; want %v", tt.body, d, err, tt.want)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: err %v, want %q", tt.body, err, tt.wantErr)
		}
	}
}
