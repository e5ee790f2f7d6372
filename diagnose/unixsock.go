package diagnose

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

// SocketFile describes a Unix socket file and who may connect to it.
type SocketFile struct {
	// Path is the file the probe connects to, as given.
	Path string `json:"path"`
	// Exists is false when the path does not exist (ENOENT).
	Exists bool `json:"exists"`
	// IsSocket is true when the path (after symlinks) is a socket file.
	IsSocket bool `json:"is_socket"`
	// UID and GID own the file; Owner and Group are their names, or the
	// numbers when the names are unknown.
	UID   uint32 `json:"uid"`
	GID   uint32 `json:"gid"`
	Owner string `json:"owner,omitempty"`
	Group string `json:"group,omitempty"`
	// Mode holds the permission bits only (e.g. 0660).
	Mode fs.FileMode `json:"mode"`
	// Listening is true when a listening unix socket is bound to this path.
	// A socket file nobody listens on is stale: connect(2) fails with
	// ECONNREFUSED.
	Listening bool `json:"listening"`
	// Access says, for each user asked about, whether connect(2) would be
	// allowed by the file permissions.
	Access []Access `json:"access,omitempty"`
}

// Access is whether one user may connect to a socket file.
type Access struct {
	// User is the user's name ("www-data"), or "uid:N" when the uid has
	// no name.
	User string `json:"user"`
	UID  uint32 `json:"uid"`
	// CanConnect is true when the permissions let the user connect.
	CanConnect bool `json:"can_connect"`
	// Why names the rule that decided, e.g. "root", "no write permission
	// on the socket (mode 0600, owner root)", "no search permission on
	// /run/app (mode 0700, owner app)", "write permission as group
	// www-data".
	Why string `json:"why"`
}

// Prefixes of Access.Why for denials; SocketHint reads them.
const (
	whyNoSearch = "no search permission on "
	whyNoWrite  = "no write permission on the socket"
	whyNoUser   = "look up user: "
	whyRoot     = "root"
)

// credential is the identity path resolution checks against.
type credential struct {
	name string
	uid  uint32
	gids []uint32 // primary group first, then supplementary groups
}

// InspectSocketFile reports the owner, group and mode of the Unix socket
// file at path, whether a listener holds it, and whether each of users
// could connect to it.
//
// listening is the host's listening sockets (for example from
// /proc/net/unix); an entry with Proto "unix" and the same Path marks the
// file as listening. users holds user names ("www-data"), "uid:N", or
// "self" for the current process (its uid, gid and supplementary groups
// from getgroups(2)); a user that cannot be looked up gets an Access
// with CanConnect false and the lookup error as Why.
//
// Access follows path_resolution(7) and unix(7): the user needs search
// (x) permission on every directory leading to the file and, since
// "connecting to a socket requires write permission on the socket file",
// write (w) permission on the file itself. Each check uses the owner bits
// when the user owns the file, else the group bits when the file's group
// is the user's primary or a supplementary group, else the other bits.
// uid 0 may always connect (CAP_DAC_OVERRIDE). ACLs and LSMs (SELinux,
// AppArmor) are not evaluated.
//
// Outcomes:
//   - the file exists: Exists true, Access filled in, nil error;
//   - the path does not exist: Exists false, Access nil, nil error;
//   - the path could not be examined (e.g. EACCES for medic itself):
//     a non-nil error wrapping the lstat(2) error.
func InspectSocketFile(path string, listening []Socket, users []string) (SocketFile, error) {
	f := SocketFile{Path: path}
	abs, err := filepath.Abs(path)
	if err != nil {
		return f, fmt.Errorf("inspect socket file %s: %w", path, err)
	}
	if _, err := os.Lstat(abs); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return f, nil
		}
		return f, fmt.Errorf("inspect socket file: %w", err)
	}
	// connect(2) follows symlinks; judge the file they lead to.
	target := abs
	if resolved, err := filepath.EvalSymlinks(abs); err == nil {
		target = resolved
	} else if errors.Is(err, fs.ErrNotExist) {
		return f, nil // a dangling symlink: nothing to connect to
	}
	info, err := os.Stat(target)
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
	f.Owner = userName(f.UID)
	f.Group = groupName(f.GID)

	for _, s := range listening {
		if s.Proto != "unix" || s.Path == "" || strings.HasPrefix(s.Path, "@") {
			continue
		}
		p := filepath.Clean(s.Path)
		if p == abs || p == target || p == filepath.Clean(path) {
			f.Listening = true
			break
		}
	}

	// Directories to search: those on the path as given and, when a
	// symlink led elsewhere, those on the resolved path.
	dirs := parentDirs(abs)
	if target != abs {
		dirs = append(dirs, parentDirs(target)...)
	}
	for _, u := range users {
		f.Access = append(f.Access, checkAccess(u, dirs, f))
	}
	return f, nil
}

// checkAccess decides whether the user named u may connect to f.
func checkAccess(u string, dirs []string, f SocketFile) Access {
	c, err := lookupCredential(u)
	if err != nil {
		return Access{User: u, Why: whyNoUser + err.Error()}
	}
	a := Access{User: c.name, UID: c.uid}
	if c.uid == 0 {
		a.CanConnect, a.Why = true, whyRoot
		return a
	}
	for _, d := range dirs {
		info, err := os.Stat(d)
		if err != nil {
			a.Why = "stat " + d + ": " + err.Error()
			return a
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			continue
		}
		if ok, _ := permits(c, st.Uid, st.Gid, info.Mode().Perm(), 1); !ok {
			a.Why = fmt.Sprintf("%s%s (mode %04o, owner %s)", whyNoSearch, d, info.Mode().Perm(), userName(st.Uid))
			return a
		}
	}
	ok, as := permits(c, f.UID, f.GID, f.Mode, 2)
	if !ok {
		a.Why = fmt.Sprintf("%s (mode %04o, owner %s, group %s)", whyNoWrite, f.Mode, f.Owner, f.Group)
		return a
	}
	a.CanConnect = true
	a.Why = "write permission as " + as
	if !f.IsSocket {
		a.CanConnect = false
		a.Why = "not a socket"
	}
	return a
}

