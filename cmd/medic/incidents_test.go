package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/notify"
)

// incidentsConfig writes a configuration whose state_dir holds recs, kept
// by the history's store as medic keeps them, and returns its path.
func incidentsConfig(t *testing.T, recs ...history.Record) (cfg, dir string) {
	t.Helper()
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state")
	s := history.Open(history.Dir(state), nil)
	for _, r := range recs {
		if err := s.Put(r, history.Limits{Max: 100}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	cfg = filepath.Join(tmp, "medic.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("[agent]\nstate_dir = %q\nstatus_socket = \"\"\n", state)), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfg, history.Dir(state)
}

func incidentRecord(check string, since time.Time, outcome history.Outcome, ttr time.Duration) history.Record {
	r := history.Record{
		ID: check + "-" + since.UTC().Format("20060102T150405.000Z"), Check: check, Unit: check + ".service", Host: "web1",
		Target: "127.0.0.1:8080", Problem: "127.0.0.1:8080 connection refused", Cause: "backend crashed",
		Diagnosis: &diagnose.Diagnosis{
			Primary:   diagnose.Finding{Cause: "backend crashed", Summary: "app.service was killed by signal KILL", Hint: "read its journal"},
			Checklist: []diagnose.Item{{Name: "backend running", Status: diagnose.Fail, Evidence: "failed (signal)"}},
		},
		Since: since, Outcome: outcome, Restarts: 1,
		Timeline: []notify.Entry{
			{At: since, What: "first failed probe", Detail: "127.0.0.1:8080 connection refused\x1b[31m"},
			{At: since.Add(30 * time.Millisecond), What: "restart 1", Detail: "job done in 40ms"},
		},
	}
	if outcome == history.Resolved {
		r.ResolvedAt = since.Add(ttr)
		r.Timeline = append(r.Timeline, notify.Entry{At: r.ResolvedAt, What: "recovered"})
	} else {
		r.GaveUpAt, r.Escalated, r.Restarts = since.Add(time.Minute), true, 3
	}
	return r
}

func TestIncidentsList(t *testing.T) {
	now := time.Now()
	app := incidentRecord("app", now.Add(-2*time.Hour), history.Resolved, 1340*time.Millisecond)
	db := incidentRecord("db", now.Add(-time.Hour), history.GaveUp, 0)
	old := incidentRecord("app", now.Add(-10*24*time.Hour), history.Resolved, 4*time.Minute+12*time.Second)
	cfg, _ := incidentsConfig(t, app, db, old)

	out, errOut, err := execute("incidents", "-c", cfg)
	if err != nil || errOut != "" {
		t.Fatalf("incidents: %v, stderr %q", err, errOut)
	}
	t.Logf("\n%s", out)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "CHECK") {
		t.Fatalf("want a header and 3 lines:\n%s", out)
	}
	for i, want := range [][]string{
		{"db", "db.service", "gave up", "  -  ", " 3 ", "backend crashed", "escalated", db.ID},
		{"app", "1.3s", " 1 ", "quiet", app.ID},
		{"app", "4m12s", old.ID},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("line %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}

	out, _, err = execute("incidents", "app", "--since", "7d", "-c", cfg)
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, app.ID) {
		t.Errorf("incidents app --since 7d: %v\n%s", err, out)
	}
	out, _, err = execute("incidents", "--since", "90m", "-c", cfg)
	if err != nil || strings.Count(out, "\n") != 2 || !strings.Contains(out, db.ID) {
		t.Errorf("incidents --since 90m: %v\n%s", err, out)
	}
	out, _, err = execute("incidents", "nothing", "-c", cfg)
	if err != nil || out != "no incidents\n" {
		t.Errorf("incidents nothing: %v %q", err, out)
	}
	for _, bad := range []string{"7", "-1d", "0s", "xd", "1w"} {
		if _, _, err := execute("incidents", "--since", bad, "-c", cfg); err == nil || !strings.Contains(err.Error(), "invalid") {
			t.Errorf("--since %s: %v, want refused", bad, err)
		}
	}

	out, _, err = execute("incidents", "--json", "-c", cfg)
	var recs []history.Record
	if err != nil || json.Unmarshal([]byte(out), &recs) != nil || len(recs) != 3 || recs[0].ID != db.ID || recs[1].TimeToRecovery() != 1340*time.Millisecond {
		t.Errorf("--json: %v\n%s", err, out)
	}
	out, _, _ = execute("incidents", "none", "--json", "-c", cfg)
	if strings.TrimSpace(out) != "[]" {
		t.Errorf("--json with no incidents: %q, want []", out)
	}
}

func TestIncidentsShow(t *testing.T) {
	since := time.Date(2026, 11, 21, 8, 0, 0, 123e6, time.Local)
	r := incidentRecord("app", since, history.Resolved, 1340*time.Millisecond)
	cfg, dir := incidentsConfig(t, r)
	out, errOut, err := execute("incidents", "show", r.ID, "-c", cfg)
	if err != nil || errOut != "" {
		t.Fatalf("incidents show: %v, stderr %q", err, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{
		"incident " + r.ID, "app (app.service) on web1", "opened:   2026-11-21 08:00:00",
		"resolved: 2026-11-21 08:00:01, time to recovery 1.3s", "quiet (no alert sent)",
		"2026-11-21 08:00:00.123  first failed probe  127.0.0.1:8080 connection refused\\x1b[31m",
		"restart 1", "recovered", "diagnosis:", "cause:   backend crashed", "fix:     read its journal", "backend running",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Error("a control character reached the terminal")
	}
	if _, _, err := execute("incidents", "show", "app-20261121T090000.000Z", "-c", cfg); err == nil || !strings.Contains(err.Error(), "not in the history") {
		t.Errorf("show of a missing incident: %v", err)
	}
	if _, _, err := execute("incidents", "show", "../x", "-c", cfg); err == nil || !strings.Contains(err.Error(), "want CHECK-") {
		t.Errorf("show ../x: %v", err)
	}
	out, _, err = execute("incidents", "show", r.ID, "--json", "-c", cfg)
	var got history.Record
	if err != nil || json.Unmarshal([]byte(out), &got) != nil || got.ID != r.ID || got.Diagnosis == nil {
		t.Errorf("show --json: %v\n%s", err, out)
	}

	// A torn file is skipped with a warning, not fatal, and not changed.
	torn := filepath.Join(dir, "db-20261121T090000.000Z.json")
	os.WriteFile(torn, []byte("{"), 0o600)
	out, errOut, err = execute("incidents", "-c", cfg)
	if err != nil || !strings.Contains(out, r.ID) || !strings.Contains(errOut, "warning: skipped "+torn) {
		t.Errorf("with a torn file: %v, stdout %q, stderr %q", err, out, errOut)
	}
	if _, err := os.Stat(torn); err != nil {
		t.Errorf("the reader changed the torn file: %v", err)
	}
}
