package ostest_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/ostest"
	"github.com/medic-watchdog/medic/logging"
)

// maxExposure is the highest `systemd-analyze security` score medic.service
// may have on a running system (packaging/package_test.go holds the offline
// score to the same bound).
const maxExposure = 2.0

// grace is a check's default grace period: failures within it after medic
// or the unit started are not counted.
const grace = 10 * time.Second

// TestInstalledService installs the package on one machine per suite and
// goes through what a user does and sees with it, in order: install and
// configure, a crash healed over the system bus, the journal, what polkit
// lets user medic do, reload, the sandbox's score, and the watchdog.
func TestInstalledService(t *testing.T) {
	forEachSuite(t, func(t *testing.T, m *ostest.Machine) {
		steps := []struct {
			name string
			run  func(*testing.T, *ostest.Machine)
		}{
			{"install", testInstall},
			{"heal", testHeal},
			{"journal", testJournal},
			{"polkit", testPolkit},
			{"reload", testReload},
			{"security", testSecurity},
			{"watchdog", testWatchdog},
		}
		for _, s := range steps {
			start := time.Now()
			ok := t.Run(s.name, func(t *testing.T) { s.run(t, m) })
			t.Logf("%s/%s took %s", m.Suite, s.name, time.Since(start).Round(100*time.Millisecond))
			if !ok && s.name == "install" {
				return // every later step needs medic installed and running
			}
		}
	})
}

// testInstall: `apt-get install ./medic.deb` creates user medic, installs
// the files with their modes and enables the unit; with a configuration
// and its polkit rule, `systemctl restart medic` makes it ready.
func testInstall(t *testing.T, m *ostest.Machine) {
	out := install(t, m, versionA)
	t.Logf("apt-get install:\n%s", out)

	if groups := strings.Fields(m.Sh(t, "id -nG medic")); !containsAll(groups, "medic", "systemd-journal") {
		t.Errorf("id -nG medic: %q, want medic and systemd-journal", groups)
	}
	if got := m.Sh(t, "getent passwd medic | cut -d: -f6,7"); !strings.HasPrefix(got, "/var/lib/medic:") || !strings.HasSuffix(got, "nologin") {
		t.Errorf("home and shell of medic: %q, want /var/lib/medic and a nologin shell", got)
	}
	for path, want := range map[string]string{
		"/usr/bin/medic":                 "755 root:root",
		"/usr/lib/sysusers.d/medic.conf": "644 root:root",
		configPath:                       "640 root:medic",
		"/etc/medic":                     "755 root:root",
	} {
		if got := fileInfo(t, m, path); got != want {
			t.Errorf("stat %s: %q, want %q", path, got, want)
		}
	}
	frag := m.Prop(t, "medic.service", "FragmentPath")
	if frag != "/lib/systemd/system/medic.service" && frag != "/usr/lib/systemd/system/medic.service" {
		t.Errorf("medic.service is loaded from %q, want /lib/systemd/system/medic.service", frag)
	} else if got := fileInfo(t, m, frag); got != "644 root:root" {
		t.Errorf("stat %s: %q, want 644 root:root", frag, got)
	}
	if got := m.Sh(t, "systemctl is-enabled medic || true"); got != "enabled" {
		t.Errorf("systemctl is-enabled medic: %q, want enabled", got)
	}
	// The shipped configuration watches nothing, so the package enables
	// medic but does not start it.
	if got := m.Sh(t, "systemctl is-active medic || true"); got != "inactive" {
		t.Errorf("systemctl is-active medic after install: %q, want inactive (enabled, not started)", got)
	}

	m.StartBackend(t, backendUnit, backendAddr)
	m.WriteFile(t, configPath, []byte(minimalConfig), 0o640)
	m.Sh(t, "chown root:medic "+configPath)
	if out := m.Sh(t, "medic check-config -c "+configPath+" 2>&1"); !strings.Contains(out, "configuration OK") {
		t.Errorf("medic check-config: %q, want configuration OK", out)
	}
	rule := m.Sh(t, "medic polkit-rule -c "+configPath+" > "+rulePath+" && cat "+rulePath)
	if !strings.Contains(rule, `"backend.service"`) {
		t.Errorf("the polkit rule does not name backend.service:\n%s", rule)
	}
	m.Sh(t, "systemctl restart medic")
	waitReady(t, m)
	props := show(t, m, "medic.service", "ActiveState", "SubState", "StatusText", "MainPID", "User")
	t.Logf("systemctl show medic: %v", props)
	if !regexp.MustCompile(`\b1 checks?\b`).MatchString(props["StatusText"]) {
		t.Errorf("StatusText=%q, want it to report the 1 check", props["StatusText"])
	}
	if got := m.Sh(t, "ps -o user= -p "+props["MainPID"]); got != "medic" {
		t.Errorf("medic's main process runs as %q, want medic", got)
	}
	for path, want := range map[string]string{
		"/var/lib/medic":        "700 medic:medic",
		"/run/medic":            "750 medic:medic",
		"/run/medic/medic.sock": "660 medic:medic",
	} {
		if got := fileInfo(t, m, path); got != want {
			t.Errorf("stat %s with medic running: %q, want %q", path, got, want)
		}
	}
	status := medicStatus(t, m)
	t.Logf("medic status:\n%s", status)
	if !regexp.MustCompile(`(?m)^backend\s+backend\.service\s+healthy`).MatchString(status) {
		t.Errorf("medic status does not show check backend healthy:\n%s", status)
	}
}

