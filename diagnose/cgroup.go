package diagnose

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// cgroupRoots are the hierarchies CgroupPIDs looks in, in order: the v2
// hierarchy of a hybrid setup, the v1 name=systemd hierarchy, and the root
// where a pure v2 machine mounts cgroup2 (cgroups(7)).
var cgroupRoots = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"}

// cgroupV2Roots are the places a cgroup2 file system may be mounted: the
// hybrid layout's unified directory, then the pure v2 layout's root.
var cgroupV2Roots = []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"}

// fdAccessHint says how to give medic the right to read other users'
// /proc/PID/fd: listing the directory is a permission check on its mode
// (0500), reading a link a ptrace access check (proc(5)).
const fdAccessHint = "run medic as root or as the unit's user, or give it CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE"

// cleanCgroup turns a unit's ControlGroup property into a clean absolute
// path that cannot climb above a hierarchy's root.
func cleanCgroup(cgroup string) (string, error) {
	if cgroup == "" {
		return "", errors.New("empty cgroup path (a unit that is not running has no control group)")
	}
	return path.Clean("/" + cgroup), nil
}

// CgroupPIDs returns the PIDs in cgroup and all its descendants, sorted.
// cgroup is a unit's ControlGroup property, a path relative to the
// hierarchy roots such as "/system.slice/my-app.service" or, under a
// private user manager, "/medic-test-123/app.slice/x.service". It reads
// cgroup.procs (cgroups(7)) in the first of /sys/fs/cgroup/unified,
// /sys/fs/cgroup/systemd and /sys/fs/cgroup where the cgroup exists; a
// service's processes may sit in child cgroups, which are included.
//
// The slice is empty, with a nil error, when the cgroup exists but holds no
// process. The error wraps fs.ErrNotExist when the cgroup is in none of the
// hierarchies (the unit is not running), or tells what could not be read.
func CgroupPIDs(cgroup string) ([]int, error) {
	cg, err := cleanCgroup(cgroup)
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup: %w", err)
	}
	for _, root := range cgroupRoots {
		dir := filepath.Join(root, cg)
		if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
			continue
		}
		return cgroupTreePIDs(dir)
	}
	return nil, fmt.Errorf("list processes of cgroup %s: not found under %s: %w", cg, strings.Join(cgroupRoots, ", "), fs.ErrNotExist)
}

// cgroupTreePIDs reads cgroup.procs of dir and every directory below it.
// Cgroups that vanish during the walk are skipped.
func cgroupTreePIDs(dir string) ([]int, error) {
	var pids []int
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		b, err := os.ReadFile(filepath.Join(p, "cgroup.procs"))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		for f := range strings.FieldsSeq(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list processes of cgroup %s: %w", dir, err)
	}
	slices.Sort(pids)
	return slices.Compact(pids), nil
}

