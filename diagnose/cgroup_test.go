package diagnose

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

func TestCgroupOwnProcess(t *testing.T) {
	cg := ownV2Cgroup(t)
	pids, err := CgroupPIDs(cg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, os.Getpid()) {
		t.Errorf("CgroupPIDs(%q) lacks this process %d: %v", cg, os.Getpid(), pids)
	}
	id, err := CgroupID(cg)
	if err != nil {
		t.Fatal(err)
	}
	if want := ownCgroupID(t); id != want {
		t.Errorf("CgroupID(%q) = %d, want %d", cg, id, want)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ino := fdInode(t, ln.(*net.TCPListener))
	inodes, err := SocketInodes("", os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if !inodes[ino] {
		t.Errorf("SocketInodes(self) lacks the listener's inode %d: %v", ino, inodes)
	}
	pid, comm, unit, err := SocketOwner("", ino)
	if err != nil {
		t.Fatal(err)
	}
	self, _ := os.ReadFile("/proc/self/comm")
	if pid != os.Getpid() || comm != strings.TrimSpace(string(self)) || unit != processUnit("/proc", os.Getpid()) {
		t.Errorf("SocketOwner = %d %q %q, want %d %q (unit of this process)", pid, comm, unit, os.Getpid(), strings.TrimSpace(string(self)))
	}
}

func TestCgroupErrors(t *testing.T) {
	missing := fmt.Sprintf("/medic-no-such-cgroup-%d", os.Getpid())
	if _, err := CgroupPIDs(missing); !errors.Is(err, fs.ErrNotExist) ||
		err.Error() != "list processes of cgroup "+missing+": not found under /sys/fs/cgroup/unified, /sys/fs/cgroup/systemd, /sys/fs/cgroup: file does not exist" {
		t.Errorf("CgroupPIDs(missing): %v", err)
	}
	if _, err := CgroupPIDs(""); err == nil || !strings.Contains(err.Error(), "empty cgroup path") {
		t.Errorf("CgroupPIDs(\"\"): %v, want an empty cgroup path error", err)
	}
	if _, err := CgroupID(missing); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("CgroupID(missing): %v, want fs.ErrNotExist", err)
	}
	// ".." cannot climb out of the hierarchy.
	if got, _ := cleanCgroup("../../etc"); got != "/etc" {
		t.Errorf("cleanCgroup(../../etc) = %q, want /etc", got)
	}
	if _, err := SocketInodes("", 1<<30); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SocketInodes(no such pid): %v, want fs.ErrNotExist", err)
	}
	if _, _, _, err := SocketOwner("", 1<<62); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("SocketOwner(no such inode): %v, want fs.ErrNotExist", err)
	}
	ls, notes := UnitListeners("")
	if len(ls) != 0 || len(notes) != 1 || !strings.Contains(notes[0], "no control group") {
		t.Errorf("UnitListeners(\"\") = %v, %q", ls, notes)
	}
}

