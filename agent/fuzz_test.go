package agent_test

import (
	"testing"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/internal/termsafe"
)

// FuzzParsePauseRequest feeds arbitrary bodies to the status socket's
// pause request parser: it must not panic, and what it accepts names a
// check, a duration of more than 0 and at most agent.MaxPause, and a
// reason of at most agent.MaxPauseReason bytes without a control
// character. Seeds: testdata/fuzz/FuzzParsePauseRequest.
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
		if d <= 0 || d > agent.MaxPause {
			t.Errorf("accepted %q with duration %s", body, d)
		}
		if len(req.Reason) > agent.MaxPauseReason || termsafe.Escape(req.Reason) != req.Reason {
			t.Errorf("accepted %q with reason %q", body, req.Reason)
		}
	})
}
