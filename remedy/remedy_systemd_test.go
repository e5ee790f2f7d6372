package remedy

// Integration tests against a real systemd user manager (internal/systemdtest):
// every unit here is a real service of systemd 252 and every job result is
// the one systemd reports.

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/internal/usermanager"
)

// newReal returns a Remediator on m's bus that may act on allowed, and a
// counter of its dials.
func newReal(t *testing.T, m *usermanager.Manager, allowed ...string) (*Remediator, *atomic.Int32) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var dials atomic.Int32
	dial := func(ctx context.Context) (Systemd, error) {
		dials.Add(1)
		return m.Conn(ctx)
	}
	r := New(ctx, dial, allowed, zaptest.NewLogger(t))
	t.Cleanup(func() {
		r.Close()
		cancel()
	})
	return r, &dials
}

// startBackend links and starts a backend unit and waits until it answers.
func startBackend(t *testing.T, m *usermanager.Manager, unit string, extra ...string) string {
	t.Helper()
	addr := systemdtest.FreePort(t)
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(systemdtest.Backend(t), addr, extra...))
	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, unit+" to answer on "+addr)
	return addr
}

func killAndWaitFailed(t *testing.T, m *usermanager.Manager, unit string) {
	t.Helper()
	systemdtest.Systemctl(t, m, "kill", "-s", "KILL", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool {
		return systemdtest.Prop(t, m, unit, "ActiveState") == "failed"
	}, unit+" to be failed after SIGKILL")
}

func TestSystemdRestartKilledBackend(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-a.service"
	addr := startBackend(t, m, unit)
	r, _ := newReal(t, m, unit)
	ctx := t.Context()

	first, err := r.State(ctx, unit)
	if err != nil {
		t.Fatal(err)
	}
	if first.ActiveState != "active" || first.SubState != "running" || first.MainPID == 0 || first.LoadState != "loaded" {
		t.Fatalf("state before kill = %v", first)
	}
	if !m.Reused && first.ControlGroup != m.Cgroup+"/app.slice/"+unit {
		t.Errorf("ControlGroup = %q, want it below the manager's %s", first.ControlGroup, m.Cgroup)
	}
	if first.ActiveEnterTimestamp.IsZero() || time.Since(first.ActiveEnterTimestamp) > time.Minute {
		t.Errorf("ActiveEnterTimestamp = %v, want a moment ago", first.ActiveEnterTimestamp)
	}
	killAndWaitFailed(t, m, unit)

	out, err := r.Remedy(ctx, unit, Restart, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outcome: before %v, after %v, %s", out.Before, out.After, out.Duration)
	if out.JobResult != JobDone || out.JobResultInferred || out.WaitedForJob || out.ResetFailed || out.Attempts != 1 || out.Job == 0 {
		t.Errorf("outcome = %+v, want job done after 1 attempt", out)
	}
	if b := out.Before; b.ActiveState != "failed" || b.Result != "signal" || b.ExecMainCode != 2 || b.ExecMainStatus != 9 || b.MainPID != 0 {
		t.Errorf("Before = %v, want failed by signal 9 (CLD_KILLED)", b)
	}
	if a := out.After; !a.Up() || a.MainPID == 0 || a.MainPID == first.MainPID || a.Job != 0 {
		t.Errorf("After = %v, want active with a new main pid (old %d)", a, first.MainPID)
	}
	if !out.After.ActiveEnterTimestamp.After(first.ActiveEnterTimestamp) {
		t.Errorf("ActiveEnterTimestamp did not move: %v -> %v", first.ActiveEnterTimestamp, out.After.ActiveEnterTimestamp)
	}
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, "restarted backend to answer on "+addr)
	if got := systemdtest.Prop(t, m, unit, "MainPID"); got != strconv.Itoa(int(out.After.MainPID)) {
		t.Errorf("systemctl shows MainPID %s, Remedy said %d", got, out.After.MainPID)
	}
}

