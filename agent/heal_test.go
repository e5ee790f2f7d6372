package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/internal/usermanager"
	"github.com/medic-watchdog/medic/logging"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/remedy"
)

// healConfig is a check on one backend unit with fast timings, so that the
// tests run in seconds; %[1]s is the unit, %[2]s the backend's address and
// %[3]s extra [check.remedy] lines.
const healConfig = `
[agent]
bus = "user"
interval = "1s"
timeout = "300ms"
state_dir = "STATE_DIR"

[[check]]
name = "backend"
unit = "%[1]s"
retry_interval = "50ms"
failures = 2
successes = 1
grace = "0s"

  [[check.probe]]
  type = "tcp"
  address = "%[2]s"

  [[check.probe]]
  type = "http"
  url = "http://%[2]s/health"
  expect_body = "ok"

  [check.remedy]
%[3]s

  [check.escalate]
  notify = ["log"]

[[notifier]]
name = "log"
type = "log"
`

// harness runs an agent in the background against a real user manager.
type harness struct {
	m      *usermanager.Manager
	logs   *observer.ObservedLogs
	agent  *agent.Agent
	rem    *remedy.Remediator
	outbox *memOutbox
	stop   func()
}

func startAgent(t *testing.T, m *usermanager.Manager, unit, addr, remedyExtra string) *harness {
	t.Helper()
	return startAgentWith(t, m, unit, addr, remedyExtra, "")
}

// startAgentWith is startAgent with checkExtra lines added to the check.
func startAgentWith(t *testing.T, m *usermanager.Manager, unit, addr, remedyExtra, checkExtra string) *harness {
	t.Helper()
	return startAgentCustom(t, m, unit, addr, "", true, checkExtra, remedyExtra)
}

// startAgentWithWatch is startAgent that also follows an nginx error log.
func startAgentWithWatch(t *testing.T, m *usermanager.Manager, unit, addr, errorLog string) *harness {
	t.Helper()
	return startAgentCustom(t, m, unit, addr, errorLog, true, "", `  verify_timeout = "5s"`)
}

// startAgentCustom runs an agent on healConfig with checkExtra lines in the
// check (and optional remedy lines), following errorLog when set, with
// unit events on or off.
func startAgentCustom(t *testing.T, m *usermanager.Manager, unit, addr, errorLog string, unitEvents bool, checkExtra string, remedyExtra ...string) *harness {
	t.Helper()
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	grace := "grace = \"0s\"\n"
	if strings.Contains(checkExtra, "grace =") {
		grace = "" // the check sets its own
	}
	text := strings.Replace(fmt.Sprintf(healConfig, unit, addr, strings.Join(remedyExtra, "\n")), "grace = \"0s\"\n", grace+checkExtra+"\n", 1)
	if errorLog != "" {
		text += fmt.Sprintf("\n[[watch.nginx]]\nerror_log = %q\n", errorLog)
	}
	text = strings.Replace(text, "STATE_DIR", t.TempDir(), 1)
	opts := []agent.Option{}
	if unitEvents {
		opts = append(opts, agent.WithUnitWatch(remedy.DialSignals("user")))
	}
	cfg, err := config.Parse([]byte(text), "heal.toml")
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	return runAgent(t, m, cfg, []string{unit}, zaptest.NewLogger(t), nil, opts...)
}

// runAgent runs an agent on cfg against the user manager m in the
// background, logging to log and to an observer the harness reads; only
// units may be remedied, through wrap(remedy) when wrap is set. The agent
// stops when the test ends (or at h.stop).
func runAgent(t *testing.T, m *usermanager.Manager, cfg *config.Config, units []string, testLog *zap.Logger,
	wrap func(agent.Remedier) agent.Remedier, opts ...agent.Option) *harness {
	t.Helper()
	core, logs := observer.New(zapcore.DebugLevel)
	log := zap.New(zapcore.NewTee(core, testLog.Core()))

	ctx, cancel := context.WithCancel(context.Background())
	rem := remedy.New(ctx, remedy.Dial("user"), units, log.Named("remedy"))
	var r agent.Remedier = rem
	if wrap != nil {
		r = wrap(rem)
	}
	ob := &memOutbox{}
	a, err := agent.New(cfg, log, r, ob, opts...)
	if err != nil {
		cancel()
		t.Fatalf("new agent: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	h := &harness{m: m, logs: logs, agent: a, rem: rem, outbox: ob}
	var stopped bool
	h.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Errorf("Run did not return within 15s of cancel")
		}
		rem.Close()
	}
	t.Cleanup(h.stop)
	return h
}

