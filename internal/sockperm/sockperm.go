// Package sockperm decides whether a user may connect to a Unix socket file
// as the kernel decides it from file permissions: search (x) permission on
// every directory leading to the file, path_resolution(7), and write (w)
// permission on the socket file itself, unix(7) ("connecting to the socket
// object requires write permission on that file"). Both the probe, which
// fails a socket its client cannot use, and diagnosis, which explains why,
// use it.
package sockperm

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Credential is the identity path resolution checks against.
type Credential struct {
	// Name is the user's name, or "uid:N" when the uid has no name.
	Name string
	// UID is the user's uid.
	UID uint32
	// GIDs holds the primary group first, then the supplementary groups.
	GIDs []uint32
}

// Lookup resolves u to a Credential. u is a user name ("www-data"), "uid:N",
// or "self" for the current process (its uid, gid and supplementary groups
// from getgroups(2)). It fails with an error wrapping user.UnknownUserError
// when the name is not known on this host; a "uid:N" without a passwd entry
// is a Credential with no groups, not an error. When the user's groups
// cannot be listed, it returns the Credential with its primary group and a
// non-nil error.
func Lookup(u string) (Credential, error) {
	if u == "self" {
		c := Credential{UID: uint32(os.Getuid()), GIDs: []uint32{uint32(os.Getgid())}}
		c.Name = UserName(c.UID)
		groups, err := os.Getgroups()
		if err != nil {
			return c, fmt.Errorf("getgroups: %w", err)
		}
		for _, g := range groups {
			c.GIDs = append(c.GIDs, uint32(g))
		}
		return c, nil
	}
	var (
		usr *user.User
		err error
	)
	if n, ok := strings.CutPrefix(u, "uid:"); ok {
		id, perr := strconv.ParseUint(n, 10, 32)
		if perr != nil {
			return Credential{}, fmt.Errorf("parse %q: %w", u, perr)
		}
		usr, err = user.LookupId(n)
		if err != nil {
			// A uid without a passwd entry still has an identity; it has
			// no groups we could know of.
			if _, ok := errors.AsType[user.UnknownUserIdError](err); ok {
				return Credential{Name: u, UID: uint32(id)}, nil
			}
			return Credential{}, err
		}
	} else {
		usr, err = user.Lookup(u)
		if err != nil {
			return Credential{}, err
		}
	}
	uid, err := strconv.ParseUint(usr.Uid, 10, 32)
	if err != nil {
		return Credential{}, fmt.Errorf("parse uid of %s: %w", u, err)
	}
	c := Credential{Name: usr.Username, UID: uint32(uid)}
	if gid, err := strconv.ParseUint(usr.Gid, 10, 32); err == nil {
		c.GIDs = append(c.GIDs, uint32(gid))
	}
	groups, err := usr.GroupIds()
	if err != nil {
		return c, fmt.Errorf("list groups of %s: %w", u, err)
	}
	for _, g := range groups {
		if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
			c.GIDs = append(c.GIDs, uint32(gid))
		}
	}
	return c, nil
}

// File is a socket path as path resolution sees it.
type File struct {
	// Path is the path as given; Abs is it made absolute and clean.
	Path, Abs string
	// Target is Abs with symlinks resolved (connect(2) follows them).
	Target string
	// Dirs are the directories path resolution searches: those on Abs and,
	// when a symlink leads elsewhere, those on Target.
	Dirs []string
	// Exists is false when the path, or the file a symlink leads to, does
	// not exist (ENOENT).
	Exists bool
	// IsSocket is true when Target is a socket file.
	IsSocket bool
	// UID and GID own Target; Mode holds its permission bits only.
	UID, GID uint32
	Mode     fs.FileMode
}

// Stat examines the file at path for Access. Outcomes:
//   - the file exists: Exists true, nil error;
//   - the path (or a symlink's target) does not exist: Exists false, nil
//     error;
//   - the path could not be examined (e.g. EACCES for the caller itself):
//     a non-nil error wrapping the stat(2) error.
func Stat(path string) (File, error) {
	f := File{Path: path}
	abs, err := filepath.Abs(path)
	if err != nil {
		return f, fmt.Errorf("inspect socket file %s: %w", path, err)
	}
	f.Abs, f.Target = abs, abs
	if _, err := os.Lstat(abs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return f, nil
		}
		return f, fmt.Errorf("inspect socket file: %w", err)
	}
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		f.Target = resolved
	} else if errors.Is(err, fs.ErrNotExist) {
		return f, nil // a dangling symlink: nothing to connect to
	}
	info, err := os.Stat(f.Target)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return f, nil
		}
		return f, fmt.Errorf("inspect socket file: %w", err)
	}
	f.Exists = true
	f.IsSocket = info.Mode().Type() == fs.ModeSocket
	f.Mode = info.Mode().Perm()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		f.UID, f.GID = st.Uid, st.Gid
	}
	f.Dirs = SearchDirs(abs)
	if f.Target != abs {
		f.Dirs = append(f.Dirs, SearchDirs(f.Target)...)
	}
	return f, nil
}

// Denial says which rule refused a connection; None means none did.
type Denial int

