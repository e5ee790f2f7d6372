package sockperm

import (
	"errors"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestAccess decides on a real socket file and directories for made-up
// credentials, so that every owner/group/other branch of path_resolution(7)
// is taken whoever runs the test.
func TestAccess(t *testing.T) {
	// t.TempDir's parent is 0700: make one others may search.
	dir, err := os.MkdirTemp("", "medic-sockperm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "sub")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(sub, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if os.Geteuid() == 0 {
		// Root's files would take the uid 0 branch: give them to
		// someone else.
		for _, p := range []string{sub, path} {
			if err := os.Chown(p, 4242, 4243); err != nil {
				t.Fatal(err)
			}
		}
	}
	f, err := Stat(path)
	if err != nil || !f.Exists || !f.IsSocket {
		t.Fatalf("Stat(%s) = %+v, %v", path, f, err)
	}
	owner, group := f.UID, f.GID
	other := Credential{Name: "other", UID: owner + 1000, GIDs: []uint32{group + 1000}}
	member := Credential{Name: "member", UID: owner + 1000, GIDs: []uint32{group + 1000, group}}
	self := Credential{Name: "self", UID: owner}

	for _, tc := range []struct {
		name       string
		dirMode    os.FileMode
		sockMode   os.FileMode
		c          Credential
		wantDenial Denial
		wantAs     string
	}{
		{"owner may write", 0o755, 0o600, self, None, "owner"},
		{"owner without w", 0o755, 0o060, self, NoWrite, "owner"},
		{"other without w", 0o755, 0o660, other, NoWrite, "other"},
		{"other with w", 0o755, 0o666, other, None, "other"},
		{"supplementary group with w", 0o755, 0o660, member, None, "group " + GroupName(group)},
		{"group without w", 0o755, 0o606, member, NoWrite, "group " + GroupName(group)},
		{"no search on the directory", 0o750, 0o666, other, NoSearch, ""},
		{"search as group", 0o710, 0o666, member, None, "group " + GroupName(group)},
		{"root", 0o700, 0o600, Credential{Name: "root"}, None, "root"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Chmod(sub, tc.dirMode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(path, tc.sockMode); err != nil {
				t.Fatal(err)
			}
			f, err := Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			v := f.Access(tc.c)
			if v.Denial != tc.wantDenial || v.As != tc.wantAs {
				t.Fatalf("Access = %+v, want denial %d as %q", v, tc.wantDenial, tc.wantAs)
			}
			if v.Denial == NoSearch && v.Dir != sub {
				t.Errorf("Dir = %s, want %s", v.Dir, sub)
			}
		})
	}
}

func TestStatMissing(t *testing.T) {
	f, err := Stat(filepath.Join(t.TempDir(), "missing.sock"))
	if err != nil || f.Exists {
		t.Errorf("Stat of a missing path = %+v, %v; want Exists false, nil", f, err)
	}
}

func TestDeniedError(t *testing.T) {
	e := &DeniedError{User: "www-data", File: File{Path: "/run/app/app.sock", Mode: 0o600},
		Verdict: Verdict{Denial: NoWrite, As: "other"}}
	want := "www-data cannot connect to /run/app/app.sock: no write permission (owner root, group root, mode 0600)"
	if e.Error() != want {
		t.Errorf("Error() = %q, want %q", e.Error(), want)
	}
	if !errors.Is(e, syscall.EACCES) || !errors.Is(e, os.ErrPermission) {
		t.Errorf("%v does not match EACCES", e)
	}
}

func TestSearchDirs(t *testing.T) {
	if got := strings.Join(SearchDirs("/run/app/app.sock"), " "); got != "/ /run /run/app" {
		t.Errorf("SearchDirs = %q", got)
	}
	if got := strings.Join(SearchDirs("/app.sock"), " "); got != "/" {
		t.Errorf("SearchDirs(/app.sock) = %q", got)
	}
}

func TestLookupUnknown(t *testing.T) {
	_, err := Lookup("medic-no-such-user")
	if _, ok := errors.AsType[user.UnknownUserError](err); !ok {
		t.Errorf("Lookup of an unknown user: %v, want user.UnknownUserError", err)
	}
	c, err := Lookup("uid:4000000000")
	if err != nil || c.UID != 4000000000 || c.Name != "uid:4000000000" {
		t.Errorf("Lookup(uid:4000000000) = %+v, %v", c, err)
	}
}
