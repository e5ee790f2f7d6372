package diagnose_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/internal/usermanager"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// unitOf reads the state of unit name from the real user manager over
// D-Bus, as medic does.
func unitOf(t *testing.T, m *usermanager.Manager, name string) *unit.State {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dial := func(ctx context.Context) (remedy.Systemd, error) { return m.Conn(ctx) }
	rem := remedy.New(ctx, dial, nil, zap.NewNop())
	defer rem.Close()
	s, err := rem.State(ctx, name)
	if err != nil {
		t.Fatalf("read %s: %v", name, err)
	}
	return &s
}

func probeOnce(t *testing.T, spec probe.Spec) probe.Result {
	t.Helper()
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	return p.Probe(context.Background(), 300*time.Millisecond)
}

func diagnoseNow(t *testing.T, spec probe.Spec, u *unit.State) diagnose.Diagnosis {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	diagnose.ForgetSocketSnapshot()
	dg := diagnose.Diagnose(ctx, diagnose.Input{Spec: spec, Result: probeOnce(t, spec), Unit: u})
	b, _ := json.MarshalIndent(dg, "", "  ")
	t.Logf("diagnosis: %s", b)
	return dg
}

func wantCause(t *testing.T, dg diagnose.Diagnosis, cause diagnose.Cause, summaryParts ...string) {
	t.Helper()
	if dg.Primary.Cause != cause {
		t.Fatalf("primary cause = %q (%s), want %q", dg.Primary.Cause, dg.Primary.Summary, cause)
	}
	for _, p := range summaryParts {
		if !strings.Contains(dg.Primary.Summary, p) {
			t.Errorf("summary %q lacks %q", dg.Primary.Summary, p)
		}
	}
	if dg.Primary.Hint == "" {
		t.Errorf("no hint for %s", cause)
	}
	if len(dg.Checklist) != 5 {
		t.Errorf("checklist has %d items, want 5", len(dg.Checklist))
	}
}

func item(dg diagnose.Diagnosis, name string) diagnose.Item {
	for _, it := range dg.Checklist {
		if it.Name == name {
			return it
		}
	}
	return diagnose.Item{}
}

func startBackend(t *testing.T, m *usermanager.Manager, unit, listen string, extra ...string) {
	t.Helper()
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(systemdtest.Backend(t), listen, extra...))
	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(listen) }, unit+" to answer")
}

func TestDiagnoseUnitStopped(t *testing.T) {
	m := systemdtest.Start(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-diag-stopped.service"
	startBackend(t, m, unit, addr)
	systemdtest.Systemctl(t, m, "stop", unit)
	spec := probe.Spec{Type: "tcp", Address: addr}
	dg := diagnoseNow(t, spec, unitOf(t, m, unit))
	wantCause(t, dg, diagnose.NotRunning, unit, "inactive/dead")
	if dg.Primary.Evidence["active_state"] != "inactive" {
		t.Errorf("evidence active_state = %v", dg.Primary.Evidence["active_state"])
	}
	if it := item(dg, diagnose.ItemRunning); it.Status != diagnose.Fail {
		t.Errorf("backend running = %+v, want fail", it)
	}
	if it := item(dg, diagnose.ItemFirewall); it.Status != diagnose.Pass {
		t.Errorf("firewall = %+v, want pass (refused, not dropped)", it)
	}
}

func TestDiagnoseUnitKilled(t *testing.T) {
	m := systemdtest.Start(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-diag-killed.service"
	startBackend(t, m, unit, addr)
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Prop(t, m, unit, "ActiveState") == "failed" }, "the unit to fail")
	dg := diagnoseNow(t, probe.Spec{Type: "tcp", Address: addr}, unitOf(t, m, unit))
	wantCause(t, dg, diagnose.Crashed, "result signal", "killed by signal 9 (KILL)")
	if dg.Primary.Evidence["result"] != "signal" || dg.Primary.Evidence["exec_main_status"] != int32(9) {
		t.Errorf("evidence = %v", dg.Primary.Evidence)
	}
}

func TestDiagnoseUnitExits3(t *testing.T) {
	m := systemdtest.Start(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-diag-exit3.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(systemdtest.Backend(t), addr, "ExecStart=", "ExecStart=/bin/sh -c 'exit 3'"))
	_, _ = m.Systemctl(context.Background(), "start", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Prop(t, m, unit, "ActiveState") == "failed" }, "the unit to fail")
	dg := diagnoseNow(t, probe.Spec{Type: "tcp", Address: addr}, unitOf(t, m, unit))
	wantCause(t, dg, diagnose.Crashed, "result exit-code", "exited, status 3")
	if dg.Primary.Evidence["exec_main_status"] != int32(3) {
		t.Errorf("evidence exec_main_status = %v, want 3", dg.Primary.Evidence["exec_main_status"])
	}
}

func TestDiagnoseWrongPort(t *testing.T) {
	m := systemdtest.Start(t)
	listen := systemdtest.FreePort(t)
	probed := systemdtest.FreePort(t)
	unit := "medic-diag-wrongport.service"
	startBackend(t, m, unit, listen)
	spec := probe.Spec{Type: "http", HTTP: probe.HTTPOptions{URL: "http://" + probed + "/health"}}
	dg := diagnoseNow(t, spec, unitOf(t, m, unit))
	_, port, _ := net.SplitHostPort(listen)
	wantCause(t, dg, diagnose.WrongPort, unit+" is listening on "+listen, "the check probes "+probed)
	if dg.Primary.Hint != "the upstream port should be "+port {
		t.Errorf("hint = %q", dg.Primary.Hint)
	}
	if it := item(dg, diagnose.ItemListening); it.Status != diagnose.Fail || !strings.Contains(it.Evidence, listen) {
		t.Errorf("port listening = %+v", it)
	}
	if it := item(dg, diagnose.ItemRunning); it.Status != diagnose.Pass {
		t.Errorf("backend running = %+v, want pass", it)
	}
}

