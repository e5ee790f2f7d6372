package diagnose

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/medic-watchdog/medic/internal/sockperm"
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
// AppArmor) are not evaluated. The unix probe applies the same rules
// (package internal/sockperm) to its client_user.
//
// Outcomes:
//   - the file exists: Exists true, Access filled in, nil error;
//   - the path does not exist: Exists false, Access nil, nil error;
//   - the path could not be examined (e.g. EACCES for medic itself):
//     a non-nil error wrapping the lstat(2) error.
func InspectSocketFile(path string, listening []Socket, users []string) (SocketFile, error) {
	sf, err := sockperm.Stat(path)
	f := SocketFile{Path: path}
	if err != nil || !sf.Exists {
		return f, err
	}
	f.Exists, f.IsSocket = true, sf.IsSocket
	f.Mode, f.UID, f.GID = sf.Mode, sf.UID, sf.GID
	f.Owner = userName(f.UID)
	f.Group = sockperm.GroupName(f.GID)

	for _, s := range listening {
		if s.Proto != "unix" || s.Path == "" || strings.HasPrefix(s.Path, "@") {
			continue
		}
		p := filepath.Clean(s.Path)
		if p == sf.Abs || p == sf.Target || p == filepath.Clean(path) {
			f.Listening = true
			break
		}
	}
	for _, u := range users {
		f.Access = append(f.Access, checkAccess(u, sf, f))
	}
	return f, nil
}

// checkAccess decides whether the user named u may connect to sf, and
// words the rule that decided as Access.Why.
func checkAccess(u string, sf sockperm.File, f SocketFile) Access {
	c, err := sockperm.Lookup(u)
	if err != nil {
		return Access{User: u, Why: whyNoUser + err.Error()}
	}
	a := Access{User: c.Name, UID: c.UID}
	v := sf.Access(c)
	switch v.Denial {
	case sockperm.None:
		a.CanConnect = true
		a.Why = "write permission as " + v.As
		if v.As == "root" {
			a.Why = whyRoot
		}
	case sockperm.StatDir:
		a.Why = "stat " + v.Dir + ": " + v.Err.Error()
	case sockperm.NoSearch:
		a.Why = fmt.Sprintf("%s%s (mode %04o, owner %s)", whyNoSearch, v.Dir, v.DirMode, userName(v.DirUID))
	case sockperm.NoWrite:
		a.Why = fmt.Sprintf("%s (mode %04o, owner %s, group %s)", whyNoWrite, f.Mode, f.Owner, f.Group)
	case sockperm.NotSocket:
		a.Why = "not a socket"
	}
	return a
}

// parentDirs lists the directories path resolution searches to reach
// the absolute, clean path p: "/", "/run", "/run/app" for /run/app/s.sock.
func parentDirs(p string) []string { return sockperm.SearchDirs(p) }

func userName(uid uint32) string { return sockperm.UserName(uid) }

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
