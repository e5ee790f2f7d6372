package agent_test

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/notify"
)

// TestClientUserCannotConnect runs medic as root against a root-owned 0600
// socket that the check's client_user (nobody) may not connect to: root's
// connect succeeds, yet the check goes failing and the incident's cause is
// socket permissions, with nobody named and the fix. This is the false pass
// a proxy answers with 502.
func TestClientUserCannotConnect(t *testing.T) {
	if os.Geteuid() != 0 {
		systemdtest.Unavailable(t, "needs root to probe on behalf of another user")
	}
	m := systemdtest.Start(t)
	path := systemdtest.UnixSocket(t, 0o600)
	if c, err := net.Dial("unix", path); err != nil {
		t.Fatalf("root cannot connect to %s: %v", path, err)
	} else {
		_ = c.Close()
	}

	check := fmt.Sprintf(`
[[check]]
name = "sock"
client_user = "nobody"
retry_interval = "50ms"
failures = 2
successes = 1
grace = "0s"
  [[check.probe]]
  type = "unix"
  path = %q
  [check.remedy]
  action = "none"
  [check.escalate]
  notify = ["log"]
`, path)
	h := faultAgent(t, m, "", check, nil, nil)
	var fir []*notify.Message
	systemdtest.WaitFor(t, 20*time.Second, func() bool {
		fir = h.firing()
		return len(fir) > 0
	}, "an incident for the socket nobody cannot connect to")
	inc := fir[0].Incident
	t.Logf("incident %s: cause %q, problem %q", inc.ID, inc.Cause, inc.Problem)
	if inc.Cause != string(diagnose.SocketPermissions) {
		t.Errorf("cause = %q, want %q", inc.Cause, diagnose.SocketPermissions)
	}
	wantProblem := "unix:" + path + " permission denied for nobody: no write permission (owner root, group root, mode 0600)"
	if inc.Problem != wantProblem {
		t.Errorf("problem = %q, want %q", inc.Problem, wantProblem)
	}
	if dg := inc.Diagnosis; dg == nil || !strings.Contains(dg.Primary.Hint, "SocketMode=0660") {
		t.Errorf("diagnosis %+v lacks the fix (SocketMode=0660)", dg)
	}
	if st := h.agent.Statuses()[0]; st.State == "healthy" {
		t.Errorf("state = %s, want the check failing", st.State)
	}

	// Once nobody may connect, the check is healthy again.
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	systemdtest.WaitFor(t, 20*time.Second, func() bool { return h.agent.Statuses()[0].State == "healthy" }, "the check to be healthy once the socket is 0666")
}