func TestDiagnoseNameDoesNotResolve(t *testing.T) {
	dg := diagnoseNow(t, probe.Spec{Type: "tcp", Address: "backend.invalid:8080"}, nil)
	wantCause(t, dg, diagnose.WrongHost, `"backend.invalid" does not resolve`)
}

func TestDiagnoseLocalhostMixup(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		systemdtest.Missing(t, "no IPv6 loopback: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if v4, err := net.Listen("tcp4", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
		v4.Close() // the port is free on 127.0.0.1
	} else {
		t.Skipf("port %d taken on 127.0.0.1", port)
	}
	dg := diagnoseNow(t, probe.Spec{Type: "tcp", Address: fmt.Sprintf("127.0.0.1:%d", port)}, nil)
	wantCause(t, dg, diagnose.WrongHost, fmt.Sprintf("listens on [::1]:%d", port), fmt.Sprintf("probes 127.0.0.1:%d", port))
}

func TestDiagnoseStaleSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	dg := diagnoseNow(t, probe.Spec{Type: "unix", Path: path}, nil)
	wantCause(t, dg, diagnose.SocketPermissions, "stale")
	if dg.Primary.Evidence["exists"] != true || dg.Primary.Evidence["listening"] != false {
		t.Errorf("evidence = %v", dg.Primary.Evidence)
	}
	if it := item(dg, diagnose.ItemSocket); it.Status != diagnose.Fail {
		t.Errorf("socket item = %+v", it)
	}
}

// The OOM killer cannot be made to strike a unit of the private user
// manager on demand (its units get no memory controller on this hybrid
// hierarchy), so this one case feeds the unit state systemd reports after
// an OOM kill (Result=oom-kill) instead of reading it over D-Bus.
func TestDiagnoseOOMKilledUnitState(t *testing.T) {
	diagnose.ForgetSocketSnapshot()
	u := &unit.State{Name: "my-app.service", ActiveState: "failed", SubState: "failed", Result: "oom-kill", ExecMainCode: 2, ExecMainStatus: 9}
	dg := diagnose.Diagnose(context.Background(), diagnose.Input{
		Spec:   probe.Spec{Type: "tcp", Address: "127.0.0.1:1"},
		Result: probe.Result{Class: probe.ClassRefused, Target: "127.0.0.1:1", Err: errors.New("connection refused")},
		Unit:   u,
	})
	wantCause(t, dg, diagnose.OOMKilled, "OOM killer")
}

// Socket permissions, as production sees them: medic and the proxy are not
// root. The probe and the whole diagnosis run in a copy of the test binary
// started as uid 65534 (nobody) against a root-owned 0600 socket.
const diagHelperEnv = "MEDIC_DIAG_HELPER_SOCKET"

func TestDiagnoseHelperProcess(t *testing.T) {
	path := os.Getenv(diagHelperEnv)
	if path == "" {
		t.Skip("helper process for TestDiagnoseSocketPermission")
	}
	spec := probe.Spec{Type: "unix", Path: path}
	p, _ := probe.New(spec)
	res := p.Probe(context.Background(), time.Second)
	dg := diagnose.Diagnose(context.Background(), diagnose.Input{Spec: spec, Result: res, ClientUser: "nobody"})
	b, _ := json.Marshal(dg)
	fmt.Printf("DIAGNOSIS %s\n", b)
	os.Exit(0)
}

func TestDiagnoseSocketPermission(t *testing.T) {
	if os.Getuid() != 0 {
		systemdtest.Unavailable(t, "needs root to run a probe as another uid")
	}
	dir, err := os.MkdirTemp("", "medic-diag-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "diagnose.test")
	if err := diagCopyExe(exe); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestDiagnoseHelperProcess$")
	cmd.Dir = dir
	cmd.Env = []string{diagHelperEnv + "=" + path, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, Groups: []uint32{}}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid 65534: %v\n%s", err, out)
	}
	var dg diagnose.Diagnosis
	for l := range strings.Lines(string(out)) {
		if j, ok := strings.CutPrefix(l, "DIAGNOSIS "); ok {
			if err := json.Unmarshal([]byte(j), &dg); err != nil {
				t.Fatal(err)
			}
		}
	}
	t.Logf("diagnosis as nobody: %s", out)
	if dg.Primary.Cause != diagnose.SocketPermissions {
		t.Fatalf("cause = %q (%s), want socket permissions", dg.Primary.Cause, dg.Primary.Summary)
	}
	ev := dg.Primary.Evidence
	if ev["owner"] != "root" || ev["mode"] != "0600" {
		t.Errorf("evidence owner/mode = %v/%v, want root/0600", ev["owner"], ev["mode"])
	}
	access := fmt.Sprint(ev["access"])
	if !strings.Contains(access, "nobody: cannot connect") {
		t.Errorf("access = %s, want nobody: cannot connect", access)
	}
	if !strings.Contains(dg.Primary.Hint, "SocketMode=0660") {
		t.Errorf("hint = %q", dg.Primary.Hint)
	}
}

func diagCopyExe(dst string) error {
	src, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
