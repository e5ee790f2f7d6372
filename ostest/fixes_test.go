package ostest_test

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/internal/ostest"
	"github.com/medic-watchdog/medic/logging"
)

// fixesConfig is minimalConfig with no grace period and a short backoff,
// so that the steps below do not wait for either. The backend is
// Type=notify (active once it listens), so no grace period is needed for
// an operator's restart.
const fixesConfig = `[agent]
bus = "system"

[[check]]
name = "backend"
unit = "backend.service"
grace = "0s"

  [[check.probe]]
  type = "http"
  url = "http://127.0.0.1:8080/health"

  [check.remedy]
  backoff = "1s"
  backoff_max = "2s"
`

// TestSystemdWord holds what the first runs of this tier found, each a
// regression test on the installed package under PID-1 systemd: an
// operator's restart is never a failure; a restart polkit refuses is not a
// restart and says so; diagnosis as user medic maps a unix listener to its
// unit; check-config tells whether polkit lets user medic restart; the
// journal reads as sentences and MESSAGE_ID holds only catalog IDs.
func TestSystemdWord(t *testing.T) {
	forEachSuite(t, func(t *testing.T, m *ostest.Machine) {
		install(t, m, versionA)
		m.StartBackend(t, backendUnit, backendAddr, "Type=notify")
		configure(t, m, fixesConfig)
		for _, s := range []struct {
			name string
			run  func(*testing.T, *ostest.Machine)
		}{
			{"operator restart", testOperatorRestart},
			{"check-config asks polkit", testCheckConfigPolkit},
			{"refused restart", testRefusedRestart},
			{"journal lines", testJournalLines},
			{"unix listener as user medic", testUnixListener},
			{"check-config reads secrets", testCheckConfigSecrets},
			{"port in use by another unit", testPortInUse},
		} {
			start := time.Now()
			t.Run(s.name, func(t *testing.T) { s.run(t, m) })
			t.Logf("%s/%s took %s", m.Suite, s.name, time.Since(start).Round(100*time.Millisecond))
		}
	})
}

// cursor returns the journal's cursor now, for entriesAfter.
func cursor(t *testing.T, m *ostest.Machine) string {
	t.Helper()
	out := m.Journal(t, "-n", "0", "--show-cursor")
	_, c, ok := strings.Cut(out, "-- cursor: ")
	if !ok {
		t.Fatalf("journalctl --show-cursor printed no cursor: %q", out)
	}
	return strings.TrimSpace(c)
}

// entriesAfter returns medic's journal entries after cursor c that have
// every field of matches ("EVENT=state change").
func entriesAfter(t *testing.T, m *ostest.Machine, c string, matches ...string) []map[string]string {
	t.Helper()
	var out []map[string]string
next:
	for _, e := range journalEntries(t, m, "-u", "medic", "--after-cursor", c) {
		for _, kv := range matches {
			k, v, _ := strings.Cut(kv, "=")
			if e[k] != v {
				continue next
			}
		}
		out = append(out, e)
	}
	return out
}

// report reads `medic status --json`.
func report(t *testing.T, m *ostest.Machine) agent.Report {
	t.Helper()
	out := m.Sh(t, "medic status --json 2>/dev/null; true")
	var r agent.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("medic status --json: %v\n%s", err, out)
	}
	return r
}

// testOperatorRestart: `systemctl restart`, `stop` + `start` of the
// backend by an operator never make the check failing: no state change,
// no diagnosis, no restart by medic, no incident.
func testOperatorRestart(t *testing.T, m *ostest.Machine) {
	c := cursor(t, m)
	for range 3 {
		m.Sh(t, "systemctl restart "+backendUnit)
		time.Sleep(300 * time.Millisecond)
	}
	m.Sh(t, "systemctl stop "+backendUnit+" && sleep 0.5 && systemctl start "+backendUnit)
	time.Sleep(2 * time.Second)
	for _, event := range []string{"state change", "diagnosis", "remedy finished", "remedy not carried out"} {
		if got := entriesAfter(t, m, c, "EVENT="+event); len(got) > 0 {
			t.Errorf("an operator's restarts made medic log %d %q lines, first: %q", len(got), event, got[0]["MESSAGE"])
		}
	}
	r := report(t, m)
	if len(r.Checks) != 1 || r.Checks[0].State != "healthy" || r.Checks[0].Incident != "" || r.Checks[0].Paused != nil {
		t.Errorf("after the operator's restarts, medic status says %+v; want healthy, no incident, not paused", r.Checks)
	}
	t.Logf("journal of medic during the operator's restarts:\n%s", m.Journal(t, "-u", "medic", "-o", "cat", "--after-cursor", c))
}

