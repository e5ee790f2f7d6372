package agent_test

import (
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
)

// FuzzParsePauseRequest feeds arbitrary bodies to the status socket's
// pause request parser: it must not panic, and what it accepts names a
// check and a duration of more than 0 and at most 30 days. Seeds:
// testdata/fuzz/FuzzParsePauseRequest.
func FuzzParsePauseRequest(f *testing.F) {
	f.Add([]byte(`{"check":"my-app","for":"30m","reason":"deploy"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, d, err := agent.ParsePauseRequest(body)
		if err != nil {
			if d != 0 {
				t.Errorf("error %v with duration %s", err, d)
			}
			return
		}
		if req.Check == "" {
			t.Errorf("accepted %q without a check", body)
		}
		if d <= 0 || d > 30*24*time.Hour {
			t.Errorf("accepted %q with duration %s", body, d)
		}
	})
}
