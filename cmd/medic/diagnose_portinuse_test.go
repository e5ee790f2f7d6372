package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// TestDiagnosePortInUse: a unit that failed at start because another
// unit holds its port. The probe passes (the other process answers), yet
// diagnose names the conflict and the holder, and exits 1.
func TestDiagnosePortInUse(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	app := fmt.Sprintf("medic-portinuse-app-%d.service", os.Getpid())
	squatter := fmt.Sprintf("medic-portinuse-squatter-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, app, systemdtest.BackendUnit(bin, addr))
	systemdtest.LinkUnit(t, m, squatter, systemdtest.BackendUnit(bin, addr))
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	systemdtest.Systemctl(t, m, "start", squatter)
	t.Cleanup(func() { _, _ = m.Systemctl(t.Context(), "stop", squatter, app) })
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, squatter+" listening on "+addr)
	holderPID := systemdtest.Prop(t, m, squatter, "MainPID")

	// Type=simple: the start job succeeds, then the backend fails to bind
	// and exits 1.
	systemdtest.Systemctl(t, m, "start", app)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Prop(t, m, app, "ActiveState") == "failed" }, app+" failed")
	time.Sleep(300 * time.Millisecond) // the host's socket listing is shared for 250ms

	out, _, err := execute("diagnose", "--bus", "user", "--unit", app, "tcp://"+addr)
	t.Logf("medic diagnose --unit %s tcp://%s:\n%s", app, addr, out)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Errorf("err %v, want exit status 1: %s failed while %s answers", err, app, squatter)
	}
	for _, want := range []string{
		"answers",
		"cause:   port in use by another process",
		"held by pid " + holderPID + " (medic-test-back", // comm is cut at 15 bytes
		squatter,
		"systemctl restart " + app,
		"✗ backend running",
		"✗ port listening",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "cause:   backend crashed") {
		t.Errorf("the crash is the symptom, the conflict the cause:\n%s", out)
	}

	out, _, _ = execute("diagnose", "--json", "--bus", "user", "--unit", app, "tcp://"+addr)
	var dg struct {
		OK      bool `json:"ok"`
		Primary struct {
			Cause    string         `json:"cause"`
			Evidence map[string]any `json:"evidence"`
		} `json:"primary"`
	}
	if err := json.Unmarshal([]byte(out), &dg); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if !dg.OK || dg.Primary.Cause != "port in use by another process" ||
		fmt.Sprint(dg.Primary.Evidence["holder_pid"]) != holderPID || dg.Primary.Evidence["holder_unit"] != squatter {
		t.Errorf("--json: ok %v, primary %+v; want ok (the probe passed), the conflict, holder pid %s in %s", dg.OK, dg.Primary, holderPID, squatter)
	}
	// The journal line is quoted when the journal can be read; the user
	// manager's units log to its own journal only where journald runs.
	if line, ok := dg.Primary.Evidence["journal_line"].(string); ok && !strings.Contains(strings.ToLower(line), "address already in use") {
		t.Errorf("journal_line %q does not report EADDRINUSE", line)
	}

	// The conflict resolved: the unit starts and diagnose exits 0.
	systemdtest.Systemctl(t, m, "stop", squatter)
	systemdtest.Systemctl(t, m, "start", app)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, app+" listening")
	if out, _, err := execute("diagnose", "--bus", "user", "--unit", app, "tcp://"+addr); err != nil {
		t.Errorf("after the conflict: err %v\n%s", err, out)
	}
}
