package main

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// TestDiagnoseClientUser runs `medic diagnose unix:PATH --client-user
// nobody` as root on a root-owned 0600 socket: root may connect, nobody may
// not, so the command names socket permissions and exits 1; with a 0666
// socket it exits 0.
func TestDiagnoseClientUser(t *testing.T) {
	if os.Geteuid() != 0 {
		systemdtest.Unavailable(t, "needs root to probe on behalf of another user")
	}
	path := systemdtest.UnixSocket(t, 0o600)

	out, _, err := execute("diagnose", "--client-user", "nobody", "unix:"+path)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("diagnose of a socket nobody cannot connect to: err %v, want exit 1\n%s", err, out)
	}
	for _, want := range []string{"socket permissions", "nobody cannot connect to " + path, "SocketMode=0660"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	if out, _, err := execute("diagnose", "--client-user", "nobody", "unix:"+path); err != nil {
		t.Errorf("diagnose of a 0666 socket: %v, want exit 0\n%s", err, out)
	}
}