// cgroupV2Dir returns the directory of cgroup in the cgroup2 hierarchy:
// under /sys/fs/cgroup/unified on a hybrid machine, under /sys/fs/cgroup on
// a pure v2 one.
func cgroupV2Dir(cgroup string) (string, error) {
	cg, err := cleanCgroup(cgroup)
	if err != nil {
		return "", err
	}
	for _, root := range cgroupV2Roots {
		var st unix.Statfs_t
		if err := unix.Statfs(root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		return filepath.Join(root, cg), nil
	}
	return "", fmt.Errorf("no cgroup2 hierarchy at %s", strings.Join(cgroupV2Roots, " or "))
}

// CgroupID returns the cgroup v2 id of cgroup (a unit's ControlGroup
// property): the inode number of its directory in the cgroup2 hierarchy,
// which is what sock_diag's INET_DIAG_CGROUP_ID and bpf_get_current_cgroup_id
// report on 64-bit kernels. It fails when there is no cgroup2 hierarchy
// (a pure v1 machine) or the cgroup does not exist in it (the error then
// wraps fs.ErrNotExist).
func CgroupID(cgroup string) (uint64, error) {
	dir, err := cgroupV2Dir(cgroup)
	if err != nil {
		return 0, fmt.Errorf("read cgroup id: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return 0, fmt.Errorf("read cgroup id: stat %s: %w", dir, err)
	}
	return st.Ino, nil
}

// cgroupIDs returns the cgroup v2 ids of cgroup and all its descendants.
func cgroupIDs(cgroup string) (map[uint64]bool, error) {
	dir, err := cgroupV2Dir(cgroup)
	if err != nil {
		return nil, fmt.Errorf("read cgroup ids: %w", err)
	}
	ids := map[uint64]bool{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() {
			return nil
		}
		var st unix.Stat_t
		if err := unix.Stat(p, &st); err != nil {
			if p != dir && errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return &fs.PathError{Op: "stat", Path: p, Err: err}
		}
		ids[st.Ino] = true
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read cgroup ids: %w", err)
	}
	return ids, nil
}

// SocketInodes returns the inodes of the sockets process pid holds open,
// from the links "socket:[N]" in <procRoot>/PID/fd (procRoot "" means
// "/proc"; proc(5)). An error wraps the *fs.PathError of the directory or
// link that could not be read: fs.ErrPermission (EACCES) when the process
// belongs to another user and this one lacks CAP_DAC_READ_SEARCH (to list
// the directory) or CAP_SYS_PTRACE (to read the links), fs.ErrNotExist
// when the process is gone. File descriptors closed while the directory is
// read are skipped.
func SocketInodes(procRoot string, pid int) (map[uint64]bool, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	dir := filepath.Join(procRoot, strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list sockets of pid %d: %w", pid, err)
	}
	inodes := map[uint64]bool{}
	for _, e := range ents {
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			return nil, fmt.Errorf("list sockets of pid %d: %w", pid, err)
		}
		if ino, ok := socketLinkInode(link); ok {
			inodes[ino] = true
		}
	}
	return inodes, nil
}

// socketLinkInode parses the target of a /proc/PID/fd link to a socket,
// "socket:[12345]".
func socketLinkInode(link string) (uint64, bool) {
	s, ok := strings.CutPrefix(link, "socket:[")
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, "]")
	if !ok {
		return 0, false
	}
	ino, err := strconv.ParseUint(s, 10, 64)
	return ino, err == nil
}

// UnitListeners returns the listening TCP and unix stream sockets held by
// the processes of a unit, given its ControlGroup property, and the evidence
// that could not be gathered, each entry one short sentence naming what
// failed and why; the way to give medic the missing access is said once,
// in the entry about the processes' file descriptors.
//
// It matches sockets in these ways, best first:
//
//  1. by cgroup: TCP listeners from SockDiagListeners whose CgroupID is the
//     id of the cgroup or one of its descendants (CgroupID). This needs no
//     privilege, but the id is that of the socket's creator: a socket that
//     systemd created for socket activation carries systemd's cgroup.
//  2. by process: sockets whose inode one of CgroupPIDs' processes holds
//     (SocketInodes); these get Socket.PIDs. This needs the right to read
//     the processes' /proc/PID/fd (root, the unit's user, or
//     CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE).
//  3. unix listeners, for processes whose fds could not be read, among
//     those whose owner (SockDiagUnix's UID) is such a process's fs uid
//     (/proc/PID/status): by the pid that called listen(2), read with
//     PeerCred, when it is one of the unit's processes (the socket gets
//     that pid); else, when the socket cannot be connected to, by an owner
//     uid other than 0 that no process outside the unit has. At most
//     maxPeerConnects listeners are connected to. This needs no privilege;
//     connecting needs write permission on the socket file. Listeners of
//     other uids are never the unit's: a unit that does not run as root
//     leaves root's sockets out without a word.
//  4. TCP by uid, only when neither (1) nor (2) was available (an old
//     kernel and another user's processes): listeners owned by the fs uid
//     of the unit's processes. Other processes of the same user match too,
//     and unavailable says so.
//
// Listeners come from SockDiagListeners and SockDiagUnix, or from
// ProcListeners when sock_diag fails. An empty cgroup (a unit that is not
// running) gives no listeners.
//
// unavailable holds every gap, whether or not it matters for a given
// probe; Diagnose keeps only those that could change its findings.
func UnitListeners(cgroup string) (listeners []Socket, unavailable []string) {
	s := unitListeners(cgroup, liveSources)
	return s.listeners, s.notes(allGaps)
}

// unitSources are where unitListeners gathers its evidence; tests swap in
// their own to reach the fallbacks.
type unitSources struct {
	sockDiag      func() ([]Socket, error)
	sockDiagUnix  func() ([]Socket, error)
	procListeners func() ([]Socket, error)
	cgroupIDs     func(cgroup string) (map[uint64]bool, error)
	cgroupPIDs    func(cgroup string) ([]int, error)
	socketInodes  func(pid int) (map[uint64]bool, error)
	fsUID         func(pid int) (uint32, error)
	listenerPID   func(s Socket) (int, error)
	allPIDs       func() ([]int, error)
	comm          func(pid int) string
}