// transitions returns the logged state changes as "from→to".
func (h *harness) transitions() []string {
	var out []string
	for _, e := range h.logs.FilterField(zap.String(logging.EventField, "state change")).AllUntimed() {
		f := e.ContextMap()
		out = append(out, fmt.Sprintf("%v→%v", f["from"], f["to"]))
	}
	return out
}

// count counts the log lines of a kind: the runner's by their event field
// (their messages are sentences), the other packages' by their message.
func (h *harness) count(event string) int {
	return h.logs.Filter(func(e observer.LoggedEntry) bool {
		return e.Message == event || e.ContextMap()[logging.EventField] == event
	}).Len()
}

func (h *harness) state() string { return h.agent.Statuses()[0].State }

// TestHealKilledBackend kills a backend unit with SIGKILL and expects medic to
// notice, restart it over D-Bus and verify that it answers again.
func TestHealKilledBackend(t *testing.T) {
	m := systemdtest.Start(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-heal-killed.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, "the backend to answer")

	// A unit running beside it that medic is not configured for.
	bystander := "medic-heal-bystander.service"
	otherAddr := systemdtest.FreePort(t)
	systemdtest.LinkUnit(t, m, bystander, systemdtest.BackendUnit(bin, otherAddr))
	systemdtest.Systemctl(t, m, "start", bystander)
	bystanderInvocation := systemdtest.Prop(t, m, bystander, "InvocationID")

	h := startAgent(t, m, unit, addr, `  verify_timeout = "5s"
  max_restarts = 3
  backoff = "200ms"`)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.agent.Statuses()[0].LastOK }, "a first passing probe")

	oldPID := systemdtest.Prop(t, m, unit, "MainPID")
	killed := time.Now()
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return !systemdtest.Answers(addr) }, "the killed backend to stop answering")
	systemdtest.WaitFor(t, 20*time.Second, func() bool {
		return systemdtest.Answers(addr) && h.count("remedy finished") > 0
	}, "medic to restart the backend")
	back := time.Since(killed)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.state() == "healthy" && len(h.transitions()) >= 4 }, "medic to verify the backend")

	// The unit's death arrived as a D-Bus signal, and systemd's word was
	// enough: medic restarted at once, without a probe round, long before
	// the failure threshold could have been reached.
	died := h.logs.FilterField(zap.String(logging.EventField, "unit died")).All()
	if len(died) != 1 || died[0].Time.Sub(killed) > 500*time.Millisecond || died[0].ContextMap()["result"] != "signal" {
		t.Errorf("unit died lines = %v, want one within 500ms of the kill with result signal", died)
	}
	if n := h.count("probe failed"); n > 0 && died != nil {
		for _, e := range h.logs.FilterField(zap.String(logging.EventField, "probe failed")).All() {
			if e.Time.Before(died[0].Time) && e.Time.After(killed) {
				t.Errorf("a probe failed before medic acted on systemd's word: %v", e)
			}
		}
	}
	want := []string{"healthy→failing", "failing→restarting", "restarting→verifying", "verifying→healthy"}
	if got := h.transitions(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("transitions = %v, want %v", got, want)
	}
	if newPID := systemdtest.Prop(t, m, unit, "MainPID"); newPID == oldPID || newPID == "0" {
		t.Errorf("MainPID = %s after the restart, was %s: no new process", newPID, oldPID)
	}
	if got := systemdtest.Prop(t, m, unit, "ActiveState"); got != "active" {
		t.Errorf("ActiveState = %s, want active", got)
	}
	fin := h.logs.FilterField(zap.String(logging.EventField, "remedy finished")).AllUntimed()
	if len(fin) != 1 || fin[0].ContextMap()["job_result"] != "done" {
		t.Errorf("remedies = %d (%v), want one with job_result done", len(fin), fin)
	}
	t.Logf("kill → port answering again: %s", back.Round(time.Millisecond))

	// The bystander was never touched, and the remedy refuses it outright.
	if got := systemdtest.Prop(t, m, bystander, "InvocationID"); got != bystanderInvocation {
		t.Errorf("bystander InvocationID changed from %s to %s", bystanderInvocation, got)
	}
	if _, err := h.rem.Remedy(context.Background(), bystander, remedy.Action("restart"), 5*time.Second); !errors.Is(err, remedy.ErrNotAllowed) {
		t.Errorf("Remedy(%s) error = %v, want ErrNotAllowed", bystander, err)
	}
	if got := systemdtest.Prop(t, m, bystander, "InvocationID"); got != bystanderInvocation {
		t.Errorf("bystander restarted by a refused remedy: InvocationID %s → %s", bystanderInvocation, got)
	}
	h.stop()
}