func TestCgroupServiceOfCgroup(t *testing.T) {
	for in, want := range map[string]string{
		"/system.slice/my-app.service":                                      "my-app.service",
		"/medic-test-1/app.slice/x.service":                                 "x.service",
		"/system.slice/x.service/worker":                                    "x.service",
		"/user.slice/user-1000.slice/user@1000.service/app.slice":           "user@1000.service",
		"/user.slice/user-1000.slice/user@1000.service/app.slice/y.service": "y.service",
		"/init.scope": "",
		"/":           "",
		"/.service":   "",
	} {
		if got := serviceOfCgroup(in); got != want {
			t.Errorf("serviceOfCgroup(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestCgroupProcessUnit(t *testing.T) {
	root := t.TempDir()
	write := func(pid int, text string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "cgroup"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(1, "12:memory:/system.slice/a.service\n1:name=systemd:/system.slice/b.service\n0::/system.slice/b.service\n")
	write(2, "0::/system.slice/c.service\n")                  // pure v2
	write(3, "1:name=systemd:/init.scope\n0::/\n")            // no service
	write(4, "1:name=systemd:/\n0::/x.slice/d.service/sub\n") // v1 root, v2 below a service
	for pid, want := range map[int]string{1: "b.service", 2: "c.service", 3: "", 4: "d.service", 5: ""} {
		if got := processUnit(root, pid); got != want {
			t.Errorf("processUnit(%d) = %q, want %q", pid, got, want)
		}
	}
}

func TestPortOwners(t *testing.T) {
	ls := []Socket{
		{Proto: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:3000"), Inode: 1},
		{Proto: "tcp6", Addr: netip.MustParseAddrPort("[::]:8080"), Inode: 2},
		{Proto: "tcp", Addr: netip.MustParseAddrPort("0.0.0.0:8080"), Inode: 3},
		{Proto: "unix", Path: "/run/8080", Inode: 4},
	}
	var got []uint64
	for _, s := range PortOwners(8080, ls) {
		got = append(got, s.Inode)
	}
	if !slices.Equal(got, []uint64{2, 3}) {
		t.Errorf("PortOwners(8080) inodes %v, want [2 3]", got)
	}
	if got := PortOwners(9, ls); len(got) != 0 {
		t.Errorf("PortOwners(9) = %v, want none", got)
	}
}

// TestUnitListenersSystemd runs the test backend as a unit of a real systemd
// user manager and finds its processes and listener from its ControlGroup,
// as root and as uid 65534.
func TestUnitListenersSystemd(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := fmt.Sprintf("medic-diag-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	t.Cleanup(func() { _, _ = m.Systemctl(t.Context(), "stop", unit) })
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return systemdtest.Answers(addr) }, "backend to answer on "+addr)

	cg := systemdtest.Prop(t, m, unit, "ControlGroup")
	mainPID, err := strconv.Atoi(systemdtest.Prop(t, m, unit, "MainPID"))
	if err != nil || mainPID == 0 {
		t.Fatalf("MainPID of %s: %v", unit, err)
	}
	t.Logf("%s: ControlGroup %s, MainPID %d", unit, cg, mainPID)

	pids, err := CgroupPIDs(cg)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(pids, mainPID) {
		t.Errorf("CgroupPIDs(%q) = %v, lacks MainPID %d", cg, pids, mainPID)
	}
	cgid, err := CgroupID(cg)
	if err != nil {
		t.Fatal(err)
	}

	ls, notes := UnitListeners(cg)
	if len(notes) != 0 {
		t.Errorf("UnitListeners as root reports unavailable evidence: %q", notes)
	}
	var got *Socket
	for i, s := range ls {
		if s.String() == addr {
			got = &ls[i]
		}
	}
	if got == nil {
		t.Fatalf("UnitListeners(%q) lacks %s: %q", cg, addr, describeSockets(ls))
	}
	if !slices.Equal(got.PIDs, []int{mainPID}) || got.UID != uint32(os.Getuid()) || got.Proto != "tcp" {
		t.Errorf("listener %s, want pids [%d] and uid %d", describeSocket(*got), mainPID, os.Getuid())
	}
	if got.CgroupID != 0 && got.CgroupID != cgid {
		t.Errorf("listener %s has cgroup id %d, want %d (CgroupID(%q))", describeSocket(*got), got.CgroupID, cgid, cg)
	}

	pid, comm, owner, err := SocketOwner("", got.Inode)
	if err != nil {
		t.Fatal(err)
	}
	if wantComm := filepath.Base(bin)[:min(15, len(filepath.Base(bin)))]; pid != mainPID || comm != wantComm || owner != unit {
		t.Errorf("SocketOwner(%d) = %d %q %q, want %d %q %q", got.Inode, pid, comm, owner, mainPID, wantComm, unit)
	}

	// As uid 65534: the fds of the root-owned backend are closed to it, but
	// the cgroup id from sock_diag still finds the listener, without PIDs.
	lines := runAsNobody(t, "unit", cg)
	want := describeSocket(Socket{Proto: "tcp", Addr: got.Addr, UID: got.UID, Inode: got.Inode, CgroupID: got.CgroupID})
	if got.CgroupID != 0 && !slices.Contains(lines["listener"], want) {
		t.Errorf("as uid %d UnitListeners lacks %q: %q", diagNobody, want, lines["listener"])
	}
	wantNote := fmt.Sprintf("process sockets: list sockets of pid %d: open /proc/%d/fd: permission denied", mainPID, mainPID)
	if !slices.ContainsFunc(lines["unavailable"], func(n string) bool { return strings.HasPrefix(n, wantNote) }) {
		t.Errorf("as uid %d UnitListeners' unavailable %q lacks %q", diagNobody, lines["unavailable"], wantNote)
	}

	lines = runAsNobody(t, "owner", strconv.FormatUint(got.Inode, 10))
	if e := lines["error"]; len(e) != 1 || !strings.Contains(e[0], "no readable process holds it (the fds of") {
		t.Errorf("as uid %d SocketOwner: %q, want a not-found error that counts unreadable processes", diagNobody, lines)
	}
}

// TestUnitListenersFallbacks walks the three ways of matching with fake
// evidence: by cgroup id, by the processes' fds, and by uid alone.
func TestUnitListenersFallbacks(t *testing.T) {
	tcp := func(addr string, uid uint32, ino, cg uint64) Socket {
		return Socket{Proto: "tcp", Addr: netip.MustParseAddrPort(addr), UID: uid, Inode: ino, CgroupID: cg}
	}
	uds := func(path string, uid uint32, ino uint64) Socket {
		return Socket{Proto: "unix", Path: path, UID: uid, Inode: ino}
	}
	denied := func(pid int) (map[uint64]bool, error) {
		return nil, fmt.Errorf("list sockets of pid %d: %w", pid, &fs.PathError{Op: "open", Path: fmt.Sprintf("/proc/%d/fd", pid), Err: fs.ErrPermission})
	}
	noCgroups := []Socket{tcp("127.0.0.1:3000", 1000, 1, 0), tcp("127.0.0.1:4000", 1001, 2, 0)}
	base := unitSources{
		sockDiag: func() ([]Socket, error) {
			return []Socket{tcp("127.0.0.1:3000", 1000, 1, 50), tcp("127.0.0.1:4000", 1000, 2, 60), tcp("0.0.0.0:22", 0, 3, 1)}, nil
		},
		sockDiagUnix: func() ([]Socket, error) {
			return []Socket{uds("/run/app.sock", 1000, 10), uds("/run/other.sock", 0, 11)}, nil
		},
		procListeners: func() ([]Socket, error) {
			return append(slices.Clone(noCgroups), uds("/run/app.sock", 0, 10)), nil
		},
		cgroupIDs:  func(string) (map[uint64]bool, error) { return map[uint64]bool{50: true, 51: true}, nil },
		cgroupPIDs: func(string) ([]int, error) { return []int{42, 43}, nil },
		socketInodes: func(pid int) (map[uint64]bool, error) {
			if pid == 42 {
				return map[uint64]bool{1: true, 10: true}, nil
			}
			return map[uint64]bool{10: true}, nil
		},
		fsUID: func(pid int) (uint32, error) {
			if pid == 1 {
				return 0, nil
			}
			return 1000, nil // 7 is a process of the same user outside the unit
		},
		listenerPID: func(s Socket) (int, error) {
			if s.Path == "/run/app.sock" {
				return 42, nil
			}
			return 7, nil
		},
		allPIDs: func() ([]int, error) { return []int{1, 7, 42, 43}, nil },
		comm: func(pid int) string {
			if pid == 1 {
				return "systemd"
			}
			return "app"
		},
	}
	refused := func(s Socket) (int, error) {
		return 0, fmt.Errorf("read peer credentials of %s: connect: %w", s.Path, syscall.EACCES)
	}
	tests := []struct {
		name     string
		change   func(*unitSources)
		want     []string
		wantNote []string // prefixes, in order
	}{
		{name: "cgroup and fds", want: []string{
			"tcp 127.0.0.1:3000 uid=1000 ino=1 cgroup=50 pids=[42]",
			"unix unix:/run/app.sock uid=1000 ino=10 pids=[42 43]",
		}},
		{name: "cgroup and peer credentials", change: func(s *unitSources) { s.socketInodes = denied },
			want: []string{
				"tcp 127.0.0.1:3000 uid=1000 ino=1 cgroup=50",
				"unix unix:/run/app.sock uid=1000 ino=10 pids=[42]",
			},
			wantNote: []string{
				"process sockets: list sockets of pid 42: open /proc/42/fd: permission denied (and 1 more processes); run medic as root or as the unit's user, or give it CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE.",
			}},
		{name: "socket activation", change: func(s *unitSources) {
			s.socketInodes = denied
			s.listenerPID = func(Socket) (int, error) { return 1, nil }
		},
			want: []string{"tcp 127.0.0.1:3000 uid=1000 ino=1 cgroup=50"},
			wantNote: []string{
				"process sockets: list sockets of pid 42",
				"unit unix sockets: 1 listener of a systemd manager (pid 1) may be the unit's, handed over by socket activation: unix:/run/app.sock.",
			}},
		{name: "no connect, uid of the unit alone", change: func(s *unitSources) {
			s.socketInodes = denied
			s.listenerPID = refused
			// pid 7, outside the unit, now runs as another user.
			s.fsUID = func(pid int) (uint32, error) { return map[int]uint32{1: 0, 7: 2000, 42: 1000, 43: 1000}[pid], nil }
		},
			want: []string{
				"tcp 127.0.0.1:3000 uid=1000 ino=1 cgroup=50",
				"unix unix:/run/app.sock uid=1000 ino=10",
			},
			wantNote: []string{"process sockets: list sockets of pid 42"}},
		{name: "no connect, uid shared", change: func(s *unitSources) {
			s.socketInodes = denied
			s.listenerPID = refused
		},
			want: []string{"tcp 127.0.0.1:3000 uid=1000 ino=1 cgroup=50"},
			wantNote: []string{
				"process sockets: list sockets of pid 42",
				"unit unix sockets: 1 listener owned by uid 1000 may be the unit's; who listens is unknown (connect: permission denied): unix:/run/app.sock.",
			}},
		{name: "fds only, old kernel", change: func(s *unitSources) {
			s.sockDiag = func() ([]Socket, error) { return noCgroups, nil }
		},
			want: []string{
				"tcp 127.0.0.1:3000 uid=1000 ino=1 pids=[42]",
				"unix unix:/run/app.sock uid=1000 ino=10 pids=[42 43]",
			},
			wantNote: []string{"socket cgroups: this kernel's sock_diag reports no cgroup ids"}},
		{name: "uid only", change: func(s *unitSources) {
			s.sockDiag = func() ([]Socket, error) { return noCgroups, nil }
			s.socketInodes = denied
		},
			want: []string{
				"unix unix:/run/app.sock uid=1000 ino=10 pids=[42]",
				"tcp 127.0.0.1:3000 uid=1000 ino=1",
			},
			wantNote: []string{
				"socket cgroups: this kernel's sock_diag reports no cgroup ids",
				"unit TCP sockets: matched by owner uid 1000 only",
				"process sockets: list sockets of pid 42",
			}},
		{name: "no sock_diag, fds", change: func(s *unitSources) {
			s.sockDiag = func() ([]Socket, error) { return nil, errors.New("sock_diag: dial netlink: protocol not supported") }
			s.sockDiagUnix = s.sockDiag
		},
			want: []string{
				"tcp 127.0.0.1:3000 uid=1000 ino=1 pids=[42]",
				"unix unix:/run/app.sock uid=0 ino=10 pids=[42 43]",
			},
			wantNote: []string{
				"socket cgroups: sock_diag: dial netlink: protocol not supported; read /proc/net instead",
				"unix socket owners: sock_diag: dial netlink: protocol not supported; read /proc/net/unix instead",
			}},
		{name: "nothing but uids", change: func(s *unitSources) {
			s.sockDiag = func() ([]Socket, error) { return nil, errors.New("sock_diag: dial netlink: protocol not supported") }
			s.sockDiagUnix = s.sockDiag
			s.socketInodes = denied
		},
			want: []string{"tcp 127.0.0.1:3000 uid=1000 ino=1"},
			wantNote: []string{
				"socket cgroups: sock_diag",
				"unix socket owners: sock_diag",
				"unit TCP sockets: matched by owner uid 1000 only",
				"process sockets: list sockets of pid 42",
				"unit unix sockets: unknown, since /proc/net/unix does not say who owns a socket",
			}},
		{name: "unit gone", change: func(s *unitSources) {
			s.cgroupIDs = func(string) (map[uint64]bool, error) {
				return nil, errors.New("read cgroup ids: lstat /x: no such file or directory")
			}
			s.cgroupPIDs = func(string) ([]int, error) { return nil, errors.New("list processes of cgroup /x: not found") }
		},
			wantNote: []string{
				"socket cgroups: read cgroup ids: lstat /x: no such file or directory.",
				"unit processes: list processes of cgroup /x: not found.",
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src := base
			if tt.change != nil {
				tt.change(&src)
			}
			scan := unitListeners("/app.slice/x.service", src)
			ls, notes := scan.listeners, scan.notes(allGaps)
			if g := describeSockets(ls); !slices.Equal(g, tt.want) {
				t.Errorf("listeners\n%s\nwant\n%s", strings.Join(g, "\n"), strings.Join(tt.want, "\n"))
			}
			ok := len(notes) == len(tt.wantNote)
			for i := 0; ok && i < len(notes); i++ {
				ok = strings.HasPrefix(notes[i], tt.wantNote[i])
			}
			if !ok {
				t.Errorf("unavailable\n%s\nwant prefixes\n%s", strings.Join(notes, "\n"), strings.Join(tt.wantNote, "\n"))
			}
		})
	}
}

// TestUnitGaps checks which gaps in a unit's sockets a diagnosis names, on
// the case of a root unit under PID-1 systemd diagnosed by medic without
// privileges: its /proc/PID/fd is closed to medic, its own socket was found
// by its peer credentials, PID 1 listens on four root sockets and two more
// cannot be connected to.
func TestUnitGaps(t *testing.T) {
	uds := func(path string) Socket { return Socket{Proto: "unix", Path: path} }
	own := Socket{Proto: "unix", Path: "/run/sockapp/app.sock", PIDs: []int{391}}
	ownTCP := Socket{Proto: "tcp", Addr: netip.MustParseAddrPort("127.0.0.1:3000")}
	fdErr := fmt.Errorf("list sockets of pid 391: %w", &fs.PathError{Op: "open", Path: "/proc/391/fd", Err: fs.ErrPermission})
	scan := func(ls ...Socket) *unitScan {
		return &unitScan{
			listeners: ls, fdErr: fdErr, fdErrs: 1, uids: []uint32{0},
			manager: []Socket{
				uds("/run/systemd/userdb/io.systemd.DynamicUser"), uds("/run/systemd/io.system.ManagedOOM"),
				uds("/run/systemd/journal/stdout"), uds("/run/dbus/system_bus_socket"),
			},
			managerPIDs: []int{1},
			unknown:     []Socket{uds("/run/systemd/private"), uds("/run/systemd/journal/io.systemd.journal"), uds("/run/sockapp/admin.sock")},
			why:         []string{"connect: permission denied", "connect: permission denied", "connect: permission denied"},
		}
	}
	const (
		fdNote      = "process sockets: list sockets of pid 391: open /proc/391/fd: permission denied; run medic as root or as the unit's user, or give it CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE."
		unknownNote = "unit unix sockets: 3 listeners owned by uid 0 may be the unit's; who listens is unknown (connect: permission denied): unix:/run/sockapp/admin.sock, unix:/run/systemd/private and 1 more."
	)
	tests := []struct {
		name        string
		probe       probe.Spec
		triggeredBy []string
		scan        *unitScan
		want        []string
	}{
		{name: "own unix listener found", probe: probe.Spec{Type: "unix", Path: "/run/sockapp/wrong.sock"}, scan: scan(own)},
		{name: "own unix listener found, not socket-activated", probe: probe.Spec{Type: "unix", Path: "/run/sockapp/wrong.sock"}, triggeredBy: []string{}, scan: scan(own)},
		{name: "own unix listener found, started by a timer", probe: probe.Spec{Type: "unix", Path: "/run/sockapp/wrong.sock"}, triggeredBy: []string{"sockapp.timer"}, scan: scan(own)},
		{name: "own unix listener found, socket-activated", probe: probe.Spec{Type: "unix", Path: "/run/sockapp/wrong.sock"}, triggeredBy: []string{"sockapp.socket"}, scan: scan(own),
			want: []string{fdNote, "unit unix sockets: 4 listeners of a systemd manager (pid 1) may be the unit's, handed over by sockapp.socket: unix:/run/systemd/userdb/io.systemd.DynamicUser and 3 more."}},
		{name: "no unix listener, not socket-activated", probe: probe.Spec{Type: "unix", Path: "/run/sockapp/wrong.sock"}, triggeredBy: []string{}, scan: scan(ownTCP),
			want: []string{fdNote, unknownNote}},
		{name: "no unix listener, activation unknown", probe: probe.Spec{Type: "unix", Path: "/run/sockapp/wrong.sock"}, scan: scan(),
			want: []string{fdNote, "unit unix sockets: 4 listeners of a systemd manager (pid 1) may be the unit's, handed over by socket activation: unix:/run/systemd/userdb/io.systemd.DynamicUser and 3 more.", unknownNote}},
		{name: "tcp listener found", probe: probe.Spec{Type: "tcp", Address: "127.0.0.1:8080"}, scan: scan(own, ownTCP)},
		{name: "no tcp listener", probe: probe.Spec{Type: "tcp", Address: "127.0.0.1:8080"}, scan: scan(own), want: []string{fdNote}},
		{name: "tcp listener found, socket-activated", probe: probe.Spec{Type: "http", HTTP: probe.HTTPOptions{URL: "http://127.0.0.1:8080/"}}, triggeredBy: []string{"app.socket"}, scan: scan(ownTCP),
			want: []string{fdNote}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := &run{in: Input{Spec: tt.probe, Unit: &unit.State{Name: "sockapp.service", TriggeredBy: tt.triggeredBy}}}
			got := tt.scan.notes(d.unitGaps(tt.scan))
			if !slices.Equal(got, tt.want) {
				t.Errorf("notes\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tt.want, "\n"))
			}
			for _, n := range got {
				if len(n) > maxNote+20 {
					t.Errorf("note of %d characters: %s", len(n), n)
				}
			}
		})
	}
}

// TestUnitGapsExamples checks that a long list of undecided listeners is
// cut to what fits in one note, and counted.
func TestUnitGapsExamples(t *testing.T) {
	s := &unitScan{uids: []uint32{0}}
	for i := range 25 {
		s.unknown = append(s.unknown, Socket{Proto: "unix", Path: fmt.Sprintf("/tmp/medic-test-%d/runtime/systemd/private", 1000000000+i)})
		s.why = append(s.why, "stat: permission denied")
	}
	s.unknown[20].Path = "/srv/app/closed.sock"
	s.why[20] = "connect: permission denied"
	got := s.notes(gapView{unknown: true, near: "/srv/app/app.sock"})
	want := "unit unix sockets: 25 listeners owned by uid 0 may be the unit's; who listens is unknown (connect: permission denied): unix:/srv/app/closed.sock and 24 more."
	if len(got) != 1 || got[0] != want {
		t.Errorf("notes %q\nwant %q", got, want)
	}
	if got := examples([]string{"a", "b", "c"}, 100); got != "a, b, c" {
		t.Errorf("examples(a, b, c) = %q", got)
	}
	if got := examples([]string{"a", "b", "c"}, 3); got != "a and 2 more" {
		t.Errorf("examples(a, b, c) in 3 = %q", got)
	}
}