// testHeal: the backend's main process dies by SIGKILL; medic restarts the
// unit over the system bus, as user medic, within seconds. It does so even
// within the grace period after medic or the unit started: systemd's report
// of the death is evidence enough, no probe has to fail first.
func testHeal(t *testing.T, m *ostest.Machine) {
	t.Run("quiet start", func(t *testing.T) { testQuietStart(t, m) })
	oldPID := m.Prop(t, backendUnit, "MainPID")
	if got, err := get(m, healthURL); err != nil || got != "200 ok" {
		t.Fatalf("before the kill, GET %s: %q, %v; want 200 ok", healthURL, got, err)
	}
	m.Sh(t, "kill -KILL "+oldPID)
	killed := time.Now()

	var newPID string
	waitFor(t, 10*time.Second, "backend.service to answer again with a new main PID after `kill -KILL "+oldPID+"`", func() (bool, string) {
		got, err := get(m, healthURL)
		newPID = m.Prop(t, backendUnit, "MainPID")
		seen := fmt.Sprintf("GET %s: %q %v; MainPID=%s\nmedic status:\n%s", healthURL, got, err, newPID, medicStatus(t, m))
		return err == nil && got == "200 ok" && newPID != oldPID && newPID != "0", seen
	})
	t.Logf("backend answered again %s after the kill (MainPID %s -> %s)", time.Since(killed).Round(time.Millisecond), oldPID, newPID)

	// Who restarted it: medic, as user medic, over the system bus.
	uid := m.Sh(t, "id -u medic")
	var restart map[string]string
	for _, e := range journalEntries(t, m, "-u", "medic", "MESSAGE_ID="+logging.RestartPerformed) {
		if e["UNIT"] == backendUnit {
			restart = e
		}
	}
	if restart == nil {
		t.Fatalf("no entry with MESSAGE_ID=%s (restart performed) and UNIT=%s in `journalctl -u medic`:\n%s",
			logging.RestartPerformed, backendUnit, m.Journal(t, "-u", "medic", "-o", "verbose", "-n", "60"))
	}
	if restart["_UID"] != uid || restart["_SYSTEMD_UNIT"] != "medic.service" {
		t.Errorf("the restart entry comes from _UID=%s _SYSTEMD_UNIT=%s, want user medic (%s) in medic.service: %v",
			restart["_UID"], restart["_SYSTEMD_UNIT"], uid, restart)
	}
	if pid, ok := restart["MAIN_PID"]; ok && pid != newPID {
		t.Errorf("medic logged MAIN_PID=%s after its restart, the unit's MainPID is %s", pid, newPID)
	}
	t.Logf("medic's restart entry: %v", brief(restart))
	// medic acted on systemd's report of the death, not on failed probes.
	died := false
	for _, e := range journalEntries(t, m, "-u", "medic", "EVENT=unit died") {
		died = died || e["CHECK"] == "backend"
	}
	if !died {
		t.Errorf("no EVENT=\"unit died\" entry for check backend in medic's journal: the restart did not come from systemd's report")
	}
	if got := m.Prop(t, backendUnit, "NRestarts"); got != "0" {
		t.Errorf("backend.service NRestarts=%s: systemd restarted it itself, want medic to (Restart=no)", got)
	}
}