// TestGiveUpOnAlwaysFailingUnit runs a unit whose ExecStart always fails:
// medic restarts it exactly max_restarts times, gives up, and restarts it no
// more within the window.
func TestGiveUpOnAlwaysFailingUnit(t *testing.T) {
	m := systemdtest.Start(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-always-fails.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr, "ExecStart=", "ExecStart="+bin+" -listen "+addr+" -fail"))

	const maxRestarts = 2
	window := 4 * time.Second
	h := startAgent(t, m, unit, addr, fmt.Sprintf(`  max_restarts = %d
  window = "%s"
  verify_timeout = "1s"
  backoff = "100ms"
  retry_after = "1h"`, maxRestarts, window))

	systemdtest.WaitFor(t, 30*time.Second, func() bool { return h.state() == "gave_up" }, "medic to give up")
	gaveUp := time.Now()
	if got := h.count("remedy finished"); got != maxRestarts {
		t.Errorf("restarts before giving up = %d, want %d", got, maxRestarts)
	}
	// Keep probing through a whole window: no further restart.
	time.Sleep(window + time.Second)
	if got := h.count("remedy finished") + h.count("remedy not carried out"); got != maxRestarts {
		t.Errorf("restarts %s after giving up = %d, want still %d", time.Since(gaveUp).Round(time.Second), got, maxRestarts)
	}
	if got := h.state(); got != "gave_up" {
		t.Errorf("state a window after giving up = %s, want gave_up", got)
	}
	if st := h.agent.Statuses()[0]; st.LastProbe.Before(gaveUp.Add(window / 2)) {
		t.Errorf("last probe at %s: medic stopped probing after giving up", st.LastProbe)
	}
	tr := h.transitions()
	if len(tr) == 0 || tr[len(tr)-1] != "verifying→gave_up" {
		t.Errorf("transitions = %v, want them to end in verifying→gave_up", tr)
	}
	msgs := h.outbox.all()
	if len(msgs) != 1 || msgs[0].m.Kind != notify.Firing || msgs[0].notifier != "log" {
		t.Fatalf("queued messages = %+v, want exactly one firing message for notifier log", msgs)
	}
	if us := msgs[0].m.Incident.UnitState; us.ActiveState != "failed" || us.Result != "exit-code" || us.ExecMainStatus != 1 {
		t.Errorf("unit state in the firing message = %+v, want failed, exit-code, status 1", us)
	}
	h.stop()
}

