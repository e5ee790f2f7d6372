package agent

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

func TestSavedIncident(t *testing.T) {
	dir := t.TempDir()
	write := func(check string, v any) {
		t.Helper()
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "checks"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(statePath(dir, check), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	at := time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)
	write("web", checkState{Version: stateVersion, Check: "web", Incident: &incidentState{Incident: notify.Incident{
		ID: "web-20261130T050000.000Z", Check: "web", Problem: "127.0.0.1:1 connection refused",
		Timeline: []notify.Entry{{At: at, What: "first failed probe", Detail: "refused"}},
	}}})
	write("calm", checkState{Version: stateVersion, Check: "calm"})
	write("other", checkState{Version: stateVersion, Check: "web"})

	in, err := SavedIncident(dir, "web")
	if err != nil || in == nil || in.ID != "web-20261130T050000.000Z" || len(in.Timeline) != 1 || in.Timeline[0].What != "first failed probe" {
		t.Errorf("SavedIncident(web) = %+v, %v; want the open incident with its timeline", in, err)
	}
	for _, check := range []string{"calm", "absent"} {
		if in, err := SavedIncident(dir, check); in != nil || err != nil {
			t.Errorf("SavedIncident(%s) = %+v, %v; want nil, nil", check, in, err)
		}
	}
	for _, check := range []string{"other", "../web", ""} {
		if in, err := SavedIncident(dir, check); in != nil || err == nil {
			t.Errorf("SavedIncident(%q) = %+v, %v; want an error", check, in, err)
		}
	}
	if err := os.Symlink(statePath(dir, "web"), statePath(dir, "link")); err != nil {
		t.Fatal(err)
	}
	if in, err := SavedIncident(dir, "link"); in != nil || err == nil {
		t.Errorf("SavedIncident through a symbolic link = %+v, %v; want an error", in, err)
	}
}
