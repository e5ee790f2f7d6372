package diagnose_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

// TestDiagnoseClientCannotConnect probes, as root, a root-owned 0600
// socket on behalf of client user nobody: root connects, nobody could not,
// so the probe fails and the cause is socket permissions with the fix.
func TestDiagnoseClientCannotConnect(t *testing.T) {
	if os.Geteuid() != 0 {
		systemdtest.Unavailable(t, "needs root to probe on behalf of another user")
	}
	path := systemdtest.UnixSocket(t, 0o600)
	spec := probe.Spec{Type: "unix", Path: path, ClientUser: "nobody"}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	res := p.Probe(context.Background(), time.Second)
	if res.OK || res.Class != probe.ClassPermission {
		t.Fatalf("probe as root for nobody: OK=%t class=%q err=%v, want a permission failure", res.OK, res.Class, res.Err)
	}
	diagnose.ForgetSocketSnapshot()
	dg := diagnose.Diagnose(context.Background(), diagnose.Input{Spec: spec, Result: res, ClientUser: "nobody"})
	wantCause(t, dg, diagnose.SocketPermissions, fmt.Sprintf("nobody cannot connect to %s (owner root, group root, mode 0600)", path))
	if want := "chown nobody the socket or set SocketMode=0660 and SocketGroup=nobody"; dg.Primary.Hint != want {
		t.Errorf("hint = %q, want %q", dg.Primary.Hint, want)
	}
}

// TestDiagnoseMissingSocket: a socket path that does not exist (ENOENT) is
// not a permission problem; nothing created the socket.
func TestDiagnoseMissingSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	dg := diagnoseNow(t, probe.Spec{Type: "unix", Path: path}, nil)
	wantCause(t, dg, diagnose.NotRunning, "nothing created the socket "+path)
	for _, f := range dg.Secondary {
		if f.Cause == diagnose.SocketPermissions {
			t.Errorf("a missing socket also reads as %q: %s", f.Cause, f.Summary)
		}
	}

	// The unit is active but the file is missing: the path is wrong (or
	// the socket is not made yet), still not a permission problem.
	u := &unit.State{Name: "app.service", LoadState: "loaded", ActiveState: "active", SubState: "running"}
	dg = diagnoseNow(t, probe.Spec{Type: "unix", Path: path}, u)
	wantCause(t, dg, diagnose.WrongPort, "nothing created the socket "+path+" although app.service is active/running")
}