// testQuietStart: a medic that is set up as the README says, with a
// healthy backend, logs no warning or error in its first seconds; an
// operator would take one for a problem.
func testQuietStart(t *testing.T, m *ostest.Machine) {
	inv := m.Prop(t, "medic.service", "InvocationID")
	var warnings []string
	for _, e := range journalEntries(t, m, "_SYSTEMD_INVOCATION_ID="+inv, "-p", "warning") {
		warnings = append(warnings, fmt.Sprintf("<%s> %s %v", e["PRIORITY"], e["MESSAGE"], brief(e)))
	}
	if len(warnings) > 0 {
		t.Errorf("medic logged warnings while everything was fine (journalctl -u medic -p warning):\n%s", strings.Join(warnings, "\n"))
	}
}

// testJournal: what an operator reads with journalctl after the heal.
func testJournal(t *testing.T, m *ostest.Machine) {
	cat := m.Journal(t, "-u", "medic", "-o", "cat")
	t.Logf("journalctl -u medic -o cat:\n%s", cat)

	// The facts are in the fields: the restart performed, of which check
	// and unit.
	var restartMsg string
	for _, e := range journalEntries(t, m, "-u", "medic", "MESSAGE_ID="+logging.RestartPerformed) {
		if e["UNIT"] == backendUnit && e["CHECK"] == "backend" {
			restartMsg = e["MESSAGE"]
			t.Logf("journalctl -u medic MESSAGE_ID=%s -o json: MESSAGE=%q %v", logging.RestartPerformed, e["MESSAGE"], brief(e))
		}
	}
	if restartMsg == "" {
		t.Errorf("`journalctl -u medic MESSAGE_ID=%s` has no entry with CHECK=backend UNIT=%s", logging.RestartPerformed, backendUnit)
	}
	if got := m.Sh(t, "journalctl --no-pager -x -u medic MESSAGE_ID="+logging.RestartPerformed+" | grep -c '^ *░░' || true"); got == "0" {
		t.Errorf("`journalctl -x` shows no catalog text for MESSAGE_ID=%s (is /usr/lib/systemd/catalog/medic.catalog installed and the catalog updated?)", logging.RestartPerformed)
	}

	// The text: the restart entry's message, which is its line in `-o cat`,
	// names the check or its unit and says that medic restarted it.
	t.Run("operator line", func(t *testing.T) {
		if restartMsg == "" {
			t.Fatal("no restart entry")
		}
		if !strings.Contains(cat, restartMsg) {
			t.Errorf("the restart entry's message %q is not in `journalctl -u medic -o cat`", restartMsg)
		}
		if !operatorLine.MatchString(restartMsg) {
			t.Errorf("medic's restart line in `journalctl -u medic -o cat` is %q: it does not name the check and the restart", restartMsg)
		}
	})
}

// operatorLine matches a message that names check "backend" or its unit,
// and a restart.
var operatorLine = regexp.MustCompile(`(?i)\bbackend(\.service)?\b.*\brestart|\brestart.*\bbackend(\.service)?\b`)

// testPolkit: user medic may restart backend.service (the rule allows
// restart and reset-failed on it) and nothing else.
func testPolkit(t *testing.T, m *ostest.Machine) {
	m.WriteFile(t, "/etc/systemd/system/other.service",
		[]byte("[Service]\nExecStart="+ostest.BackendPath+" -listen 127.0.0.1:8081\n"), 0o644)
	m.Sh(t, "systemctl daemon-reload")

	watched := []string{backendUnit, "other.service", "medic.service", "dbus.service", "polkit.service"}
	// snapshot shows the state of every unit a refused command could touch.
	snapshot := func() string {
		return m.Sh(t, "systemctl show -p Id,ActiveState,UnitFileState,MainPID,NRestarts "+strings.Join(watched, " "))
	}
	denied := regexp.MustCompile(`Access denied|Interactive authentication required`)
	asMedic := "setpriv --reuid=medic --regid=medic --init-groups systemctl --no-ask-password "

	for _, cmd := range []string{
		"stop backend.service",
		"kill backend.service",
		"start other.service",
		"restart other.service",
		"stop medic.service",
		"restart medic.service",
		"disable medic.service",
		"restart dbus.service",
		"restart polkit.service",
	} {
		before := snapshot()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, stderr, err := m.Run(ctx, "sh", "-c", asMedic+cmd)
		cancel()
		var exit *exec.ExitError
		switch {
		case err == nil:
			t.Errorf("as user medic, `systemctl %s` succeeded, want it refused", cmd)
		case !errors.As(err, &exit):
			t.Errorf("as user medic, `systemctl %s`: %v", cmd, err)
		case !denied.Match(stderr):
			t.Errorf("as user medic, `systemctl %s` exited %d with %q, want an authorization error", cmd, exit.ExitCode(), stderr)
		default:
			t.Logf("as user medic, `systemctl %s`: exit %d: %s", cmd, exit.ExitCode(), firstLine(stderr))
		}
		if after := snapshot(); after != before {
			t.Errorf("the refused `systemctl %s` changed the units:\nbefore:\n%s\nafter:\n%s", cmd, before, after)
		}
	}

	oldPID := m.Prop(t, backendUnit, "MainPID")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, stderr, err := m.Run(ctx, "sh", "-c", asMedic+"restart "+backendUnit); err != nil {
		t.Fatalf("as user medic, `systemctl restart %s`: %v: %s; want it allowed by %s", backendUnit, err, stderr, rulePath)
	}
	p := show(t, m, backendUnit, "ActiveState", "MainPID")
	if p["ActiveState"] != "active" || p["MainPID"] == oldPID || p["MainPID"] == "0" {
		t.Errorf("after user medic's `systemctl restart %s`: %v, want active with a new MainPID (was %s)", backendUnit, p, oldPID)
	}
}

