package diagnose

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// PeerCred connects to the listening unix stream socket at path and returns
// the credentials (pid, uid, gid) of the process that called listen(2) on
// it, as the kernel recorded them at that moment: SO_PEERCRED (unix(7),
// socket(7)). path is a file ("/run/app.sock") or an abstract name
// ("@name", as SockDiagUnix and /proc/net/unix print it).
//
// It needs no privilege beyond the right to connect: write permission on
// the socket file and search permission on the directories above it (none
// for an abstract socket). It connects without blocking and closes the
// connection at once without writing: the listener sees a client that left
// before saying anything. For a socket systemd created for socket
// activation the listener is the service manager (PID 1, or a user
// manager), not the service it was handed to.
//
// Errors wrap the errno of connect(2): EACCES (fs.ErrPermission) without
// write permission on the file or search permission on a directory,
// ENOENT (fs.ErrNotExist) when the path does not exist in this mount
// namespace (for example under the listener's PrivateTmp=), ECONNREFUSED
// when nothing listens (a stale file), EAGAIN when the listen backlog is
// full. A path longer than sun_path (107 bytes) is an error too.
func PeerCred(path string) (*unix.Ucred, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("read peer credentials of %s: socket: %w", path, err)
	}
	defer func() { _ = unix.Close(fd) }()
	if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		return nil, fmt.Errorf("read peer credentials of %s: connect: %w", path, err)
	}
	cred, err := unix.GetsockoptUcred(fd, unix.SOL_SOCKET, unix.SO_PEERCRED)
	if err != nil {
		return nil, fmt.Errorf("read peer credentials of %s: getsockopt SO_PEERCRED: %w", path, err)
	}
	return cred, nil
}

// listenerPID returns the pid that called listen(2) on the unix listener s,
// from PeerCred. When sock_diag gave the inode of s's file (FileInode), the
// file at s.Path must be that inode, so that a path that leads elsewhere in
// this mount namespace (another PrivateTmp=, a file bound anew) is not
// connected to.
func listenerPID(s Socket) (int, error) {
	if s.Proto != "unix" || s.Path == "" {
		return 0, fmt.Errorf("read peer credentials of %s: not a named unix socket", s)
	}
	if s.FileInode != 0 && !strings.HasPrefix(s.Path, "@") {
		var st unix.Stat_t
		if err := unix.Stat(s.Path, &st); err != nil {
			return 0, fmt.Errorf("read peer credentials of %s: stat: %w", s.Path, err)
		}
		if st.Ino != s.FileInode {
			return 0, fmt.Errorf("read peer credentials of %s: the file there is inode %d, the listener's is %d (another mount namespace, or the file was replaced)", s.Path, st.Ino, s.FileInode)
		}
	}
	cred, err := PeerCred(s.Path)
	if err != nil {
		return 0, err
	}
	return int(cred.Pid), nil
}

// peerReason shortens an error of listenerPID for s to what follows
// "read peer credentials of PATH: ", e.g. "connect: permission denied".
func peerReason(s Socket, err error) string {
	return strings.TrimPrefix(err.Error(), "read peer credentials of "+s.Path+": ")
}

// processComm returns the command name of pid (<procRoot>/PID/comm,
// proc(5), readable by every user), or "" when it cannot be read.
func processComm(procRoot string, pid int) string {
	if procRoot == "" {
		procRoot = "/proc"
	}
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// allPIDs lists the processes in <procRoot> (procRoot "" means "/proc"),
// sorted.
func allPIDs(procRoot string) ([]int, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	ents, err := os.ReadDir(procRoot)
	if err != nil {
		return nil, fmt.Errorf("list processes: %w", err)
	}
	var pids []int
	for _, e := range ents {
		if p, err := strconv.Atoi(e.Name()); err == nil && p > 0 {
			pids = append(pids, p)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

// cgroupPathOfID returns the cgroup v2 path (as in a unit's ControlGroup
// property, "/system.slice/x.service") whose directory has inode id, the
// id sock_diag reports, by walking the cgroup2 hierarchy; every directory
// there is readable by every user. The error wraps fs.ErrNotExist when no
// cgroup has that id (it was removed).
func cgroupPathOfID(id uint64) (string, error) {
	root, err := cgroupV2Dir("/")
	if err != nil {
		return "", fmt.Errorf("find cgroup %d: %w", id, err)
	}
	found := ""
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.IsDir() {
			return nil // a cgroup removed during the walk
		}
		var st unix.Stat_t
		if unix.Stat(p, &st) == nil && st.Ino == id {
			found = "/" + strings.TrimPrefix(strings.TrimPrefix(p, root), "/")
			return fs.SkipAll
		}
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("find cgroup %d: %w", id, err)
	}
	if found == "" {
		return "", fmt.Errorf("find cgroup %d: no directory under %s has that inode: %w", id, root, fs.ErrNotExist)
	}
	return found, nil
}

// ListenerOwner names a process holding the listening socket s (from
// SockDiagListeners, SockDiagUnix or ProcListeners), its command name and
// its systemd service ("" when it runs in none), using the first way that
// works:
//
//  1. SocketOwner: the lowest pid whose /proc/PID/fd holds s.Inode; for
//     other users' processes this needs CAP_DAC_READ_SEARCH and
//     CAP_SYS_PTRACE.
//  2. TCP with a CgroupID (sock_diag, Linux 5.9+): the cgroup that created
//     the socket, found by walking the cgroup2 hierarchy, gives the unit;
//     the lowest pid directly in that cgroup whose fs uid is s.UID
//     (/proc/PID/status) gives pid and comm, or pid 0 and comm "" when no
//     such process is left.
//  3. unix: the pid that called listen(2), from PeerCred (which needs the
//     right to connect), and its /proc/PID/cgroup and comm.
//
// All of these read only world-readable files unless said. The error joins
// why each way failed; it wraps fs.ErrNotExist when a way ran and found no
// holder.
func ListenerOwner(s Socket) (pid int, comm, unit string, err error) {
	pid, comm, unit, err = SocketOwner("", s.Inode)
	if err == nil {
		return pid, comm, unit, nil
	}
	errs := []error{err}
	switch {
	case s.Proto != "unix" && s.CgroupID != 0:
		cg, cerr := cgroupPathOfID(s.CgroupID)
		if cerr != nil {
			return 0, "", "", errors.Join(append(errs, cerr)...)
		}
		pid := 0
		if dir, derr := cgroupV2Dir(cg); derr == nil {
			if b, rerr := os.ReadFile(filepath.Join(dir, "cgroup.procs")); rerr == nil {
				for f := range strings.FieldsSeq(string(b)) {
					p, perr := strconv.Atoi(f)
					if perr != nil || (pid != 0 && p > pid) {
						continue
					}
					if uid, uerr := processFSUID("", p); uerr == nil && uid == s.UID {
						pid = p
					}
				}
			}
		}
		comm := ""
		if pid != 0 {
			comm = processComm("", pid)
		}
		return pid, comm, serviceOfCgroup(cg), nil
	case s.Proto == "unix":
		p, perr := listenerPID(s)
		if perr != nil {
			return 0, "", "", errors.Join(append(errs, perr)...)
		}
		return p, processComm("", p), processUnit("/proc", p), nil
	}
	return 0, "", "", err
}