// An always-failing backend as Type=notify: the start job waits for
// READY=1, the process exits 1 first, and systemd reports job result
// "failed" with Result=exit-code.
func TestSystemdRestartAlwaysFailingNotify(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-b.service"
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr,
		"Type=notify", "ExecStart=", "ExecStart="+bin+" -listen "+addr+" -fail"))
	r, _ := newReal(t, m, unit)

	out, err := r.Remedy(t.Context(), unit, Restart, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outcome: before %v, after %v", out.Before, out.After)
	if out.JobResult != JobFailed || out.ResetFailed || out.Attempts != 1 {
		t.Errorf("outcome = %+v, want job failed after 1 attempt", out)
	}
	if a := out.After; a.ActiveState != "failed" || a.Result != "exit-code" || a.ExecMainCode != 1 || a.ExecMainStatus != 1 {
		t.Errorf("After = %v, want failed with exit-code 1 (CLD_EXITED)", a)
	}
}

// The same always-failing backend as Type=simple: the start job is "done"
// as soon as systemd forked the process, which then exits 1; only the unit
// state (and a probe) tells that the restart did not hold.
func TestSystemdRestartAlwaysFailingSimple(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-b2.service"
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr,
		"ExecStart=", "ExecStart="+bin+" -listen "+addr+" -fail"))
	r, _ := newReal(t, m, unit)

	out, err := r.Remedy(t.Context(), unit, Restart, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out.JobResult != JobDone || out.Attempts != 1 {
		t.Errorf("outcome = %+v, want job done (Type=simple) after 1 attempt", out)
	}
	systemdtest.WaitFor(t, 5*time.Second, func() bool {
		s, err := r.State(t.Context(), unit)
		return err == nil && s.ActiveState == "failed" && s.Result == "exit-code" && s.ExecMainStatus == 1
	}, "the unit to end failed with exit-code 1")
	if systemdtest.Answers(addr) {
		t.Errorf("%s answers, but the backend exits at once", addr)
	}
}

func TestSystemdNotAllowedIsRefusedWithoutTouchingTheBus(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-c.service"
	addr := startBackend(t, m, unit)
	r, dials := newReal(t, m, "some-other.service")
	pid := systemdtest.Prop(t, m, unit, "MainPID")
	entered := systemdtest.Prop(t, m, unit, "ActiveEnterTimestampMonotonic")

	for _, action := range []Action{Restart, Start} {
		out, err := r.Remedy(t.Context(), unit, action, time.Second)
		if !errors.Is(err, ErrNotAllowed) {
			t.Errorf("Remedy(%s) error = %v, want ErrNotAllowed", action, err)
		}
		if out.Attempts != 0 || out.JobResult != "" {
			t.Errorf("Remedy(%s) outcome = %+v, want nothing done", action, out)
		}
	}
	if n := dials.Load(); n != 0 {
		t.Errorf("dialed the bus %d times for a unit that is not allowed", n)
	}
	if got := systemdtest.Prop(t, m, unit, "MainPID"); got != pid {
		t.Errorf("MainPID changed %s -> %s", pid, got)
	}
	if got := systemdtest.Prop(t, m, unit, "ActiveEnterTimestampMonotonic"); got != entered {
		t.Errorf("ActiveEnterTimestampMonotonic changed %s -> %s", entered, got)
	}
	if !systemdtest.Answers(addr) {
		t.Errorf("%s stopped answering", addr)
	}
}

// An operator's start is still in ExecStartPre=/bin/sleep 1 when medic
// wants to restart: Remedy waits for that job instead of queueing its own.
func TestSystemdWaitsForExistingJob(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-d.service"
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr, "ExecStartPre=/bin/sleep 1"))
	r, _ := newReal(t, m, unit)

	systemdtest.Systemctl(t, m, "start", "--no-block", unit)
	job := systemdtest.Prop(t, m, unit, "Job")
	if job == "" || job == "0" {
		t.Fatalf("no job after start --no-block (Job=%q)", job)
	}
	start := time.Now()
	out, err := r.Remedy(t.Context(), unit, Restart, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("waited %s for job %s: %+v", time.Since(start), job, out)
	if !out.WaitedForJob || out.Attempts != 0 || strconv.Itoa(int(out.Job)) != job {
		t.Errorf("outcome = %+v, want WaitedForJob for job %s and no job of its own", out, job)
	}
	if out.JobResult != JobDone || !out.JobResultInferred {
		t.Errorf("JobResult = %q (inferred %v), want done, inferred", out.JobResult, out.JobResultInferred)
	}
	// The operator's job is queued; systemd may not have begun running it
	// (inactive/dead) or be in ExecStartPre (activating/start-pre).
	if out.Before.Job == 0 || (out.Before.ActiveState != "activating" && out.Before.ActiveState != "inactive") {
		t.Errorf("Before = %v, want a pending job, inactive or activating", out.Before)
	}
	if !out.After.Up() || out.After.Job != 0 {
		t.Errorf("After = %v, want active, no job", out.After)
	}
	if d := time.Since(start); d < 500*time.Millisecond {
		t.Errorf("Remedy returned after %s, before the operator's job could end", d)
	}
	// Type=simple: active as soon as the process runs, a moment before it
	// listens.
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, addr+" to answer")
}