// liveSources reads this host.
var liveSources = unitSources{
	sockDiag:      SockDiagListeners,
	sockDiagUnix:  SockDiagUnix,
	procListeners: func() ([]Socket, error) { return ProcListeners("") },
	cgroupIDs:     cgroupIDs,
	cgroupPIDs:    CgroupPIDs,
	socketInodes:  func(pid int) (map[uint64]bool, error) { return SocketInodes("", pid) },
	fsUID:         func(pid int) (uint32, error) { return processFSUID("", pid) },
	listenerPID:   listenerPID,
	allPIDs:       func() ([]int, error) { return allPIDs("") },
	comm:          func(pid int) string { return processComm("", pid) },
}

// unitScan is what unitListeners found of a unit's listeners, and what it
// left undecided, kept apart so that a diagnosis can say only what matters
// for its probe.
type unitScan struct {
	listeners []Socket
	// general are the gaps that concern every probe (sock_diag missing,
	// the unit's processes unknown, TCP matched by uid only).
	general []string

	// fdErr is the first error reading a process's /proc/PID/fd, fdErrs
	// how many processes' fds could not be read.
	fdErr  error
	fdErrs int
	// uids are the fs uids of the processes whose fds could not be read:
	// the owners a listener of the unit may have.
	uids []uint32

	// unixUnknown: the unix listeners could not be told apart at all
	// (/proc/net/unix has no owners).
	unixUnknown bool
	// manager are the unix listeners of the unit's uid that a systemd
	// manager listens on (socket activation candidates), managerPIDs
	// those managers.
	manager     []Socket
	managerPIDs []int
	// unknown are the unix listeners of the unit's uid whose listener
	// could not be read, and that processes outside the unit may hold;
	// why[i] says why unknown[i] could not be connected to. unknownErr,
	// when set, is why no listener's owner could be ruled in or out.
	unknown    []Socket
	why        []string
	unknownErr error
	// skipped counts the candidates not connected to (maxPeerConnects).
	skipped int
}

// gapView says which of a unitScan's undecided sockets to note.
type gapView struct {
	// fd: note the processes whose fds could not be read.
	fd bool
	// manager: note the listeners of a systemd manager; triggers are the
	// unit's socket units, named in that note.
	manager  bool
	triggers []string
	// unknown: note the unix listeners whose holder is unknown, examples
	// nearest to the path near first.
	unknown bool
	near    string
}

// allGaps notes everything.
var allGaps = gapView{fd: true, manager: true, unknown: true}

// maxNote is the length a note about undecided sockets aims at; the list
// of examples is cut to stay within it.
const maxNote = 200

// undecided reports whether v would note anything beyond the general gaps
// and the fds.
func (s *unitScan) undecided(v gapView) bool {
	return (v.manager && len(s.manager) > 0) ||
		(v.unknown && (s.unixUnknown || len(s.unknown) > 0 || s.skipped > 0))
}

// notes renders the gaps v selects, each in about maxNote characters. The
// way to more access is said once, in the note on the fds.
func (s *unitScan) notes(v gapView) []string {
	out := slices.Clone(s.general)
	if v.fd && s.fdErr != nil {
		more := ""
		if s.fdErrs > 1 {
			more = fmt.Sprintf(" (and %d more processes)", s.fdErrs-1)
		}
		out = append(out, fmt.Sprintf("process sockets: %v%s; %s.", s.fdErr, more, fdAccessHint))
	}
	if v.unknown && s.unixUnknown {
		out = append(out, "unit unix sockets: unknown, since /proc/net/unix does not say who owns a socket and not every process's file descriptors could be read.")
	}
	if v.manager && len(s.manager) > 0 {
		by := "socket activation"
		if len(v.triggers) > 0 {
			by = strings.Join(v.triggers, ", ")
		}
		head := fmt.Sprintf("unit unix sockets: %s of a systemd manager (pid %s) may be the unit's, handed over by %s: ",
			listeners(len(s.manager)), joinInts(s.managerPIDs), by)
		out = append(out, head+examples(socketStrings(s.manager), maxNote-len(head))+".")
	}
	if v.unknown && len(s.unknown) > 0 {
		idx := make([]int, len(s.unknown))
		for i := range idx {
			idx[i] = i
		}
		if v.near != "" {
			slices.SortStableFunc(idx, func(a, b int) int {
				return commonDirs(s.unknown[b].Path, v.near) - commonDirs(s.unknown[a].Path, v.near)
			})
		}
		names := make([]string, len(idx))
		for i, j := range idx {
			names[i] = s.unknown[j].String()
		}
		reason := s.why[idx[0]]
		if s.unknownErr != nil {
			reason = s.unknownErr.Error()
		}
		head := fmt.Sprintf("unit unix sockets: %s owned by uid %s may be the unit's; who listens is unknown (%s): ",
			listeners(len(s.unknown)), joinUints(ownerUIDs(s.unknown)), reason)
		out = append(out, head+examples(names, maxNote-len(head))+".")
	}
	if v.unknown && s.skipped > 0 {
		out = append(out, fmt.Sprintf("unit unix sockets: %d more listeners owned by uid %s were not connected to (at most %d are); any of them may be the unit's.", s.skipped, joinUints(s.uids), maxPeerConnects))
	}
	return out
}

