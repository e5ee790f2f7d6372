package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// startMedic runs `medic run -c cfg` and returns it with its log.
func startMedic(t *testing.T, cfg string) (*exec.Cmd, *syncBuffer) {
	t.Helper()
	var log syncBuffer
	cmd := exec.Command(medicBinary(t), "run", "-c", cfg)
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	return cmd, &log
}

func statusOf(t *testing.T, sock string) *agent.Report {
	t.Helper()
	out, _, _ := execute("status", "--socket", sock, "--json")
	var r agent.Report
	if json.Unmarshal([]byte(out), &r) != nil || len(r.Checks) == 0 {
		return nil
	}
	return &r
}

// TestSIGKILLDuringVerifyingContinuesIncident kills medic with SIGKILL
// while it verifies a restart, and starts it again: the incident goes on
// (same id, still verifying), the restart budget in use is not renewed,
// and the second medic does not restart the unit again: it verifies.
func TestSIGKILLDuringVerifyingContinuesIncident(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-slow-listen.service"
	// After its first start, the backend listens 3 s after it starts:
	// long enough to kill medic while it verifies its restart.
	started := filepath.Join(t.TempDir(), "started")
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr, "ExecStart=",
		fmt.Sprintf("ExecStart=/bin/sh -c 'if [ -e %[3]s ]; then sleep 3; fi; touch %[3]s; exec %[1]s -listen %[2]s'", bin, addr, started)))
	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, "the backend to answer")
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}

	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = %q
[[check]]
name = "slow"
unit = %q
interval = "500ms"
timeout = "200ms"
retry_interval = "50ms"
failures = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  verify_timeout = "20s"
  max_restarts = 3
`, dir, sock, unit, addr)), 0o600); err != nil {
		t.Fatal(err)
	}

	first, _ := startMedic(t, cfg)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { r := statusOf(t, sock); return r != nil && r.Checks[0].LastOK }, "medic to see the backend")
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	var before agent.Status
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		r := statusOf(t, sock)
		if r != nil && r.Checks[0].State == "verifying" {
			before = r.Checks[0]
			return true
		}
		return false
	}, "medic to verify its restart")
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()

	_, log2 := startMedic(t, cfg)
	var after agent.Status
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		r := statusOf(t, sock)
		if r != nil {
			after = r.Checks[0]
		}
		return r != nil
	}, "the second medic to answer")
	if after.Incident == "" || after.Incident != before.Incident {
		t.Errorf("incident after the restart of medic = %q, want %q to continue", after.Incident, before.Incident)
	}
	if after.State != "verifying" && after.State != "healthy" {
		t.Errorf("state after the restart of medic = %s, want verifying (or already healthy)", after.State)
	}
	if after.RestartsInWindow != 1 && after.State == "verifying" {
		t.Errorf("restarts in window after the restart of medic = %d, want 1 (the budget in use carries over)", after.RestartsInWindow)
	}
	systemdtest.WaitFor(t, 15*time.Second, func() bool { r := statusOf(t, sock); return r != nil && r.Checks[0].State == "healthy" }, "the verification to finish")
	if strings.Contains(log2.String(), `"msg":"job queued"`) {
		t.Errorf("the second medic restarted the unit again instead of verifying:\n%s", log2.String())
	}
	if !strings.Contains(log2.String(), "check continues from its saved state") {
		t.Errorf("the second medic did not say it continued the saved state:\n%s", log2.String())
	}
}

// TestCorruptStateFileIsQuarantined: a truncated state file is moved
// aside and reported; medic runs the check afresh.
func TestCorruptStateFileIsQuarantined(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.MkdirAll(filepath.Join(dir, "checks"), 0o700); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "checks", "web.json")
	if err := os.WriteFile(state, []byte(`{"version":1,"check":"web","machine":{"state":"verif`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = %q
[[check]]
name = "web"
interval = "200ms"
timeout = "100ms"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"
  [check.remedy]
  action = "none"
`, dir, sock)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, log := startMedic(t, cfg)
	var r *agent.Report
	systemdtest.WaitFor(t, 10*time.Second, func() bool { r = statusOf(t, sock); return r != nil }, "medic to answer")
	if !strings.Contains(r.Checks[0].StateNote, "saved state unreadable") {
		t.Errorf("status state_note = %q", r.Checks[0].StateNote)
	}
	moved, _ := filepath.Glob(state + ".corrupt-*")
	if len(moved) != 1 {
		t.Errorf("quarantined files = %v, want one", moved)
	}
	if !strings.Contains(log.String(), "saved state of the check is unreadable") {
		t.Errorf("log does not report the corrupt state:\n%s", log.String())
	}
}