// medic's restarts count against StartLimitBurst. systemd 252 answers a
// start refused by the limit with job result "failed" and Result
// "start-limit-hit" (no D-Bus error); Remedy resets and retries once.
func TestSystemdStartLimitHitIsResetOnce(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-e.service"
	addr := startBackend(t, m, unit, "[Unit]", "StartLimitIntervalSec=60", "StartLimitBurst=1")
	r, _ := newReal(t, m, unit)
	killAndWaitFailed(t, m, unit)

	out, err := r.Remedy(t.Context(), unit, Restart, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("outcome: %+v", out)
	if !out.ResetFailed || out.Attempts != 2 || out.JobResult != JobDone {
		t.Errorf("outcome = %+v, want ResetFailed, 2 attempts, job done", out)
	}
	if !out.After.Up() {
		t.Errorf("After = %v, want active", out.After)
	}
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, "backend to answer after the retry")

	// The burst is spent again: the next restart hits the limit, is reset
	// and retried once more, and still succeeds.
	out, err = r.Remedy(t.Context(), unit, Restart, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if !out.ResetFailed || out.Attempts != 2 || out.JobResult != JobDone {
		t.Errorf("second outcome = %+v, want ResetFailed, 2 attempts, job done", out)
	}
}

// A restart that systemd refuses by the start limit still stops the old
// process first (the restart job's stop half runs): that is what systemd
// 252 does, and why Remedy retries at once.
func TestSystemdStartLimitHitStopsTheOldProcess(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-e2.service"
	startBackend(t, m, unit, "[Unit]", "StartLimitIntervalSec=60", "StartLimitBurst=1")
	_, err := m.Systemctl(t.Context(), "restart", unit)
	if err == nil {
		t.Fatal("systemctl restart within the start limit succeeded")
	}
	if got := systemdtest.Prop(t, m, unit, "Result"); got != "start-limit-hit" {
		t.Errorf("Result = %q, want start-limit-hit", got)
	}
	if got := systemdtest.Prop(t, m, unit, "ActiveState"); got != "failed" {
		t.Errorf("ActiveState = %q, want failed", got)
	}
}

// systemd 252 sets Result "start-limit-hit" only over Result "success": a
// unit that already failed keeps its earlier Result when a start is refused
// by the start limit, and the refused start never leaves "failed". Remedy
// tells the refusal by InactiveExitTimestamp standing still.
func TestSystemdStartLimitHitKeepsEarlierResult(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-e3.service"
	startBackend(t, m, unit, "[Unit]", "StartLimitIntervalSec=60", "StartLimitBurst=1")
	killAndWaitFailed(t, m, unit)
	exit := systemdtest.Prop(t, m, unit, "InactiveExitTimestampMonotonic")
	if _, err := m.Systemctl(t.Context(), "restart", unit); err == nil {
		t.Fatal("systemctl restart within the start limit succeeded")
	}
	if got := systemdtest.Prop(t, m, unit, "Result"); got != "signal" {
		t.Errorf("Result = %q, want signal (kept from the kill)", got)
	}
	if got := systemdtest.Prop(t, m, unit, "InactiveExitTimestampMonotonic"); got != exit {
		t.Errorf("InactiveExitTimestampMonotonic moved %s -> %s on a refused start", exit, got)
	}
}

func TestSystemdStartInactiveUnit(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-f.service"
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	r, _ := newReal(t, m, unit)

	out, err := r.Remedy(t.Context(), unit, Start, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out.JobResult != JobDone || out.Before.ActiveState != "inactive" || !out.After.Up() {
		t.Errorf("outcome = %+v", out)
	}
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, "started backend to answer")
	// Start on an active unit is a no-op job that is done at once.
	pid := out.After.MainPID
	out, err = r.Remedy(t.Context(), unit, Start, 10*time.Second)
	if err != nil || out.JobResult != JobDone || out.After.MainPID != pid {
		t.Errorf("second start: %+v, %v; want done, same pid %d", out, err, pid)
	}
}

func TestSystemdJobTimeout(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-g.service"
	bin := systemdtest.Backend(t)
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, systemdtest.FreePort(t), "ExecStartPre=/bin/sleep 30"))
	r, _ := newReal(t, m, unit)

	start := time.Now()
	out, err := r.Remedy(t.Context(), unit, Restart, 300*time.Millisecond)
	if !errors.Is(err, ErrJobTimeout) {
		t.Fatalf("error = %v, want ErrJobTimeout", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Remedy took %s with a 300ms job timeout", d)
	}
	if out.JobResult != JobTimeout || out.Attempts != 1 || out.After.Job == 0 {
		t.Errorf("outcome = %+v, want timeout with the job still pending", out)
	}
	// The next Remedy finds that job and waits for it rather than queueing
	// another; cancelling ctx ends the wait.
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	out, err = r.Remedy(ctx, unit, Restart, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) || !out.WaitedForJob || out.Attempts != 0 {
		t.Errorf("second Remedy = %+v, %v; want waited for the pending job until ctx ended", out, err)
	}
}