// listeners counts listeners: "1 listener", "4 listeners".
func listeners(n int) string {
	if n == 1 {
		return "1 listener"
	}
	return strconv.Itoa(n) + " listeners"
}

// examples joins names while they fit in budget characters, at least
// one, and counts the rest: "a, b and 3 more".
func examples(names []string, budget int) string {
	if len(names) == 0 {
		return ""
	}
	out := names[0]
	n := 1
	for ; n < len(names); n++ {
		rest := ""
		if n+1 < len(names) {
			rest = fmt.Sprintf(" and %d more", len(names)-n-1)
		}
		if len(out)+2+len(names[n])+len(rest) > budget {
			break
		}
		out += ", " + names[n]
	}
	if n < len(names) {
		out += fmt.Sprintf(" and %d more", len(names)-n)
	}
	return out
}

// commonDirs counts the leading path elements a and b share.
func commonDirs(a, b string) int {
	pa, pb := strings.Split(a, "/"), strings.Split(b, "/")
	n := 0
	for n < len(pa) && n < len(pb) && pa[n] == pb[n] {
		n++
	}
	return n
}

func unitListeners(cgroup string, src unitSources) *unitScan {
	scan := &unitScan{}
	if cgroup == "" {
		scan.general = []string{"unit sockets: the unit has no control group, so it has no processes to hold sockets."}
		return scan
	}
	note := func(format string, args ...any) {
		scan.general = append(scan.general, fmt.Sprintf(format, args...))
	}

	tcp, tcpErr := src.sockDiag()
	unixSocks, unixErr := src.sockDiagUnix()
	if tcpErr != nil || unixErr != nil {
		if tcpErr != nil {
			note("socket cgroups: %v; read /proc/net instead, which has no cgroups.", tcpErr)
		}
		if unixErr != nil {
			note("unix socket owners: %v; read /proc/net/unix instead, which has no owners.", unixErr)
		}
		proc, err := src.procListeners()
		if err != nil {
			note("listening sockets: %v.", err)
		}
		for _, s := range proc {
			switch {
			case s.Proto == "unix" && unixErr != nil:
				unixSocks = append(unixSocks, s)
			case s.Proto != "unix" && tcpErr != nil:
				tcp = append(tcp, s)
			}
		}
	}

	found := map[string]*Socket{}
	var order []string
	add := func(s Socket, pids ...int) {
		k := socketKey(s)
		f := found[k]
		if f == nil {
			s.PIDs = nil
			f = &s
			found[k] = f
			order = append(order, k)
		}
		for _, p := range pids {
			if !slices.Contains(f.PIDs, p) {
				f.PIDs = append(f.PIDs, p)
			}
		}
	}

	// 1. By cgroup id.
	byCgroup := false
	if tcpErr == nil {
		ids, err := src.cgroupIDs(cgroup)
		switch {
		case err != nil:
			note("socket cgroups: %v.", err)
		case len(tcp) > 0 && !slices.ContainsFunc(tcp, func(s Socket) bool { return s.CgroupID != 0 }):
			note("socket cgroups: this kernel's sock_diag reports no cgroup ids (INET_DIAG_CGROUP_ID needs Linux 5.9 or later).")
		default:
			byCgroup = true
			for _, s := range tcp {
				if ids[s.CgroupID] {
					add(s)
				}
			}
		}
	}

	// 2. By the processes' file descriptors.
	all := append(slices.Clip(tcp), unixSocks...)
	pids, err := src.cgroupPIDs(cgroup)
	if err != nil {
		note("unit processes: %v.", err)
	}
	holders := map[uint64][]int{}
	readable := 0
	var unreadable []int
	for _, pid := range pids {
		inodes, err := src.socketInodes(pid)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				if scan.fdErr == nil {
					scan.fdErr = err
				}
				scan.fdErrs++
				unreadable = append(unreadable, pid)
			}
			continue
		}
		readable++
		for ino := range inodes {
			holders[ino] = append(holders[ino], pid)
		}
	}
	for _, s := range all {
		if h := holders[s.Inode]; len(h) > 0 {
			add(s, h...)
		}
	}
	uids := map[uint32]bool{}
	for _, pid := range unreadable {
		if uid, err := src.fsUID(pid); err == nil {
			uids[uid] = true
		}
	}
	scan.uids = slices.Sorted(maps.Keys(uids))

	// 3. Unix sockets of the processes whose fds could not be read, by
	// their listener's credentials or, failing that, an owner uid that no
	// other process has.
	if len(unreadable) > 0 {
		if unixErr == nil {
			unitByPeer(scan, unixSocks, pids, src, func(s Socket) bool { return found[socketKey(s)] != nil }, add)
		} else {
			scan.unixUnknown = true
		}
	}

	// 4. TCP by uid, when no process could be looked into and the cgroup
	// ids did not help: the owner uid is shared with the user's other
	// processes.
	if readable == 0 && scan.fdErrs > 0 && !byCgroup {
		tcpUIDs := map[uint32]bool{}
		for _, pid := range pids {
			if uid, err := src.fsUID(pid); err == nil {
				tcpUIDs[uid] = true
			}
		}
		for _, s := range tcp {
			if tcpUIDs[s.UID] {
				add(s)
			}
		}
		note("unit TCP sockets: matched by owner uid %s only, since neither cgroup ids nor the processes' file descriptors were available; other processes of that user match too.", joinUints(slices.Sorted(maps.Keys(tcpUIDs))))
	}

	for _, k := range order {
		s := *found[k]
		slices.Sort(s.PIDs)
		scan.listeners = append(scan.listeners, s)
	}
	return scan
}