// testReload: `systemctl reload medic` applies a good file and refuses a
// broken one, keeping the running configuration and saying why.
func testReload(t *testing.T, m *ostest.Machine) {
	pid := m.Prop(t, "medic.service", "MainPID")
	good := minimalConfig + `
[[check]]
name = "backend-tcp"
unit = "backend.service"

  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:8080"
`
	m.WriteFile(t, configPath, []byte(good), 0o640)
	m.Sh(t, "chown root:medic "+configPath)
	if out := m.Sh(t, "systemctl reload medic 2>&1"); out != "" {
		t.Logf("systemctl reload medic: %s", out)
	}
	status := medicStatus(t, m)
	if !regexp.MustCompile(`(?m)^backend-tcp\s+backend\.service\s`).MatchString(status) {
		t.Errorf("after `systemctl reload medic` with a new check, medic status does not show it:\n%s", status)
	}
	if got := m.Prop(t, "medic.service", "MainPID"); got != pid {
		t.Errorf("reload restarted medic: MainPID %s -> %s", pid, got)
	}

	broken := good + `
[[check]]
name = "typo"
unit = "backend.service"
interval = "5 seconds"

  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:8080"
`
	m.WriteFile(t, configPath, []byte(broken), 0o640)
	m.Sh(t, "chown root:medic "+configPath)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, stderr, err := m.Run(ctx, "systemctl", "reload", "medic")
	if err == nil {
		t.Errorf("systemctl reload medic with a broken file exited 0, want it to fail: %s%s", out, stderr)
	}
	t.Logf("systemctl reload medic with a broken file: %v: %s", err, stderr)
	// STATUS= is sent before READY=1 ends the reload: the text tells the
	// outcome as soon as `systemctl reload` returns.
	props := show(t, m, "medic.service", "ActiveState", "SubState", "MainPID", "StatusText")
	if st := props["StatusText"]; !strings.Contains(st, "reload failed") || !fileLine.MatchString(st) {
		t.Errorf("right after the refused `systemctl reload medic`, StatusText=%q; want it to say the reload failed, with file:line", st)
	}
	t.Logf("StatusText=%s", props["StatusText"])
	// The file watcher sees the same save; whichever of the two comes
	// second finds the file as the first read it. Each refusal is one
	// error line (with its MESSAGE_ID), never two.
	time.Sleep(time.Second)
	inv := m.Prop(t, "medic.service", "InvocationID")
	failed := journalEntries(t, m, "_SYSTEMD_INVOCATION_ID="+inv, "MESSAGE_ID="+logging.ConfigReloadFailed)
	errs := journalEntries(t, m, "_SYSTEMD_INVOCATION_ID="+inv, "-p", "err")
	if len(failed) < 1 || len(failed) > 2 || len(errs) != len(failed) {
		t.Errorf("one save of a broken file and one `systemctl reload`: %d \"config reload failed\" entries and %d error lines; want 1 or 2, and no other error line", len(failed), len(errs))
	}
	if props["ActiveState"] != "active" || props["SubState"] != "running" || props["MainPID"] != pid {
		t.Errorf("after the refused reload: %v, want medic still active/running as MainPID %s", props, pid)
	}
	status = medicStatus(t, m, "--socket", "/run/medic/medic.sock")
	if !strings.Contains(status, "backend-tcp") || strings.Contains(status, "typo") {
		t.Errorf("after the refused reload, medic status --socket shows other checks than the old configuration's:\n%s", status)
	}

	t.Run("medic status with a broken file", func(t *testing.T) {
		status := medicStatus(t, m)
		t.Logf("medic status:\n%s", status)
		if !strings.Contains(status, "backend-tcp") {
			t.Errorf("with a broken %s, `medic status` does not reach the running medic:\n%s", configPath, status)
		}
		if !fileLine.MatchString(status) {
			t.Errorf("medic status with a broken file does not name the problem with file:line:\n%s", status)
		}
	})

	m.WriteFile(t, configPath, []byte(good), 0o640)
	m.Sh(t, "chown root:medic "+configPath+" && systemctl reload medic")
}

