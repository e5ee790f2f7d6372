package probe

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/sockperm"
)

// clientDir makes a directory under the system's temporary directory (whose
// path others may search) with mode, for a socket a client other than root
// probes. t.TempDir's parent is 0700, so it cannot serve.
func clientDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "medic-probe-client-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
	return dir
}

// clientSocket listens on dir/app.sock (as root) and sets its mode and
// group.
func clientSocket(t *testing.T, dir string, mode os.FileMode, gid int) string {
	t.Helper()
	path := filepath.Join(dir, "app.sock")
	unixListener(t, path)
	if err := os.Chown(path, 0, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// memberOf creates a group and a user whose only supplementary group it is
// (its primary group is nogroup, 65534), and removes both at the end. It
// returns the user's name and the group's gid.
func memberOf(t *testing.T) (string, int) {
	t.Helper()
	suffix := strconv.Itoa(os.Getpid() % 100000)
	group, name := "medic-sg"+suffix, "medic-u"+suffix
	for _, args := range [][]string{
		{"groupadd", group},
		{"useradd", "-M", "-N", "-g", strconv.Itoa(nobodyGID), "-G", group, "-s", "/usr/sbin/nologin", name},
	} {
		if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
			skipOrFail(t, "%v: %v\n%s", args, err, out)
		}
		if args[0] == "groupadd" {
			t.Cleanup(func() { _ = exec.Command("groupdel", group).Run() })
		} else {
			t.Cleanup(func() { _ = exec.Command("userdel", name).Run() })
		}
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		t.Fatal(err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		t.Fatal(err)
	}
	return name, gid
}

// TestUnixClient runs as root, which may connect to any socket, and probes
// real sockets on behalf of client users that may not: the probe must fail
// with ClassPermission exactly when the client could not connect, and say
// who lacks what.
func TestUnixClient(t *testing.T) {
	if os.Geteuid() != 0 {
		skipOrFail(t, "probing on behalf of another user is tested as root (uid %d)", os.Geteuid())
	}
	member, gid := memberOf(t)

	closed := clientDir(t, 0o700)
	closedSock := clientSocket(t, closed, 0o666, 0)
	open := clientDir(t, 0o755)
	ownerOnly := clientSocket(t, open, 0o600, 0)
	open2 := clientDir(t, 0o755)
	everyone := clientSocket(t, open2, 0o666, 0)
	open3 := clientDir(t, 0o755)
	groupOnly := clientSocket(t, open3, 0o660, gid)

	for _, tc := range []struct {
		name, path, client string
		wantOK             bool
		wantErr            string
	}{
		{name: "socket mode 0600", path: ownerOnly, client: "nobody",
			wantErr: "nobody cannot connect to " + ownerOnly + ": no write permission (owner root, group root, mode 0600)"},
		{name: "directory mode 0700", path: closedSock, client: "nobody",
			wantErr: "nobody cannot connect to " + closedSock + ": no search permission on " + closed + " (owner root, group root, mode 0700)"},
		{name: "socket 0666 in a 0755 directory", path: everyone, client: "nobody", wantOK: true},
		{name: "group socket, client in the group as a supplementary group", path: groupOnly, client: member, wantOK: true},
		{name: "group socket, client not in the group", path: groupOnly, client: "nobody",
			wantErr: fmt.Sprintf("nobody cannot connect to %s: no write permission (owner root, group %s, mode 0660)", groupOnly, "medic-sg"+strconv.Itoa(os.Getpid()%100000))},
		{name: "root as client", path: ownerOnly, client: "root", wantOK: true},
		{name: "no client", path: ownerOnly, client: "", wantOK: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(Spec{Type: "unix", Path: tc.path, ClientUser: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			r := p.Probe(context.Background(), time.Second)
			if tc.wantOK {
				checkResult(t, r, "unix:"+tc.path, true, ClassNone)
				return
			}
			checkResult(t, r, "unix:"+tc.path, false, ClassPermission)
			if r.Err.Error() != tc.wantErr {
				t.Errorf("Err = %q\nwant  %q", r.Err, tc.wantErr)
			}
			if _, ok := errors.AsType[*sockperm.DeniedError](r.Err); !ok || !errors.Is(r.Err, syscall.EACCES) {
				t.Errorf("Err %T (%v) is not a *sockperm.DeniedError matching EACCES", r.Err, r.Err)
			}
			if want := "unix:" + tc.path + " permission denied for " + tc.client + ": "; !strings.HasPrefix(r.Problem(), want) {
				t.Errorf("Problem() = %q, want it to start with %q", r.Problem(), want)
			}
			if Classify(r.Err) != ClassPermission {
				t.Errorf("Classify(%v) = %q, want %q", r.Err, Classify(r.Err), ClassPermission)
			}
		})
	}

	// A socket medic cannot reach either fails as before, from connect.
	t.Run("missing socket", func(t *testing.T) {
		path := filepath.Join(open, "missing.sock")
		r := NewUnixAs(path, "nobody").Probe(context.Background(), time.Second)
		checkResult(t, r, "unix:"+path, false, ClassRefused, "dial unix "+path+": connect: no such file or directory")
	})
}

// TestUnixClientUnknown probes as medic when the client user does not exist
// on the host, and says so once, not at every probe.
func TestUnixClientUnknown(t *testing.T) {
	const ghost = "medic-no-such-user"
	if _, err := user.Lookup(ghost); err == nil {
		t.Skipf("user %s exists", ghost)
	}
	path := filepath.Join(t.TempDir(), "app.sock")
	unixListener(t, path)
	p := NewUnixAs(path, ghost)
	var (
		mu   sync.Mutex
		logs []string
	)
	p.logf = func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	for range 3 {
		checkResult(t, p.Probe(context.Background(), time.Second), "unix:"+path, true, ClassNone)
	}
	want := "probe unix:" + path + ": client_user " + ghost + ": user: unknown user " + ghost + "; probing as medic's own user only"
	if len(logs) != 1 || logs[0] != want {
		t.Errorf("logged %q, want once %q", logs, want)
	}
}

// TestUnixClientCached looks the client up once per clientLookupTTL, not at
// every probe.
func TestUnixClientCached(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	unixListener(t, path)
	p := NewUnixAs(path, "nobody")
	p.Probe(context.Background(), time.Second)
	first := p.credAt
	if first.IsZero() {
		if os.Geteuid() == nobodyUID {
			t.Skip("running as the client")
		}
		t.Fatal("the client was not looked up")
	}
	p.Probe(context.Background(), time.Second)
	if !p.credAt.Equal(first) {
		t.Errorf("the client was looked up again within %s", clientLookupTTL)
	}
}