// socketKey identifies a socket in unitListeners' results.
func socketKey(s Socket) string {
	return s.Proto + "\x00" + strconv.FormatUint(s.Inode, 10) + "\x00" + s.String()
}

// maxPeerConnects bounds how many unix listeners one unitListeners call
// connects to for their peer credentials.
const maxPeerConnects = 64

// unitByPeer matches the unix listeners of a unit whose processes' fds
// could not be read. Candidates are the listeners not matched yet whose
// owner (UNIX_DIAG_UID) is in scan.uids, the fs uids of those processes.
// A candidate is the unit's when
//
//   - the process that called listen(2) on it, from SO_PEERCRED, is one of
//     pids (it gets that pid); or
//   - it cannot be connected to and its owner uid is not 0 and is the fs
//     uid of no process outside pids (/proc/PID/status of every process).
//
// Whatever stays undecided goes into scan: listeners of a systemd manager
// in scan.manager, the others in scan.unknown.
func unitByPeer(scan *unitScan, unixSocks []Socket, pids []int, src unitSources, matched func(Socket) bool, add func(Socket, ...int)) {
	inUnit := map[int]bool{}
	for _, p := range pids {
		inUnit[p] = true
	}
	var candidates []Socket
	for _, s := range unixSocks {
		if !slices.Contains(scan.uids, s.UID) || matched(s) {
			continue
		}
		if len(candidates) == maxPeerConnects {
			scan.skipped++
			continue
		}
		candidates = append(candidates, s)
	}

	var (
		unconnected []Socket
		connErrs    []error
	)
	for _, s := range candidates {
		pid, err := src.listenerPID(s)
		switch {
		case err != nil:
			unconnected = append(unconnected, s)
			connErrs = append(connErrs, err)
		case inUnit[pid]:
			add(s, pid)
		case src.comm(pid) == "systemd":
			scan.manager = append(scan.manager, s)
			if !slices.Contains(scan.managerPIDs, pid) {
				scan.managerPIDs = append(scan.managerPIDs, pid)
			}
		}
	}
	slices.Sort(scan.managerPIDs)
	if len(unconnected) == 0 {
		return
	}

	// The owner uids that processes outside the unit have too.
	shared := map[uint32]bool{}
	all, err := src.allPIDs()
	if err != nil {
		scan.unknown, scan.unknownErr = unconnected, err
		for i, s := range unconnected {
			scan.why = append(scan.why, peerReason(s, connErrs[i]))
		}
		return
	}
	for _, p := range all {
		if inUnit[p] {
			continue
		}
		if uid, err := src.fsUID(p); err == nil {
			shared[uid] = true
		}
	}
	for i, s := range unconnected {
		if s.UID != 0 && !shared[s.UID] {
			add(s)
			continue
		}
		scan.unknown = append(scan.unknown, s)
		scan.why = append(scan.why, peerReason(s, connErrs[i]))
	}
}