func TestSystemdStateOfUnknownUnit(t *testing.T) {
	m := systemdtest.Start(t)
	r, _ := newReal(t, m, "medic-nonexistent.service")
	s, err := r.State(t.Context(), "medic-nonexistent.service")
	if err != nil {
		t.Fatal(err)
	}
	if s.LoadState != "not-found" || s.ActiveState != "inactive" {
		t.Errorf("state = %v, want not-found/inactive", s)
	}
	out, err := r.Remedy(t.Context(), "medic-nonexistent.service", Restart, time.Second)
	if err == nil {
		t.Errorf("Remedy of a unit that does not exist = %+v, nil; want an error", out)
	}
	t.Logf("error: %v", err)
}

// The production DialFunc, Dial("user"), reaches the user manager through
// DBUS_SESSION_BUS_ADDRESS.
func TestSystemdDialUser(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-remedy-h.service"
	addr := startBackend(t, m, unit)
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", m.BusAddress())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	r := New(ctx, Dial("user"), []string{unit}, zaptest.NewLogger(t))
	defer r.Close()
	killAndWaitFailed(t, m, unit)
	out, err := r.Remedy(t.Context(), unit, Restart, 10*time.Second)
	if err != nil || out.JobResult != JobDone {
		t.Fatalf("Remedy = %+v, %v", out, err)
	}
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, "backend to answer")
}

// A real bus restart drops the connection; the next call redials and
// works. (The fakes cover the drops whose timing only a fake can choose.)
func TestSystemdBusRestartIsRedialed(t *testing.T) {
	m := systemdtest.Start(t)
	if m.Reused {
		t.Skip("would restart the user's own session bus")
	}
	unit := "medic-remedy-i.service"
	addr := startBackend(t, m, unit)
	r, dials := newReal(t, m, unit)
	if _, err := r.State(t.Context(), unit); err != nil {
		t.Fatal(err)
	}
	systemdtest.Systemctl(t, m, "restart", "dbus.service")
	killAndWaitFailed(t, m, unit)
	var (
		out Outcome
		err error
	)
	// The manager re-attaches to the new bus a moment after it is up.
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		out, err = r.Remedy(t.Context(), unit, Restart, 10*time.Second)
		if err != nil {
			t.Logf("Remedy: %v", err)
		}
		return err == nil
	}, "Remedy to work after the bus restart")
	if out.JobResult != JobDone || dials.Load() < 2 {
		t.Errorf("outcome = %+v after %d dials, want done after a redial", out, dials.Load())
	}
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, "backend to answer")
}
