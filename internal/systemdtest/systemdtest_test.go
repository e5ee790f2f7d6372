package systemdtest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestBackendUnitLifecycle runs the backend as a unit of a real user
// manager: it answers on its port, SIGKILL through `systemctl --user kill`
// leaves the unit failed with Result=signal, and nothing restarts it.
func TestBackendUnitLifecycle(t *testing.T) {
	m := Start(t)
	bin := Backend(t)
	addr := FreePort(t)
	unit := "medic-lifecycle.service"
	LinkUnit(t, m, unit, BackendUnit(bin, addr))
	Systemctl(t, m, "start", unit)

	WaitFor(t, 5*time.Second, func() bool { return Answers(addr) }, "backend to answer on "+addr)
	resp, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("GET /health = %d %q, want 200 ok", resp.StatusCode, body)
	}

	if !m.Reused {
		if got, want := Prop(t, m, unit, "ControlGroup"), m.Cgroup+"/app.slice/"+unit; got != want {
			t.Errorf("ControlGroup = %q, want %q", got, want)
		}
	}
	pid := Prop(t, m, unit, "MainPID")
	status, _ := m.Systemctl(t.Context(), "status", unit)
	if !strings.Contains(status, pid+" "+bin) {
		t.Errorf("status does not list main pid %s running %s:\n%s", pid, bin, status)
	}

	Systemctl(t, m, "kill", "-s", "KILL", unit)
	WaitFor(t, 5*time.Second, func() bool { return Prop(t, m, unit, "ActiveState") == "failed" }, "ActiveState=failed after SIGKILL")
	if got := Prop(t, m, unit, "Result"); got != "signal" {
		t.Errorf("Result = %q, want signal", got)
	}
	if got := Prop(t, m, unit, "ExecMainStatus"); got != "9" {
		t.Errorf("ExecMainStatus = %q, want 9", got)
	}
	if Answers(addr) {
		t.Errorf("%s still answers after SIGKILL", addr)
	}
	if got := Prop(t, m, unit, "NRestarts"); got != "0" {
		t.Errorf("NRestarts = %q, want 0 (Restart=no)", got)
	}
}

func TestBackendUnitText(t *testing.T) {
	got := BackendUnit("/bin/b", "127.0.0.1:1", "ExecStartPre=/bin/true", "[Unit]", "StartLimitBurst=1")
	for _, want := range []string{
		"[Unit]\n", "StartLimitIntervalSec=0\n", "[Service]\n", "Type=simple\n", "Restart=no\n",
		"ExecStart=/bin/b -listen 127.0.0.1:1\nExecStartPre=/bin/true\n[Unit]\nStartLimitBurst=1\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("BackendUnit text lacks %q:\n%s", want, got)
		}
	}
}

// recorder catches what Unavailable does instead of ending the test.
type recorder struct {
	testing.TB
	fatal, skip string
}

func (r *recorder) Helper()                      {}
func (r *recorder) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recorder) Skipf(f string, args ...any)  { r.skip = fmt.Sprintf(f, args...) }

func TestUnavailableSkipsOrFails(t *testing.T) {
	t.Setenv(RequireEnv, "")
	r := &recorder{TB: t}
	Unavailable(r, "not root")
	if r.fatal != "" || !strings.Contains(r.skip, "not root") {
		t.Errorf("without %s: fatal=%q skip=%q, want a skip with the reason", RequireEnv, r.fatal, r.skip)
	}
	t.Setenv(RequireEnv, "1")
	r = &recorder{TB: t}
	Unavailable(r, "not root")
	if r.skip != "" || !strings.Contains(r.fatal, "not root") {
		t.Errorf("with %s=1: fatal=%q skip=%q, want a failure with the reason", RequireEnv, r.fatal, r.skip)
	}
}