// testCheckConfigPolkit: `medic check-config`, run as root, says whether
// polkit lets user medic restart the check's unit, with and without the
// rule.
func testCheckConfigPolkit(t *testing.T, m *ostest.Machine) {
	out := m.Sh(t, "medic check-config -c "+configPath+" 2>&1")
	if !strings.Contains(out, "polkit: user medic may restart backend.service") {
		t.Errorf("with the rule, medic check-config says:\n%s\nwant \"polkit: user medic may restart backend.service\"", out)
	}
	m.Sh(t, "mv "+rulePath+" /root/50-medic.rules && sleep 0.5")
	defer m.Sh(t, "test -e "+rulePath+" || mv /root/50-medic.rules "+rulePath+"; sleep 0.5")
	out = m.Sh(t, "medic check-config -c "+configPath+" 2>&1; echo \"exit $?\"")
	if !strings.Contains(out, "user medic may NOT restart backend.service") || !strings.Contains(out, "medic polkit-rule -c "+configPath) {
		t.Errorf("without the rule, medic check-config says:\n%s\nwant that user medic may NOT restart backend.service, and the medic polkit-rule command", out)
	}
	if !strings.HasSuffix(out, "exit 0") {
		t.Errorf("check-config exit status is about the configuration, not polkit's answer:\n%s", out)
	}
}

// testRefusedRestart: without the polkit rule, systemd refuses medic's
// restarts. No restart is charged to the budget (not even across a restart
// of medic), the incident escalates at once with the cause "not allowed to
// restart" and the fix, and the first attempt after the rule is back heals
// without a restart of medic.
func testRefusedRestart(t *testing.T, m *ostest.Machine) {
	m.Sh(t, "mv "+rulePath+" /root/50-medic.rules && sleep 0.5")
	defer m.Sh(t, "test -e "+rulePath+" || mv /root/50-medic.rules "+rulePath)
	c := cursor(t, m)
	m.Sh(t, "systemctl kill -s KILL "+backendUnit)

	waitFor(t, 15*time.Second, "the incident to escalate with the cause \"not allowed to restart\"", func() (bool, string) {
		r := report(t, m)
		st := r.Checks[0]
		cause := ""
		if st.Diagnosis != nil {
			cause = string(st.Diagnosis.Primary.Cause)
		}
		fired := entriesAfter(t, m, c, "EVENT=incident firing")
		return cause == "not allowed to restart" && len(fired) > 0, fmt.Sprintf("state %s, cause %q, %d firing lines", st.State, cause, len(fired))
	})
	fired := entriesAfter(t, m, c, "EVENT=incident firing")
	if len(fired) != 1 || fired[0]["INCIDENT_EVENT"] != "restart_refused" {
		t.Errorf("firing lines: %v; want one with INCIDENT_EVENT=restart_refused", fired)
	}
	st := report(t, m).Checks[0]
	if d := st.Diagnosis; d == nil || !strings.Contains(d.Primary.Hint, "medic polkit-rule") || !strings.Contains(d.Primary.Summary, "not allowed to restart backend.service") {
		t.Errorf("diagnosis %+v; want the summary to say medic is not allowed to restart backend.service and the hint to give medic polkit-rule", d)
	}
	time.Sleep(3 * time.Second) // a few more refused attempts
	refusals := 0
	for _, e := range entriesAfter(t, m, c, "EVENT=state change") {
		if strings.Contains(e["REASON"], "restart refused") {
			refusals++
		}
	}
	st = report(t, m).Checks[0]
	t.Logf("after %d refused restarts: state %s, restarts in window %d, budget left %d", refusals, st.State, st.RestartsInWindow, st.BudgetLeft)
	if refusals < 2 || st.State == "gave_up" || st.RestartsInWindow != 0 || st.BudgetLeft != 3 {
		t.Errorf("after %d refused restarts: state %s, restarts in window %d, budget left %d; want at least 2 refusals, not gave_up, 0 used, 3 left",
			refusals, st.State, st.RestartsInWindow, st.BudgetLeft)
	}

	// The budget stays whole across a restart of medic.
	m.Sh(t, "systemctl restart medic")
	waitReady(t, m)
	time.Sleep(time.Second)
	if st := report(t, m).Checks[0]; st.RestartsInWindow != 0 || st.BudgetLeft != 3 || st.State == "gave_up" {
		t.Errorf("after a restart of medic: state %s, restarts in window %d, budget left %d; want 0 used and 3 left", st.State, st.RestartsInWindow, st.BudgetLeft)
	}

	// The rule is back: medic heals on its next attempt, on its own.
	medicPID := m.Prop(t, "medic.service", "MainPID")
	m.Sh(t, "mv /root/50-medic.rules "+rulePath)
	ruled := time.Now()
	waitFor(t, 15*time.Second, "the backend to be healed once the rule is back", func() (bool, string) {
		got, err := get(m, healthURL)
		return err == nil && got == "200 ok" && report(t, m).Checks[0].State == "healthy", fmt.Sprintf("GET: %q %v", got, err)
	})
	t.Logf("healed %s after the rule was installed", time.Since(ruled).Round(100*time.Millisecond))
	if pid := m.Prop(t, "medic.service", "MainPID"); pid != medicPID {
		t.Errorf("medic was restarted (MainPID %s → %s): the heal must not need it", medicPID, pid)
	}
}