// permits applies the owner/group/other rule of path_resolution(7) for
// the permission bit want (4 read, 2 write, 1 search/execute) and says
// which class decided ("owner", "group NAME", "other").
func permits(c credential, uid, gid uint32, mode fs.FileMode, want fs.FileMode) (bool, string) {
	switch {
	case c.uid == uid:
		return mode&(want<<6) != 0, "owner"
	case containsGID(c.gids, gid):
		return mode&(want<<3) != 0, "group " + groupName(gid)
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

// parentDirs lists the directories path resolution searches to reach
// the absolute, clean path p: "/", "/run", "/run/app" for /run/app/s.sock.
func parentDirs(p string) []string {
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

// lookupCredential resolves "self", "uid:N" or a user name.
func lookupCredential(u string) (credential, error) {
	if u == "self" {
		c := credential{uid: uint32(os.Getuid()), gids: []uint32{uint32(os.Getgid())}}
		c.name = userName(c.uid)
		groups, err := os.Getgroups()
		if err != nil {
			return c, fmt.Errorf("getgroups: %w", err)
		}
		for _, g := range groups {
			c.gids = append(c.gids, uint32(g))
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
			return credential{}, fmt.Errorf("parse %q: %w", u, perr)
		}
		usr, err = user.LookupId(n)
		if err != nil {
			// A uid without a passwd entry still has an identity; it has
			// no groups we could know of.
			var unknown user.UnknownUserIdError
			if errors.As(err, &unknown) {
				return credential{name: u, uid: uint32(id)}, nil
			}
			return credential{}, err
		}
	} else {
		usr, err = user.Lookup(u)
		if err != nil {
			return credential{}, err
		}
	}
	uid, err := strconv.ParseUint(usr.Uid, 10, 32)
	if err != nil {
		return credential{}, fmt.Errorf("parse uid of %s: %w", u, err)
	}
	c := credential{name: usr.Username, uid: uint32(uid)}
	if gid, err := strconv.ParseUint(usr.Gid, 10, 32); err == nil {
		c.gids = append(c.gids, uint32(gid))
	}
	groups, err := usr.GroupIds()
	if err != nil {
		return c, fmt.Errorf("list groups of %s: %w", u, err)
	}
	for _, g := range groups {
		if gid, err := strconv.ParseUint(g, 10, 32); err == nil {
			c.gids = append(c.gids, uint32(gid))
		}
	}
	return c, nil
}

func userName(uid uint32) string {
	id := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(id); err == nil {
		return u.Username
	}
	return "uid:" + id
}

func groupName(gid uint32) string {
	id := strconv.FormatUint(uint64(gid), 10)
	if g, err := user.LookupGroupId(id); err == nil {
		return g.Name
	}
	return "gid:" + id
}

// SocketHint gives the fix for the socket file f as seen by client (a
// user name, "uid:N" or "self", as passed to InspectSocketFile; empty
// means the first user that cannot connect) in one line, e.g.:
//
//   - "the socket does not exist: is the backend running and configured
//     for this path?"
//   - "/run/app.sock is not a socket: the backend should create its
//     socket there; remove the file"
//   - "the socket file is stale: nothing listens on it; restart the unit"
//   - "give www-data search permission on /run/app (chmod o+x, or a group
//     www-data is in)"
//   - "chown www-data the socket or set SocketMode=0660 and
//     SocketGroup=www-data"
//
// It returns "" when nothing is wrong with the file.
func SocketHint(f SocketFile, client string) string {
	switch {
	case !f.Exists:
		return "the socket does not exist: is the backend running and configured for this path?"
	case !f.IsSocket:
		return f.Path + " is not a socket: the backend should create its socket there; remove the file"
	case !f.Listening:
		return "the socket file is stale: nothing listens on it; restart the unit"
	}
	var a *Access
	for i := range f.Access {
		x := &f.Access[i]
		if client == "" && !x.CanConnect {
			a = x
			break
		}
		if client != "" && (x.User == client || client == "uid:"+strconv.FormatUint(uint64(x.UID), 10)) {
			a = x
			break
		}
	}
	if a == nil || a.CanConnect {
		return ""
	}
	who := a.User
	switch {
	case strings.HasPrefix(a.Why, whyNoSearch):
		dir := strings.TrimPrefix(a.Why, whyNoSearch)
		if i := strings.Index(dir, " (mode"); i >= 0 {
			dir = dir[:i]
		}
		return fmt.Sprintf("give %s search permission on %s (chmod o+x, or a group %s is in)", who, dir, who)
	case strings.HasPrefix(a.Why, whyNoWrite):
		return fmt.Sprintf("chown %s the socket or set SocketMode=0660 and SocketGroup=%s", who, who)
	case strings.HasPrefix(a.Why, whyNoUser):
		return fmt.Sprintf("the client user %s is unknown on this host: check the proxy's user", who)
	}
	return ""
}
