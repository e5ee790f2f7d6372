package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// TestRunOnce probes a real user manager's units once: a healthy one and
// one that is stopped. Without --remedy: exit 1, one line per check, the
// stopped one diagnosed "backend not running", and no unit touched. With
// --remedy: the stopped unit is restarted, reported healed, and the exit
// status (the state after the remedies) is 0.
func TestRunOnce(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	upAddr, downAddr := systemdtest.FreePort(t), systemdtest.FreePort(t)
	up := fmt.Sprintf("medic-once-up-%d.service", os.Getpid())
	down := fmt.Sprintf("medic-once-down-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, up, systemdtest.BackendUnit(bin, upAddr))
	systemdtest.LinkUnit(t, m, down, systemdtest.BackendUnit(bin, downAddr))
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	systemdtest.Systemctl(t, m, "start", up)
	t.Cleanup(func() { _, _ = m.Systemctl(t.Context(), "stop", up, down) })
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(upAddr) }, up+" listening on "+upAddr)

	dir := t.TempDir()
	cfg := filepath.Join(dir, "medic.toml")
	text := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = %q\n", filepath.Join(dir, "state"), filepath.Join(dir, "medic.sock")) +
		runOnceCheck("up", up, upAddr) + runOnceCheck("down", down, downAddr)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := execute("run", "--once", "-c", cfg)
	t.Logf("medic run --once:\n%s%s", out, errOut)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("err %v, want exit status 1: %s is stopped", err, down)
	}
	for _, re := range []string{
		`(?m)^CHECK +UNIT +RESULT +DETAIL$`,
		`(?m)^up +` + regexp.QuoteMeta(up) + ` +OK +[0-9.]+[µm]?s$`,
		`(?m)^down +` + regexp.QuoteMeta(down) + ` +FAIL +` + regexp.QuoteMeta(downAddr) + ` connection refused$`,
		`(?m)^down: ` + regexp.QuoteMeta(downAddr) + ` connection refused$`,
		`(?m)^  cause: +backend not running$`,
		`(?m)^  ✗ backend running +` + regexp.QuoteMeta(down) + `: inactive/dead`,
		`(?m)^1 of 2 checks failed`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
	if strings.Contains(out, "up: ") {
		t.Errorf("the passing check has a diagnosis:\n%s", out)
	}
	if got := systemdtest.Prop(t, m, down, "ActiveState"); got != "inactive" {
		t.Errorf("without --remedy, %s is %s, want it left inactive", down, got)
	}
	if _, err := os.Stat(filepath.Join(dir, "medic.sock")); err == nil {
		t.Errorf("run --once bound the status socket")
	}
	if _, err := os.Stat(filepath.Join(dir, "state")); err == nil {
		t.Errorf("run --once wrote to state_dir")
	}

	out, errOut, err = execute("run", "--once", "--remedy", "-c", cfg)
	t.Logf("medic run --once --remedy:\n%s%s", out, errOut)
	if err != nil {
		t.Fatalf("--remedy: err %v, want exit status 0 after healing", err)
	}
	for _, re := range []string{
		`(?m)^down +` + regexp.QuoteMeta(down) + ` +FAIL +`,
		`(?m)^down: restart ` + regexp.QuoteMeta(down) + `: job done; healed, the probes pass [0-9.]+m?s after the job$`,
		`(?m)^1 of 2 checks failed; 1 healed, 0 still failing$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("--remedy output does not match %s", re)
		}
	}
	if got := systemdtest.Prop(t, m, down, "ActiveState"); got != "active" {
		t.Errorf("after --remedy, %s is %s, want active", down, got)
	}

	// Now everything passes; --json says so in one document.
	out, _, err = execute("run", "--once", "--json", "-c", cfg)
	var rep struct {
		OK     bool `json:"ok"`
		Checks []struct {
			Check string `json:"check"`
			OK    bool   `json:"ok"`
		} `json:"checks"`
	}
	if jerr := json.Unmarshal([]byte(out), &rep); err != nil || jerr != nil || !rep.OK || len(rep.Checks) != 2 || !rep.Checks[1].OK {
		t.Errorf("--json once healed: err %v, %v, %+v\n%s", err, jerr, rep, out)
	}
}

// TestRunOnceUnreachableBus: the unit's state cannot be read, which the
// diagnosis lists as unavailable; the command does not fail for it, and
// --remedy reports the remedy not carried out.
func TestRunOnceUnreachableBus(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path="+filepath.Join(dir, "no-bus"))
	t.Setenv("XDG_RUNTIME_DIR", dir)
	addr := closedPort(t)
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`[agent]
bus = "user"
[[check]]
name = "app"
unit = "app.service"
  [[check.probe]]
  type = "tcp"
  address = %q
`, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "--once", "-c", cfg}, {"run", "--once", "--remedy", "-c", cfg}} {
		start := time.Now()
		out, errOut, err := execute(args...)
		var ec exitCode
		if !errors.As(err, &ec) || ec != 1 {
			t.Errorf("%v: err %v, want exit status 1\n%s%s", args, err, out, errOut)
		}
		if !strings.Contains(out, "app: "+addr+" connection refused") || !strings.Contains(out, "not available:") || !strings.Contains(out, "read its state over the user bus") {
			t.Errorf("%v: the diagnosis does not list the unit's state as unavailable:\n%s", args, out)
		}
		if args[2] == "--remedy" && !strings.Contains(out, "app: not healed: restart app.service:") {
			t.Errorf("%v: the remedy is not reported as not carried out:\n%s", args, out)
		}
		if took := time.Since(start); took > 20*time.Second {
			t.Errorf("%v took %s", args, took)
		}
	}
}

// TestRunOnceConfigError: an invalid configuration exits 2 and names
// file:line; --remedy without --once is refused.
func TestRunOnceConfigError(t *testing.T) {
	_, errOut, err := execute("run", "--once", "-c", "testdata/bad.toml")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 2 {
		t.Errorf("err %v, want exit status 2", err)
	}
	if !strings.Contains(errOut, "testdata/bad.toml:10: check[0].probe[0].address: missing port") {
		t.Errorf("stderr does not name file:line:\n%s", errOut)
	}
	if _, _, err := execute("run", "--remedy", "-c", "testdata/bad.toml"); err == nil || !strings.Contains(err.Error(), "need --once") {
		t.Errorf("--remedy without --once: %v", err)
	}

	// A valid file without [[check]]: nothing fails, and stderr says
	// there was nothing to probe.
	empty := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(empty, []byte("[agent]\nbus = \"user\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := execute("run", "--once", "-c", empty)
	if err != nil || out != "" || !strings.Contains(errOut, "has no [[check]]: nothing to probe") {
		t.Errorf("run --once on a config without checks: %v, stdout %q, stderr %q", err, out, errOut)
	}
}

// TestRunOncePaused: with --remedy, a failing check paused with medic
// pause (state_dir/paused.json, as the agent writes it) is not remedied:
// its unit stays stopped and the report says until when it is paused. A
// check whose pause has ended is remedied, and the pauses file is left as
// it was.
func TestRunOncePaused(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	heldAddr, endedAddr := systemdtest.FreePort(t), systemdtest.FreePort(t)
	held := fmt.Sprintf("medic-once-held-%d.service", os.Getpid())
	ended := fmt.Sprintf("medic-once-ended-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, held, systemdtest.BackendUnit(bin, heldAddr))
	systemdtest.LinkUnit(t, m, ended, systemdtest.BackendUnit(bin, endedAddr))
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	t.Cleanup(func() { _, _ = m.Systemctl(t.Context(), "stop", held, ended) })

	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	until := time.Now().Add(time.Hour).Truncate(time.Second)
	pauses := fmt.Sprintf(`{
  "held": {"until": %q, "reason": "deploy 4.2"},
  "ended": {"until": %q, "reason": "last week"}
}`, until.Format(time.RFC3339Nano), time.Now().Add(-time.Minute).Format(time.RFC3339Nano))
	pausesPath := filepath.Join(state, "paused.json")
	if err := os.WriteFile(pausesPath, []byte(pauses), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(dir, "medic.toml")
	text := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = %q\n", state, filepath.Join(dir, "medic.sock")) +
		runOnceCheck("held", held, heldAddr) + runOnceCheck("ended", ended, endedAddr)
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}

	out, errOut, err := execute("run", "--once", "--remedy", "-c", cfg)
	t.Logf("medic run --once --remedy:\n%s%s", out, errOut)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Errorf("err %v, want exit status 1: %s is paused and stays stopped", err, held)
	}
	for _, re := range []string{
		`(?m)^held: not remedied: remediation paused until ` + regexp.QuoteMeta(until.Local().Format(time.RFC3339)) + ` \(deploy 4\.2\); medic resume held ends the pause$`,
		`(?m)^ended: restart ` + regexp.QuoteMeta(ended) + `: job done; healed`,
		`(?m)^2 of 2 checks failed; 1 healed, 1 still failing$`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output does not match %s", re)
		}
	}
	if errOut != "" {
		t.Errorf("stderr: %s", errOut)
	}
	if got := systemdtest.Prop(t, m, held, "ActiveState"); got != "inactive" {
		t.Errorf("the paused check's unit %s is %s, want it left inactive", held, got)
	}
	if got := systemdtest.Prop(t, m, ended, "ActiveState"); got != "active" {
		t.Errorf("the unit %s of the check whose pause ended is %s, want active", ended, got)
	}
	if b, err := os.ReadFile(pausesPath); err != nil || string(b) != pauses {
		t.Errorf("the pauses file changed: %v\n%s", err, b)
	}

	out, _, _ = execute("run", "--once", "--remedy", "--json", "-c", cfg)
	var rep struct {
		Checks []struct {
			Check  string `json:"check"`
			Remedy *struct {
				Skipped     string    `json:"skipped"`
				PausedUntil time.Time `json:"paused_until"`
			} `json:"remedy"`
		} `json:"checks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Checks) != 2 || rep.Checks[0].Remedy == nil ||
		!rep.Checks[0].Remedy.PausedUntil.Equal(until) || !strings.Contains(rep.Checks[0].Remedy.Skipped, "paused") {
		t.Errorf("--json: %v, %+v\n%s", err, rep, out)
	}
}

// TestReadPauses: no file is no pause; a pause that has ended is not in
// force; a file that does not parse is an error and is left where it is
// (moving it aside is the agent's business).
func TestReadPauses(t *testing.T) {
	state := t.TempDir()
	if p, err := readPauses(state, time.Now()); err != nil || len(p) != 0 {
		t.Errorf("no file: %v, %v", p, err)
	}
	now := time.Now()
	path := filepath.Join(state, pausesFile)
	text := fmt.Sprintf(`{"a": {"until": %q}, "b": {"until": %q, "reason": "r"}}`, now.Format(time.RFC3339Nano), now.Add(time.Second).Format(time.RFC3339Nano))
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := readPauses(state, now); err != nil || len(p) != 1 || p["b"].Reason != "r" {
		t.Errorf("pauses at their end and a second before it: %v, %v; want only b", p, err)
	}
	if err := os.WriteFile(path, []byte(`{"a": {"until": `), 0o600); err != nil {
		t.Fatal(err)
	}
	if p, err := readPauses(state, now); err == nil || p != nil {
		t.Errorf("a torn file: %v, %v; want an error", p, err)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("the torn file was moved: %v", err)
	}
}

// runOnceCheck is a [[check]] table of unit with a TCP probe of addr, as
// the run --once tests use it.
func runOnceCheck(name, unit, addr string) string {
	return fmt.Sprintf(`
[[check]]
name = %q
unit = %q
timeout = "1s"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  verify_timeout = "10s"
`, name, unit, addr)
}