// TestOperatorStopIsLeftAlone: `systemctl stop` by an operator is not
// healed: the check shows the unit as stopped by the operator, and medic
// resumes when the operator starts the unit again. With restart_stopped the
// same stop is healed.
func TestOperatorStopIsLeftAlone(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-operator-stop.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	h := startAgent(t, m, unit, addr, `  verify_timeout = "5s"`)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.agent.Statuses()[0].LastOK }, "a first passing probe")

	systemdtest.Systemctl(t, m, "stop", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool {
		s := h.agent.Statuses()[0]
		return s.Paused != nil && strings.Contains(s.Paused.Reason, "stopped by the operator")
	}, "the check to show the operator's stop")
	time.Sleep(1500 * time.Millisecond) // failures go on; no restart may follow
	if n := h.count("remedy finished"); n != 0 {
		t.Fatalf("medic restarted a unit an operator stopped (%d remedies)", n)
	}
	if got := systemdtest.Prop(t, m, unit, "ActiveState"); got != "inactive" {
		t.Errorf("ActiveState = %s, want inactive (left alone)", got)
	}

	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return h.agent.Statuses()[0].Paused == nil }, "the pause to lift when the unit started")
	systemdtest.WaitFor(t, 10*time.Second, func() bool { s := h.agent.Statuses()[0]; return s.State == "healthy" && s.LastOK }, "the check to be healthy again")
	// And a death now is healed again. (With grace = "0s" medic may also
	// have restarted the unit the operator just started, before it
	// listened: count from here.)
	before := h.count("remedy finished")
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		return h.count("remedy finished") > before && h.agent.Statuses()[0].State == "healthy" && systemdtest.Answers(addr)
	}, "the death after the operator's start to be healed")
	h.stop()
}

// TestOperatorRestartIsNotAFailure: an operator's `systemctl restart`,
// `stop` + `start`, or `start` of a slow unit is never a failure: the
// check stays healthy, no incident opens, medic neither restarts nor
// diagnoses, with probes every 100 ms, 50 ms after a failure, and a failure threshold of 2. The
// grace period (2 s) covers the time from "active" to listening, which
// systemd cannot see for a Type=simple unit; the operator's job is covered
// however long it takes.
func TestOperatorRestartIsNotAFailure(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-operator-restart.service"
	// The backend takes 300 ms to listen after each start.
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr, "ExecStartPre=/bin/sleep 0.3"))
	systemdtest.Systemctl(t, m, "start", unit)
	h := startAgentWith(t, m, unit, addr, `  verify_timeout = "5s"`, "interval = \"100ms\"\ntimeout = \"80ms\"\ngrace = \"2s\"\n")
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.agent.Statuses()[0].LastOK }, "a first passing probe")

	for i := range 3 {
		systemdtest.Systemctl(t, m, "restart", unit)
		systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, "the backend to answer after the operator's restart")
		time.Sleep(200 * time.Millisecond)
		t.Logf("restart %d: %s", i+1, strings.Join(h.transitions(), " "))
	}
	systemdtest.Systemctl(t, m, "stop", unit)
	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, "the backend to answer after stop and start")
	time.Sleep(300 * time.Millisecond)

	if got := h.transitions(); len(got) != 0 {
		t.Errorf("operator's restarts changed the check's state: %v", got)
	}
	if n := h.count("remedy finished") + h.count("remedy not carried out"); n != 0 {
		t.Errorf("medic acted %d times on an operator's restarts", n)
	}
	if n := h.count("diagnosis"); n != 0 {
		t.Errorf("%d diagnoses taken during an operator's restarts", n)
	}
	if s := h.agent.Statuses()[0]; s.State != "healthy" || s.Incident != "" || s.Paused != nil {
		t.Errorf("status after the operator's restarts = %+v, want healthy, no incident, not paused", s)
	}
	h.stop()
}

func TestRestartStoppedHealsOperatorStop(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-restart-stopped.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	h := startAgentWith(t, m, unit, addr, `  verify_timeout = "5s"`, "restart_stopped = true\n")
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.agent.Statuses()[0].LastOK }, "a first passing probe")
	systemdtest.Systemctl(t, m, "stop", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.count("remedy finished") == 1 && systemdtest.Answers(addr) }, "the stopped unit to be restarted")
	h.stop()
}