// The denials, in the order Access checks them.
const (
	None      Denial = iota // the user may connect
	StatDir                 // a directory on the path could not be examined (Err)
	NoSearch                // no search (x) permission on Dir
	NoWrite                 // no write (w) permission on the socket file
	NotSocket               // the file is not a socket
)

// Verdict is Access's answer for one user.
type Verdict struct {
	// Denial is None when the user may connect.
	Denial Denial
	// As names the rule that allowed: "root", "owner", "group NAME" or
	// "other"; for NoWrite, the class whose bits were read.
	As string
	// Dir, with DirUID, DirGID and DirMode, is the directory of a StatDir
	// or NoSearch denial.
	Dir            string
	DirUID, DirGID uint32
	DirMode        fs.FileMode
	// Err is the stat(2) error of a StatDir denial.
	Err error
}

// OK reports whether the user may connect.
func (v Verdict) OK() bool { return v.Denial == None }

// Access decides whether c may connect to f (which must exist). It follows
// path_resolution(7): search permission on each of f.Dirs, then write
// permission on the file. Each check uses the owner bits when c owns the
// file, else the group bits when the file's group is c's primary or a
// supplementary group, else the other bits. uid 0 may always connect
// (CAP_DAC_OVERRIDE). ACLs and LSMs (SELinux, AppArmor) are not evaluated.
func (f File) Access(c Credential) Verdict {
	if c.UID == 0 {
		return Verdict{As: "root"}
	}
	for _, d := range f.Dirs {
		info, err := os.Stat(d)
		if err != nil {
			return Verdict{Denial: StatDir, Dir: d, Err: err}
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		if ok, _ := Permits(c, st.Uid, st.Gid, info.Mode().Perm(), 1); !ok {
			return Verdict{Denial: NoSearch, Dir: d, DirUID: st.Uid, DirGID: st.Gid, DirMode: info.Mode().Perm()}
		}
	}
	ok, as := Permits(c, f.UID, f.GID, f.Mode, 2)
	switch {
	case !ok:
		return Verdict{Denial: NoWrite, As: as}
	case !f.IsSocket:
		return Verdict{Denial: NotSocket, As: as}
	}
	return Verdict{As: as}
}

// Permits applies the owner/group/other rule of path_resolution(7) for the
// permission bit want (4 read, 2 write, 1 search/execute) and says which
// class decided ("owner", "group NAME", "other").
func Permits(c Credential, uid, gid uint32, mode fs.FileMode, want fs.FileMode) (bool, string) {
	switch {
	case c.UID == uid:
		return mode&(want<<6) != 0, "owner"
	case containsGID(c.GIDs, gid):
		return mode&(want<<3) != 0, "group " + GroupName(gid)
	default:
		return mode&want != 0, "other"
	}
}

func containsGID(gids []uint32, gid uint32) bool {
	for _, g := range gids {
		if g == gid {
			return true
		}
	}
	return false
}

// SearchDirs lists the directories path resolution searches to reach the
// absolute, clean path p: "/", "/run", "/run/app" for /run/app/s.sock.
func SearchDirs(p string) []string {
	dirs := []string{"/"}
	d := filepath.Dir(p)
	if d == "/" {
		return dirs
	}
	acc := ""
	for _, part := range strings.Split(strings.TrimPrefix(d, "/"), "/") {
		acc += "/" + part
		dirs = append(dirs, acc)
	}
	return dirs
}

// UserName is the name of uid, or "uid:N" when it has none.
func UserName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return "uid:" + id
}

// GroupName is the name of gid, or "gid:N" when it has none.
func GroupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return "gid:" + id
}

// DeniedError says that a client may not connect to a socket file, e.g.
// "www-data cannot connect to /run/app/app.sock: no write permission (owner
// root, group root, mode 0600)". It matches syscall.EACCES (and so
// fs.ErrPermission) with errors.Is: it is the error connect(2) would give
// the client.
type DeniedError struct {
	// User is the client's name.
	User string
	// File is the socket file and Verdict the denial.
	File    File
	Verdict Verdict
}

// Error names the client, the path and what it lacks.
func (e *DeniedError) Error() string {
	return e.User + " cannot connect to " + e.File.Path + ": " + e.Lacks()
}

// Lacks says what the client lacks, e.g. "no write permission (owner root,
// group root, mode 0600)" or "no search permission on /run/app (owner
// root, group root, mode 0700)".
func (e *DeniedError) Lacks() string {
	v, f := e.Verdict, e.File
	what := "denied"
	switch v.Denial {
	case StatDir:
		what = fmt.Sprintf("stat %s: %v", v.Dir, v.Err)
	case NoSearch:
		what = fmt.Sprintf("no search permission on %s (owner %s, group %s, mode %04o)", v.Dir, UserName(v.DirUID), GroupName(v.DirGID), v.DirMode)
	case NoWrite:
		what = fmt.Sprintf("no write permission (owner %s, group %s, mode %04o)", UserName(f.UID), GroupName(f.GID), f.Mode)
	case NotSocket:
		what = "not a socket"
	}
	return what
}

// Unwrap returns syscall.EACCES.
func (e *DeniedError) Unwrap() error { return syscall.EACCES }
