package agent_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// TestPortInUseIncident: the check's unit fails at every start because
// another unit holds its port, while that other process answers the
// probes. medic must not call the check healthy: it restarts the unit
// (in vain), gives up, and the firing message names the conflict and the
// holder, not a crash.
func TestPortInUseIncident(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	app := fmt.Sprintf("medic-agent-portinuse-app-%d.service", os.Getpid())
	squatter := fmt.Sprintf("medic-agent-portinuse-squatter-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, app, systemdtest.BackendUnit(bin, addr))
	systemdtest.LinkUnit(t, m, squatter, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", app)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, app+" to answer")

	h := faultAgent(t, m, "", faultCheck("app", app, addr, `  max_restarts = 2
  window = "1m"
  verify_timeout = "1s"
  backoff = "100ms"
  retry_after = "1h"`, ""), []string{app}, nil)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.state() == "healthy" && h.agent.Statuses()[0].LastOK }, "the check to be healthy")

	// The squatter takes the port the moment app lets go of it: app is
	// stopped by hand (not medic's business: an operator's stop), the
	// squatter started, then app started again, failing to bind.
	systemdtest.Systemctl(t, m, "stop", app)
	systemdtest.Systemctl(t, m, "start", squatter)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, squatter+" to answer")
	t.Cleanup(func() { _, _ = m.Systemctl(t.Context(), "stop", squatter) })
	systemdtest.Systemctl(t, m, "start", app)

	systemdtest.WaitFor(t, 30*time.Second, func() bool { return h.state() == "gave_up" }, "medic to give up on "+app)
	if st := systemdtest.Prop(t, m, app, "ActiveState"); st != "failed" {
		t.Errorf("%s is %s, want failed (its port is taken)", app, st)
	}
	// The firing message is queued just after the transition. A
	// verification may pass in the milliseconds before the unit's bind
	// fails (the other process answers), closing one incident: the
	// incident medic gives up on is the last one.
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return len(h.firing()) > 0 }, "the firing message")
	fir := h.firing()
	last := fir[len(fir)-1] // verify_failed or gave_up: one firing per incident
	dg := last.Incident.Diagnosis
	if dg == nil {
		t.Fatal("the firing message has no diagnosis")
	}
	pid := systemdtest.Prop(t, m, squatter, "MainPID")
	if dg.Primary.Cause != diagnose.PortInUse || !strings.Contains(dg.Primary.Summary, "pid "+pid) || !strings.Contains(dg.Primary.Summary, squatter) {
		t.Errorf("primary finding %+v, want %q naming pid %s of %s", dg.Primary, diagnose.PortInUse, pid, squatter)
	}
	// The other process keeps answering: the check must not turn healthy
	// while its unit stays failed.
	time.Sleep(2 * time.Second)
	if st := h.state(); st != "gave_up" {
		t.Errorf("state %s 2 s after giving up, want gave_up: %s is failed and another process answers", st, app)
	}
	t.Logf("firing: %s: %s (fix: %s)", dg.Primary.Cause, dg.Primary.Summary, dg.Primary.Hint)
	h.stop()
}
