package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// TestMedicAsNotifyUnit runs medic itself as a Type=notify unit with
// WatchdogSec under a real systemd user manager, next to a backend unit it
// watches:
//   - the unit becomes active only with READY=1, and StatusText shows the
//     STATUS= line;
//   - a reload with a broken file keeps the old checks running and says why
//     (medic reload exits 1, STATUS= and medic status show the error);
//   - a pause survives a restart of medic;
//   - SIGSTOP stops the watchdog pings: systemd kills medic (Result
//     watchdog) and restarts it.
func TestMedicAsNotifyUnit(t *testing.T) {
	m := systemdtest.Start(t)
	bin := medicBinary(t)
	backendAddr := systemdtest.FreePort(t)
	backend := "medic-svc-backend.service"
	systemdtest.LinkUnit(t, m, backend, systemdtest.BackendUnit(systemdtest.Backend(t), backendAddr))
	systemdtest.Systemctl(t, m, "start", backend)

	dir, err := os.MkdirTemp("", "medic-svc-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "medic.sock")
	cfgFile := filepath.Join(dir, "medic.toml")
	good := fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = %q

[[check]]
name = "backend"
unit = %q
interval = "500ms"
timeout = "200ms"
  [[check.probe]]
  type = "tcp"
  address = %q
`, filepath.Join(dir, "state"), sock, backend, backendAddr)
	if err := os.WriteFile(cfgFile, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	unit := "medic-under-test.service"
	systemdtest.LinkUnit(t, m, unit, fmt.Sprintf(`[Unit]
Description=medic under test
StartLimitIntervalSec=0

[Service]
Type=notify
ExecStart=%s run -c %s --log-format=json
ExecReload=%s reload --socket %s
Environment=DBUS_SESSION_BUS_ADDRESS=%s
WatchdogSec=2s
Restart=on-failure
RestartSec=200ms
TimeoutStopSec=15s
`, bin, cfgFile, bin, sock, m.BusAddress()))

	// start returns only after READY=1 (Type=notify).
	systemdtest.Systemctl(t, m, "start", unit)
	if got := systemdtest.Prop(t, m, unit, "ActiveState"); got != "active" {
		t.Fatalf("ActiveState = %s after start, want active", got)
	}
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		return systemdtest.Prop(t, m, unit, "StatusText") == "1 check, 0 failing, 0 gave up"
	}, "StatusText to show the STATUS= line")

	// A broken file: the reload is refused, the old config stays.
	if err := os.WriteFile(cfgFile, []byte(strings.Replace(good, `interval = "500ms"`, `interval = "soon"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := execute("reload", "--socket", sock)
	if err == nil || !strings.Contains(stderr, cfgFile+":10: check[0].interval") {
		t.Errorf("reload of a broken file: err %v, output %q; want exit 1 naming file:line and key", err, stderr)
	}
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		return strings.Contains(systemdtest.Prop(t, m, unit, "StatusText"), "config reload failed, old config kept")
	}, "StatusText to say the reload failed")
	out, _, _ := execute("status", "--socket", sock)
	if !strings.Contains(out, "the last reload failed") || !strings.Contains(out, "backend") {
		t.Errorf("status after a failed reload:\n%s", out)
	}
	// systemctl reload (ExecReload=medic reload) with the good file again.
	if err := os.WriteFile(cfgFile, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	systemdtest.Systemctl(t, m, "reload", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		return systemdtest.Prop(t, m, unit, "StatusText") == "1 check, 0 failing, 0 gave up"
	}, "StatusText to clear after a good reload")

	// A pause survives a restart of medic.
	if _, _, err := execute("pause", "backend", "--for", "1h", "--reason", "kernel update", "--socket", sock); err != nil {
		t.Fatalf("pause: %v", err)
	}
	systemdtest.Systemctl(t, m, "restart", unit)
	out, _, _ = execute("status", "--socket", sock)
	if !strings.Contains(out, "backend: remediation paused until") || !strings.Contains(out, "kernel update") {
		t.Errorf("status after a restart lost the pause:\n%s", out)
	}
	if _, _, err := execute("resume", "backend", "--socket", sock); err != nil {
		t.Errorf("resume: %v", err)
	}

	// SIGSTOP: no more watchdog pings; systemd kills and restarts medic.
	pid := systemdtest.Prop(t, m, unit, "MainPID")
	restarts, _ := strconv.Atoi(systemdtest.Prop(t, m, unit, "NRestarts"))
	systemdtest.Systemctl(t, m, "kill", "--signal=STOP", unit)
	systemdtest.WaitFor(t, 20*time.Second, func() bool {
		n, _ := strconv.Atoi(systemdtest.Prop(t, m, unit, "NRestarts"))
		return n > restarts && systemdtest.Prop(t, m, unit, "ActiveState") == "active"
	}, "the watchdog to have medic killed and restarted")
	if newPID := systemdtest.Prop(t, m, unit, "MainPID"); newPID == pid {
		t.Errorf("MainPID still %s after the watchdog fired", pid)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := m.Systemctl(ctx, "stop", unit); err != nil {
		t.Errorf("stop: %v", err)
	}
}
