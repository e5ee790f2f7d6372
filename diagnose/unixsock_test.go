package diagnose

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// requireRootForTest skips a test that needs root, or fails it under
// MEDIC_REQUIRE_SYSTEMD=1.
func requireRootForTest(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
		t.Fatalf("%s needs root (MEDIC_REQUIRE_SYSTEMD=1)", why)
	}
	t.Skipf("%s needs root", why)
}

// socketDir returns a fresh directory with the given mode whose parents
// anyone may search.
func socketDir(t *testing.T, mode os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	// t.TempDir makes its directories 0700; open them up.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	sub := filepath.Join(dir, "run")
	if err := os.Mkdir(sub, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(sub, mode); err != nil {
		t.Fatal(err)
	}
	return sub
}

func listenUnix(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func accessOf(t *testing.T, f SocketFile, user string) Access {
	t.Helper()
	for _, a := range f.Access {
		if a.User == user {
			return a
		}
	}
	t.Fatalf("no access entry for %s in %+v", user, f.Access)
	return Access{}
}

func TestInspectSocketFileOwnerOnly(t *testing.T) {
	requireRootForTest(t, "checking socket permissions for other users")
	dir := socketDir(t, 0o755)
	path := filepath.Join(dir, "app.sock")
	listenUnix(t, path)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}
	listening := []Socket{{Proto: "unix", Path: path}}

	f, err := InspectSocketFile(path, listening, []string{"www-data", "self", "nobody"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Exists || !f.IsSocket || !f.Listening {
		t.Errorf("Exists, IsSocket, Listening = %v, %v, %v; want all true", f.Exists, f.IsSocket, f.Listening)
	}
	if f.Mode != 0o600 || f.UID != 0 || f.Owner != "root" || f.Group != "root" {
		t.Errorf("mode %04o uid %d owner %q group %q; want 0600 0 root root", f.Mode, f.UID, f.Owner, f.Group)
	}
	for _, u := range []string{"www-data", "nobody"} {
		a := accessOf(t, f, u)
		if a.CanConnect {
			t.Errorf("%s: CanConnect true; want false", u)
		}
		if want := "no write permission on the socket (mode 0600, owner root"; !strings.HasPrefix(a.Why, want) {
			t.Errorf("%s: Why %q; want prefix %q", u, a.Why, want)
		}
	}
	if a := accessOf(t, f, "root"); !a.CanConnect || a.Why != "root" || a.UID != 0 {
		t.Errorf("self (root): %+v; want CanConnect, Why root", a)
	}
	if got, want := SocketHint(f, "www-data"), "chown www-data the socket or set SocketMode=0660 and SocketGroup=www-data"; got != want {
		t.Errorf("SocketHint = %q; want %q", got, want)
	}
}

func TestInspectSocketFileGroup(t *testing.T) {
	requireRootForTest(t, "checking socket permissions for other users")
	dir := socketDir(t, 0o755)
	path := filepath.Join(dir, "app.sock")
	listenUnix(t, path)
	if err := os.Chown(path, 0, 33); err != nil { // www-data's group on Debian
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		t.Fatal(err)
	}
	f, err := InspectSocketFile(path, []Socket{{Proto: "unix", Path: path}}, []string{"www-data", "uid:65534", "uid:4242"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Group != "www-data" || f.GID != 33 {
		t.Errorf("group %q (%d); want www-data (33)", f.Group, f.GID)
	}
	if a := accessOf(t, f, "www-data"); !a.CanConnect || a.Why != "write permission as group www-data" {
		t.Errorf("www-data: %+v; want CanConnect as group www-data", a)
	}
	if a := accessOf(t, f, "nobody"); a.CanConnect || a.UID != 65534 {
		t.Errorf("uid:65534: %+v; want nobody, cannot connect", a)
	}
	if a := accessOf(t, f, "uid:4242"); a.CanConnect || a.UID != 4242 {
		t.Errorf("uid:4242: %+v; want cannot connect", a)
	}
	if got := SocketHint(f, "www-data"); got != "" {
		t.Errorf("SocketHint(www-data) = %q; want empty", got)
	}
}

func TestInspectSocketFileNoSearch(t *testing.T) {
	requireRootForTest(t, "checking socket permissions for other users")
	dir := socketDir(t, 0o700)
	path := filepath.Join(dir, "app.sock")
	listenUnix(t, path)
	if err := os.Chmod(path, 0o666); err != nil {
		t.Fatal(err)
	}
	f, err := InspectSocketFile(path, []Socket{{Proto: "unix", Path: path}}, []string{"www-data"})
	if err != nil {
		t.Fatal(err)
	}
	a := accessOf(t, f, "www-data")
	if want := "no search permission on " + dir + " (mode 0700, owner root)"; a.CanConnect || a.Why != want {
		t.Errorf("www-data: %+v; want cannot connect, Why %q", a, want)
	}
	if got, want := SocketHint(f, "www-data"), "give www-data search permission on "+dir; !strings.HasPrefix(got, want) {
		t.Errorf("SocketHint = %q; want prefix %q", got, want)
	}
}

func TestInspectSocketFileStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.sock")
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	l.SetUnlinkOnClose(false)
	l.Close()
	// The kernel agrees: nobody listens.
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		t.Fatal("dial a closed socket: connected")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial a closed socket: %v; want ECONNREFUSED", err)
	}
	other := []Socket{{Proto: "unix", Path: filepath.Join(dir, "other.sock")}, {Proto: "tcp"}}
	f, err := InspectSocketFile(path, other, []string{"self"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Exists || !f.IsSocket || f.Listening {
		t.Errorf("Exists, IsSocket, Listening = %v, %v, %v; want true, true, false", f.Exists, f.IsSocket, f.Listening)
	}
	if got, want := SocketHint(f, ""), "the socket file is stale: nothing listens on it; restart the unit"; got != want {
		t.Errorf("SocketHint = %q; want %q", got, want)
	}
}

func TestInspectSocketFileMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "nope.sock")
	f, err := InspectSocketFile(path, nil, []string{"self"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Exists || f.Path != path || f.Access != nil {
		t.Errorf("got %+v; want Exists false, no access", f)
	}
	if got, want := SocketHint(f, "self"), "the socket does not exist: is the backend running and configured for this path?"; got != want {
		t.Errorf("SocketHint = %q; want %q", got, want)
	}
}

func TestInspectSocketFileNotSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	if err := os.WriteFile(path, nil, 0o666); err != nil {
		t.Fatal(err)
	}
	f, err := InspectSocketFile(path, nil, []string{"self", "no-such-user-medic"})
	if err != nil {
		t.Fatal(err)
	}
	if !f.Exists || f.IsSocket {
		t.Errorf("Exists, IsSocket = %v, %v; want true, false", f.Exists, f.IsSocket)
	}
	if a := accessOf(t, f, "no-such-user-medic"); a.CanConnect || !strings.HasPrefix(a.Why, "look up user: ") {
		t.Errorf("unknown user: %+v", a)
	}
	if got := SocketHint(f, ""); !strings.Contains(got, "is not a socket") {
		t.Errorf("SocketHint = %q; want 'is not a socket'", got)
	}
}

func TestSocketHint(t *testing.T) {
	ok := SocketFile{Path: "/run/app/app.sock", Exists: true, IsSocket: true, Listening: true}
	tests := []struct {
		name   string
		access []Access
		client string
		want   string
	}{
		{"all can", []Access{{User: "www-data", CanConnect: true, Why: "write permission as other"}}, "www-data", ""},
		{"write", []Access{{User: "www-data", Why: "no write permission on the socket (mode 0600, owner root, group root)"}}, "www-data",
			"chown www-data the socket or set SocketMode=0660 and SocketGroup=www-data"},
		{"search", []Access{{User: "nginx", Why: "no search permission on /run/app (mode 0700, owner app)"}}, "nginx",
			"give nginx search permission on /run/app (chmod o+x, or a group nginx is in)"},
		{"first denied", []Access{{User: "root", CanConnect: true, Why: "root"}, {User: "nginx", Why: "no write permission on the socket (mode 0600, owner app, group app)"}}, "",
			"chown nginx the socket or set SocketMode=0660 and SocketGroup=nginx"},
		{"by uid", []Access{{User: "uid:4242", UID: 4242, Why: "no write permission on the socket (mode 0600, owner app, group app)"}}, "uid:4242",
			"chown uid:4242 the socket or set SocketMode=0660 and SocketGroup=uid:4242"},
		{"client not asked", []Access{{User: "nginx", Why: "no write permission on the socket"}}, "www-data", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := ok
			f.Access = tt.access
			if got := SocketHint(f, tt.client); got != tt.want {
				t.Errorf("SocketHint = %q; want %q", got, tt.want)
			}
		})
	}
}

func TestSocketFileParentDirs(t *testing.T) {
	got := strings.Join(parentDirs("/run/app/app.sock"), " ")
	if want := "/ /run /run/app"; got != want {
		t.Errorf("parentDirs = %q; want %q", got, want)
	}
	if got := strings.Join(parentDirs("/app.sock"), " "); got != "/" {
		t.Errorf("parentDirs(/app.sock) = %q; want /", got)
	}
}
