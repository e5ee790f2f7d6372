package usermanager

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// bootOrSkip boots a private manager, or skips (fails under
// MEDIC_REQUIRE_SYSTEMD=1) when the machine cannot.
func bootOrSkip(t *testing.T) *Manager {
	t.Helper()
	if err := Available(); err != nil {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatalf("MEDIC_REQUIRE_SYSTEMD=1: %v", err)
		}
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := Boot(ctx, Options{Log: testWriter{t}})
	if err != nil {
		t.Fatalf("boot: %v", err)
	}
	t.Cleanup(func() {
		if err := m.Stop(); err != nil {
			t.Errorf("stop: %v", err)
		}
		assertGone(t, m)
	})
	return m
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func assertGone(t *testing.T, m *Manager) {
	t.Helper()
	if _, err := os.Stat(fmt.Sprintf("/proc/%d", m.PID)); err == nil {
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", m.PID)); !strings.Contains(string(st), ") Z ") {
			t.Errorf("manager pid %d still there after Stop", m.PID)
		}
	}
	for _, root := range []string{CgroupV1Root, CgroupV2Root} {
		if _, err := os.Stat(filepath.Join(root, m.Cgroup)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("cgroup %s%s still there after Stop (%v)", root, m.Cgroup, err)
		}
	}
	if _, err := os.Stat(m.RunDir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("run dir %s still there after Stop", m.RunDir)
	}
}

func show(t *testing.T, m *Manager, unit, prop string) string {
	t.Helper()
	out, err := m.Systemctl(context.Background(), "show", "-p", prop, "--value", unit)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBootTwoAtOnceDoNotInterfere(t *testing.T) {
	if err := Available(); err != nil {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatalf("MEDIC_REQUIRE_SYSTEMD=1: %v", err)
		}
		t.Skip(err)
	}
	var (
		wg sync.WaitGroup
		ms [2]*Manager
	)
	for i := range ms {
		wg.Go(func() {
			// t.Fatal may not be called from a goroutine: boot here and
			// judge below.
			m, err := Boot(context.Background(), Options{Log: testWriter{t}})
			if err != nil {
				t.Errorf("boot %d: %v", i, err)
				return
			}
			ms[i] = m
		})
	}
	wg.Wait()
	for _, m := range ms {
		if m != nil {
			t.Cleanup(func() {
				if err := m.Stop(); err != nil {
					t.Errorf("stop: %v", err)
				}
				assertGone(t, m)
			})
		}
	}
	if t.Failed() {
		t.FailNow()
	}
	ctx := context.Background()
	// The same unit name in both managers: each must run its own copy in
	// its own cgroup.
	unit := "medic-twin.service"
	for _, m := range ms {
		t.Logf("manager pid %d booted in %s", m.PID, m.BootDuration)
		content := "[Unit]\nStartLimitIntervalSec=0\n[Service]\nType=simple\nRestart=no\nExecStart=/bin/sh -c 'echo hello from $$$$; exec /bin/sleep 1000'\n"
		if err := m.LinkUnit(ctx, unit, content); err != nil {
			t.Fatal(err)
		}
		if _, err := m.Systemctl(ctx, "start", unit); err != nil {
			t.Fatal(err)
		}
	}
	pids := map[string]bool{}
	for _, m := range ms {
		cg := show(t, m, unit, "ControlGroup")
		if want := m.Cgroup + "/app.slice/" + unit; cg != want {
			t.Errorf("ControlGroup = %q, want %q", cg, want)
		}
		pid := show(t, m, unit, "MainPID")
		pids[pid] = true
		procs, err := os.ReadFile(filepath.Join(CgroupV1Root, cg, "cgroup.procs"))
		if err != nil {
			t.Fatal(err)
		}
		if strings.TrimSpace(string(procs)) != pid {
			t.Errorf("cgroup.procs of %s = %q, want main pid %s", cg, procs, pid)
		}
		status, _ := m.Systemctl(ctx, "status", unit)
		if !strings.Contains(status, "CGroup: "+cg) || !strings.Contains(status, pid+" /bin/sleep 1000") {
			t.Errorf("systemctl --user status %s does not show the process in the manager's cgroup:\n%s", unit, status)
		}
		// The manager itself sits in <cgroup>/init.scope, not in ours.
		self, _ := os.ReadFile(filepath.Join(CgroupV1Root, m.Cgroup, "init.scope", "cgroup.procs"))
		if strings.TrimSpace(string(self)) != strconv.Itoa(m.PID) {
			t.Errorf("init.scope of %s holds %q, want manager pid %d", m.Cgroup, self, m.PID)
		}
	}
	for _, m := range ms {
		// Units inherit the manager's output (DefaultStandardOutput=inherit).
		pid := show(t, m, unit, "MainPID")
		b, _ := os.ReadFile(m.LogFile)
		if !strings.Contains(string(b), "hello from "+pid) {
			t.Errorf("manager log lacks the unit's output %q:\n%s", "hello from "+pid, b)
		}
	}
	if len(pids) != 2 {
		t.Fatalf("the two managers report the same main pid: %v", pids)
	}

	// Killing the unit in one manager leaves the other alone.
	if _, err := ms[0].Systemctl(ctx, "kill", "-s", "KILL", unit); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for show(t, ms[0], unit, "ActiveState") != "failed" {
		if time.Now().After(deadline) {
			t.Fatalf("ActiveState after kill -s KILL = %q, want failed", show(t, ms[0], unit, "ActiveState"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := show(t, ms[0], unit, "Result"); got != "signal" {
		t.Errorf("Result = %q, want signal", got)
	}
	if got := show(t, ms[1], unit, "ActiveState"); got != "active" {
		t.Errorf("other manager's unit ActiveState = %q, want active", got)
	}
}

func TestDetectReusesRunningManager(t *testing.T) {
	m := bootOrSkip(t)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	ctx := context.Background()
	d, err := Detect(ctx)
	if err != nil || d == nil {
		t.Fatalf("Detect = %v, %v; want the booted manager", d, err)
	}
	if !d.Reused || d.RuntimeDir != m.RuntimeDir || d.BusAddress() != m.BusAddress() {
		t.Fatalf("Detect = %+v", d)
	}
	if err := d.LinkUnit(ctx, "medic-reuse.service", "[Service]\nExecStart=/bin/sleep 1000\n"); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Systemctl(ctx, "start", "medic-reuse.service"); err != nil {
		t.Fatal(err)
	}
	if err := d.Stop(); err != nil {
		t.Fatal(err)
	}
	// The reused manager still runs; the unit is gone.
	if got := show(t, m, "medic-reuse.service", "LoadState"); got != "not-found" {
		t.Errorf("LoadState after reused Stop = %q, want not-found", got)
	}
	if _, err := m.Systemctl(ctx, "show", "-p", "Version"); err != nil {
		t.Errorf("manager gone after a reused Stop: %v", err)
	}
}

func TestDetectNone(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/bus")
	d, err := Detect(context.Background())
	if d != nil || err != nil {
		t.Fatalf("Detect = %v, %v; want nil, nil", d, err)
	}
}