// testSecurity: `systemd-analyze security` on the running system rates
// medic.service at most maxExposure.
func testSecurity(t *testing.T, m *ostest.Machine) {
	out := m.Sh(t, "systemd-analyze security --no-pager medic.service")
	t.Logf("systemd-analyze security medic.service:\n%s", out)
	match := regexp.MustCompile(`Overall exposure level for medic\.service: ([0-9.]+)`).FindStringSubmatch(out)
	if match == nil {
		t.Fatalf("no overall exposure level in the output above")
	}
	score, err := strconv.ParseFloat(match[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	if score > maxExposure {
		t.Errorf("systemd-analyze security medic.service: exposure %.1f, want at most %.1f", score, maxExposure)
	}
	t.Logf("exposure %.1f (systemd %s)", score, m.Sh(t, "systemctl --version | head -1"))
}

// testWatchdog: a medic that stops answering (SIGSTOP) is killed by
// systemd's watchdog and restarted. WatchdogSec comes down to 3s in a
// drop-in to keep the test short.
func testWatchdog(t *testing.T, m *ostest.Machine) {
	m.WriteFile(t, "/etc/systemd/system/medic.service.d/watchdog.conf", []byte("[Service]\nWatchdogSec=3s\n"), 0o644)
	m.Sh(t, "systemctl daemon-reload && systemctl restart medic")
	waitReady(t, m)
	before := show(t, m, "medic.service", "MainPID", "NRestarts", "WatchdogUSec")
	if before["WatchdogUSec"] != "3s" {
		t.Fatalf("WatchdogUSec=%s after the drop-in, want 3s", before["WatchdogUSec"])
	}
	// A healthy medic keeps pinging: it survives two watchdog periods.
	time.Sleep(7 * time.Second)
	if got := show(t, m, "medic.service", "MainPID", "NRestarts"); got["MainPID"] != before["MainPID"] || got["NRestarts"] != before["NRestarts"] {
		t.Fatalf("a running medic was restarted with WatchdogSec=3s (%v -> %v):\n%s", before, got, m.Journal(t, "-u", "medic", "-n", "30"))
	}
	m.Sh(t, "kill -STOP "+before["MainPID"])
	stopped := time.Now()
	restarts, _ := strconv.Atoi(before["NRestarts"])
	var after map[string]string
	waitFor(t, 30*time.Second, "systemd to kill the stopped medic and start a new one", func() (bool, string) {
		after = show(t, m, "medic.service", "MainPID", "NRestarts", "ActiveState", "SubState")
		return after["ActiveState"] == "active" && after["SubState"] == "running" &&
			after["MainPID"] != before["MainPID"] && after["NRestarts"] == strconv.Itoa(restarts+1), fmt.Sprint(after)
	})
	t.Logf("medic restarted %s after SIGSTOP: %v -> %v", time.Since(stopped).Round(time.Millisecond), before, after)
	log := m.Journal(t, "-u", "medic", "-o", "cat", "--since", "-2min")
	if !strings.Contains(log, "Watchdog timeout") && !strings.Contains(log, "result 'watchdog'") {
		t.Errorf("systemd's journal for medic does not say the watchdog fired:\n%s", log)
	}
	m.Sh(t, "rm /etc/systemd/system/medic.service.d/watchdog.conf && systemctl daemon-reload")
}

// containsAll reports whether list holds every one of want.
func containsAll(list []string, want ...string) bool {
	for _, w := range want {
		found := false
		for _, l := range list {
			found = found || l == w
		}
		if !found {
			return false
		}
	}
	return true
}

// firstLine returns the first line of b.
func firstLine(b []byte) string {
	s, _, _ := strings.Cut(strings.TrimSpace(string(b)), "\n")
	return s
}

// brief returns a journal entry without its trusted and address fields
// (those starting with "_"), for the test log.
func brief(e map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range e {
		if !strings.HasPrefix(k, "_") {
			out[k] = v
		}
	}
	return out
}