// ownerUIDs returns the distinct UIDs of ss, sorted.
func ownerUIDs(ss []Socket) []uint32 {
	var out []uint32
	for _, s := range ss {
		out = append(out, s.UID)
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// processFSUID returns the file system uid of pid, the fourth Uid field
// of <procRoot>/PID/status (proc(5)): the uid a socket it creates gets.
func processFSUID(procRoot string, pid int) (uint32, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "status"))
	if err != nil {
		return 0, fmt.Errorf("read uid of pid %d: %w", pid, err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "Uid:")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) < 4 {
			break
		}
		uid, err := strconv.ParseUint(f[3], 10, 32)
		if err != nil {
			break
		}
		return uint32(uid), nil
	}
	return 0, fmt.Errorf("read uid of pid %d: no Uid line with four fields", pid)
}

// PortOwners returns the TCP listeners (tcp and tcp6) on port, on any
// address, in the order of listeners.
func PortOwners(port uint16, listeners []Socket) []Socket {
	var out []Socket
	for _, s := range listeners {
		if s.Proto != "unix" && s.Addr.IsValid() && s.Addr.Port() == port {
			out = append(out, s)
		}
	}
	return out
}

// SocketOwner finds a process holding the socket with the given inode by
// scanning <procRoot>/*/fd (procRoot "" means "/proc"), and returns the
// lowest such PID, its command name (<procRoot>/PID/comm) and its systemd
// unit: the last element of its cgroup path (<procRoot>/PID/cgroup, the
// name=systemd line, else the v2 "0::" line) that ends in ".service", or ""
// when it runs in no service.
//
// Processes whose fds cannot be read are skipped. When no readable process
// holds the socket, the error wraps fs.ErrNotExist and says how many
// processes could not be looked into.
func SocketOwner(procRoot string, inode uint64) (pid int, comm, unit string, err error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	pids, err := allPIDs(procRoot)
	if err != nil {
		return 0, "", "", fmt.Errorf("find owner of socket %d: %w", inode, err)
	}
	unreadable := 0
	for _, p := range pids {
		inodes, err := SocketInodes(procRoot, p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				unreadable++
			}
			continue
		}
		if !inodes[inode] {
			continue
		}
		return p, processComm(procRoot, p), processUnit(procRoot, p), nil
	}
	if unreadable > 0 {
		return 0, "", "", fmt.Errorf("find owner of socket %d: no readable process holds it (the fds of %d processes could not be read; %s): %w", inode, unreadable, fdAccessHint, fs.ErrNotExist)
	}
	return 0, "", "", fmt.Errorf("find owner of socket %d: no process holds it: %w", inode, fs.ErrNotExist)
}

// processUnit returns the systemd service pid runs in, from
// <procRoot>/PID/cgroup, or "".
func processUnit(procRoot string, pid int) string {
	b, err := os.ReadFile(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return ""
	}
	var v1, v2 string
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimRight(line, "\n"), ":", 3)
		if len(f) != 3 {
			continue
		}
		switch {
		case f[1] == "name=systemd":
			v1 = f[2]
		case f[0] == "0" && f[1] == "":
			v2 = f[2]
		}
	}
	for _, cg := range []string{v1, v2} {
		if u := serviceOfCgroup(cg); u != "" {
			return u
		}
	}
	return ""
}

// serviceOfCgroup returns the last element of a cgroup path that ends in
// ".service": "x.service" for "/medic-test-1/app.slice/x.service/worker".
func serviceOfCgroup(cg string) string {
	parts := strings.Split(cg, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.HasSuffix(parts[i], ".service") && len(parts[i]) > len(".service") {
			return parts[i]
		}
	}
	return ""
}

// joinUints renders uids as "1000" or "1000, 1001"; "unknown" for none.
func joinUints(v []uint32) string {
	if len(v) == 0 {
		return "unknown"
	}
	s := make([]string, len(v))
	for i, u := range v {
		s[i] = strconv.FormatUint(uint64(u), 10)
	}
	return strings.Join(s, ", ")
}

// joinInts renders pids as "1" or "1, 812".
func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ", ")
}
