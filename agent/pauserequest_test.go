package agent_test

import (
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
)

func TestParsePauseRequest(t *testing.T) {
	tests := []struct {
		body    string
		wantErr string
		want    time.Duration
	}{
		{`{"check":"web","for":"30m","reason":"deploy"}`, "", 30 * time.Minute},
		{`{"check":"web","for":"30m"} {"check":"db"}`, "data after the JSON object", 0},
		{`{"check":"web","for":"soon"}`, "want a duration", 0},
		{`{"check":"web","for":"800h"}`, "up to 720h", 0},
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
