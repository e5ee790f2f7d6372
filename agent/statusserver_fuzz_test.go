package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/internal/termsafe"
)

// FuzzControlAPI sends arbitrary requests (method, path, body, and a peer
// that may or may not change state) through the status socket's routing
// and body parsing. It must not panic; a peer that may only read never
// reaches a control verb and gets 403 for one; what reaches Pause has a
// duration within agent.MaxPause and a bounded reason without control
// characters; every JSON answer decodes.
func FuzzControlAPI(f *testing.F) {
	f.Add(uint8(0), agent.StatusPath, []byte(nil), true)
	f.Add(uint8(1), agent.PausePath, []byte(`{"check":"web","for":"30m","reason":"deploy"}`), true)
	f.Add(uint8(1), agent.PausePath, []byte(`{"check":"web","for":"30m","reason":"\u001b]0;pwned\u0007"}`), false)
	f.Add(uint8(1), agent.ResumePath, []byte(`{"check":"web"}`), true)
	f.Add(uint8(1), agent.ReloadPath, []byte(nil), false)
	f.Add(uint8(2), "/v1/../v1/pause", []byte(`{}`), true)
	methods := []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodHead, "PATCH", "OPTIONS"}
	f.Fuzz(func(t *testing.T, m uint8, path string, body []byte, privileged bool) {
		method := methods[int(m)%len(methods)]
		ctl := &fakeController{}
		uid := 65534
		if privileged {
			uid = 0
		}
		req, err := http.NewRequestWithContext(agent.WithPeer(context.Background(), uid), method, "http://medic"+path, bytes.NewReader(body))
		if err != nil || !strings.HasPrefix(path, "/") {
			return
		}
		rec := httptest.NewRecorder()
		agent.StatusHandler(ctl).ServeHTTP(rec, req)

		calls := ctl.called()
		if !privileged && len(calls) > 0 {
			t.Fatalf("%s %s from uid %d reached %v", method, path, uid, calls)
		}
		for _, p := range ctl.pauses {
			d, err := time.ParseDuration(p.For)
			if err != nil || d <= 0 || d > agent.MaxPause {
				t.Errorf("pause for %q reached medic", p.For)
			}
			if len(p.Reason) > agent.MaxPauseReason || termsafe.Escape(p.Reason) != p.Reason {
				t.Errorf("pause reason %q reached medic", p.Reason)
			}
		}
		code := rec.Code
		if !privileged && method == http.MethodPost && (path == agent.PausePath || path == agent.ResumePath || path == agent.ReloadPath) && code != http.StatusForbidden {
			t.Errorf("POST %s from uid %d: %d, want 403", path, uid, code)
		}
		if strings.HasPrefix(rec.Header().Get("Content-Type"), "application/json") && method != http.MethodHead {
			var v map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
				t.Errorf("%s %s: %d answer is not JSON: %v: %q", method, path, code, err, rec.Body.String())
			}
		}
		switch code {
		case http.StatusOK, http.StatusBadRequest, http.StatusForbidden, http.StatusNotFound,
			http.StatusMethodNotAllowed, http.StatusUnprocessableEntity, http.StatusMovedPermanently, http.StatusTemporaryRedirect:
		default:
			t.Errorf("%s %s: status %d", method, path, code)
		}
	})
}