// testJournalLines: what `journalctl -u medic` shows in its default format
// is sentences that name the check and what happened; MESSAGE_ID holds
// only medic's catalog IDs (a notification's own ID has a field of its
// own).
func testJournalLines(t *testing.T, m *ostest.Machine) {
	cat := m.Journal(t, "-u", "medic", "-o", "cat")
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^backend: healthy → failing: systemd reports the unit dead: killed by signal 9`),
		regexp.MustCompile(`(?m)^backend: failing → restarting: restart attempt 1$`),
		regexp.MustCompile(`(?m)^backend: restarting → restarting: restart refused: not authorized to restart backend\.service`),
		regexp.MustCompile(`(?m)^backend: diagnosis: not allowed to restart: `),
		regexp.MustCompile(`(?m)^backend: restart of backend\.service: job done in [0-9]+ms; unit now active/running, main pid [0-9]+`),
	} {
		if !want.MatchString(cat) {
			t.Errorf("`journalctl -u medic -o cat` has no line matching %q", want)
		}
	}
	for _, e := range journalEntries(t, m, "-u", "medic") {
		if e["_PID"] == "1" {
			continue // systemd's own lines about medic.service
		}
		if id, ok := e["MESSAGE_ID"]; ok && !logging.IsCatalogID(id) {
			t.Errorf("MESSAGE_ID=%s is not one of medic's catalog IDs: %q", id, e["MESSAGE"])
		}
	}
	if t.Failed() {
		t.Logf("journalctl -u medic -o cat:\n%s", cat)
	}
}

// testUnixListener: as user medic, without capabilities, diagnosis maps a
// root-owned unix listener and a TCP listener to their units: a check that
// probes the wrong path or port is told where the unit really listens, and
// the evidence medic could not read is said briefly.
func testUnixListener(t *testing.T, m *ostest.Machine) {
	m.WriteFile(t, "/etc/systemd/system/sockapp.service", []byte(`[Service]
Type=simple
RuntimeDirectory=sockapp
RuntimeDirectoryMode=0755
ExecStart=/usr/bin/python3 -c "import os, socket, time; s = socket.socket(socket.AF_UNIX); s.bind('/run/sockapp/app.sock'); os.chmod('/run/sockapp/app.sock', 0o666); s.listen(16); time.sleep(1e9)"
`), 0o644)
	m.Sh(t, "systemctl daemon-reload && systemctl start sockapp.service && sleep 0.5")
	configure(t, m, fixesConfig+`
[[check]]
name = "sockapp"
unit = "sockapp.service"

  [[check.probe]]
  type = "unix"
  path = "/run/sockapp/wrong.sock"

  [check.remedy]
  action = "none"

[[check]]
name = "tcpwrong"
unit = "backend.service"

  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:8089"

  [check.remedy]
  action = "none"
`)
	for check, want := range map[string]string{
		"sockapp":  "sockapp.service is listening on unix:/run/sockapp/app.sock, the check probes unix:/run/sockapp/wrong.sock",
		"tcpwrong": "backend.service is listening on 127.0.0.1:8080, the check probes 127.0.0.1:8089",
	} {
		var st agent.Status
		waitFor(t, 30*time.Second, "a diagnosis of check "+check, func() (bool, string) {
			for _, s := range report(t, m).Checks {
				if s.Check == check {
					st = s
				}
			}
			return st.Diagnosis != nil, fmt.Sprintf("%+v", st)
		})
		d := st.Diagnosis
		t.Logf("%s: diagnosis as user medic: %s: %s (%s); unavailable: %q", check, d.Primary.Cause, d.Primary.Summary, d.Primary.Hint, d.Unavailable)
		if d.Primary.Cause != "wrong port" || d.Primary.Summary != want {
			t.Errorf("%s: diagnosis %q: %q; want wrong port: %q", check, d.Primary.Cause, d.Primary.Summary, want)
		}
		if n := len(strings.Join(d.Unavailable, "; ")); n > 400 {
			t.Errorf("%s: %d characters of unavailable evidence in every alert: %q", check, n, d.Unavailable)
		}
	}
}

// testCheckConfigSecrets: check-config reads the secret files medic run
// reads, as user medic, and names a missing or unreadable one with
// file:line and key, exactly where run would refuse to start.
func testCheckConfigSecrets(t *testing.T, m *ostest.Machine) {
	const path = "/etc/medic/secrets.toml"
	m.WriteFile(t, path, []byte(fixesConfig+`
  [check.escalate]
  notify = ["ops-email"]

[[notifier]]
name = "ops-email"
type = "email"
host = "127.0.0.1"
port = 587
username = "medic"
password_file = "/etc/medic/smtp-password"
from = "medic@localhost"
to = ["ops@localhost"]
`), 0o640)
	m.Sh(t, "chown root:medic "+path)
	asMedic := "runuser -u medic -- medic check-config -c " + path + ` 2>&1; echo "exit $?"`
	want := regexp.MustCompile(`/etc/medic/secrets\.toml:[0-9]+: notifier\[0\]\.password_file: `)

	out := m.Sh(t, asMedic)
	if !want.MatchString(out) || !strings.Contains(out, "no such file") || !strings.HasSuffix(out, "exit 1") {
		t.Errorf("missing password_file, medic check-config as user medic says:\n%s\nwant file:line: notifier[0].password_file: ... no such file, and exit 1", out)
	}
	m.Sh(t, "echo secret > /etc/medic/smtp-password && chmod 600 /etc/medic/smtp-password")
	out = m.Sh(t, asMedic)
	if !want.MatchString(out) || !strings.Contains(out, "permission denied") || !strings.HasSuffix(out, "exit 1") {
		t.Errorf("password_file readable only by root, medic check-config as user medic says:\n%s\nwant file:line: notifier[0].password_file: ... permission denied, and exit 1", out)
	}
	m.Sh(t, "chgrp medic /etc/medic/smtp-password && chmod 640 /etc/medic/smtp-password")
	if out = m.Sh(t, asMedic); !strings.Contains(out, "configuration OK") || !strings.HasSuffix(out, "exit 0") {
		t.Errorf("password_file readable by group medic, medic check-config as user medic says:\n%s\nwant configuration OK", out)
	}
}

// testPortInUse: a unit that keeps failing to start (Restart=on-failure)
// because another unit holds its port, while that other process answers
// the probes. As installed (user medic, journal through group
// systemd-journal), medic does not call the check healthy: the diagnosis
// names the conflict, the holder's unit, and quotes the unit's
// "address already in use" line; `medic diagnose --unit` as user medic
// exits 1 with the same cause.
func testPortInUse(t *testing.T, m *ostest.Machine) {
	const addr = "127.0.0.1:8091"
	m.WriteFile(t, "/etc/systemd/system/squatter.service", []byte(`[Service]
Type=simple
DynamicUser=yes
ExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 8091
`), 0o644)
	m.WriteFile(t, "/etc/systemd/system/portapp.service", []byte(`[Unit]
StartLimitIntervalSec=0
[Service]
Type=simple
Restart=on-failure
RestartSec=1s
ExecStart=`+ostest.BackendPath+` -listen `+addr+`
`), 0o644)
	m.Sh(t, "systemctl daemon-reload && systemctl start squatter.service")
	waitFor(t, 10*time.Second, "squatter.service to listen on "+addr, func() (bool, string) {
		return m.Accepts("127.0.0.1", "8091"), ""
	})
	defer m.Sh(t, "systemctl stop portapp.service squatter.service; systemctl reset-failed portapp.service; true")
	configure(t, m, fixesConfig+`
[[check]]
name = "portapp"
unit = "portapp.service"

  [[check.probe]]
  type = "tcp"
  address = "`+addr+`"

  [check.remedy]
  action = "none"
`)
	m.Sh(t, "systemctl start portapp.service")

	var st agent.Status
	waitFor(t, 30*time.Second, "a diagnosis of check portapp", func() (bool, string) {
		for _, s := range report(t, m).Checks {
			if s.Check == "portapp" {
				st = s
			}
		}
		return st.Diagnosis != nil && st.Diagnosis.Primary.Cause != "", fmt.Sprintf("%+v", st)
	})
	d := st.Diagnosis
	t.Logf("portapp: diagnosis as user medic: %s: %s (%s); evidence %v", d.Primary.Cause, d.Primary.Summary, d.Primary.Hint, d.Primary.Evidence)
	if d.Primary.Cause != "port in use by another process" || d.Primary.Evidence["holder_unit"] != "squatter.service" {
		t.Errorf("diagnosis %q: %q; want port in use by another process, held by squatter.service", d.Primary.Cause, d.Primary.Summary)
	}
	if line, _ := d.Primary.Evidence["journal_line"].(string); !strings.Contains(line, "address already in use") {
		t.Errorf("the unit's journal line is not quoted (user medic reads the journal through group systemd-journal): evidence %v", d.Primary.Evidence)
	}
	// The probe keeps passing (python answers), yet the check stays down.
	time.Sleep(3 * time.Second)
	for _, s := range report(t, m).Checks {
		if s.Check == "portapp" && s.State == "healthy" {
			t.Errorf("portapp is healthy while its unit cannot bind: %+v", s)
		}
	}

	// The unit is active for a few milliseconds after each of its
	// restarts (until its bind fails): a diagnosis taken then sees it
	// running, truly. The conflict shows in the states between.
	var out string
	for range 5 {
		out = m.Sh(t, "runuser -u medic -- medic diagnose --unit portapp.service tcp://"+addr+` 2>&1; echo "exit $?"`)
		if !strings.Contains(out, "portapp.service: active/") {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	t.Logf("medic diagnose as user medic:\n%s", out)
	if !strings.HasSuffix(out, "exit 1") || !strings.Contains(out, "cause:   port in use by another process") || !strings.Contains(out, "squatter.service") {
		t.Errorf("medic diagnose --unit portapp.service as user medic: want the conflict and exit status 1, got:\n%s", out)
	}
}
