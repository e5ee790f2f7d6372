package diagnose

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	ossignal "os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"

	"golang.org/x/sys/unix"

	"github.com/medic-watchdog/medic/probe"
)

// ownV2Cgroup returns this process's cgroup in the v2 hierarchy, the "0::"
// line of /proc/self/cgroup.
func ownV2Cgroup(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if cg, ok := strings.CutPrefix(strings.TrimSpace(line), "0::"); ok {
			return cg
		}
	}
	systemdtest.Missing(t, "this process is in no cgroup v2 hierarchy")
	return ""
}

// ownCgroupID is the inode of this process's v2 cgroup directory, found
// without CgroupID.
func ownCgroupID(t *testing.T) uint64 {
	t.Helper()
	cg := ownV2Cgroup(t)
	for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
		var sf unix.Statfs_t
		if unix.Statfs(root, &sf) != nil || sf.Type != unix.CGROUP2_SUPER_MAGIC {
			continue
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(root, cg), &st); err != nil {
			t.Fatal(err)
		}
		return st.Ino
	}
	systemdtest.Missing(t, "no cgroup2 hierarchy mounted")
	return 0
}

func TestSockDiagListeners(t *testing.T) {
	want := testListeners(t)
	got, err := SockDiagListeners()
	if err != nil {
		t.Fatal(err)
	}
	cgid := ownCgroupID(t)
	withCgroup := 0
	for _, s := range got {
		if s.Proto != "tcp" && s.Proto != "tcp6" || !s.Addr.IsValid() || s.Inode == 0 {
			t.Errorf("bad socket from sock_diag: %#v", s)
		}
		if s.CgroupID != 0 {
			withCgroup++
		}
	}
	byDesc := map[string]Socket{}
	for _, s := range got {
		c := s
		c.CgroupID = 0
		byDesc[describeSocket(c)] = s
	}
	for _, w := range want {
		if strings.HasPrefix(w, "unix ") {
			continue
		}
		s, ok := byDesc[w]
		if !ok {
			t.Errorf("SockDiagListeners lacks %q; got\n%s", w, strings.Join(describeSockets(got), "\n"))
			continue
		}
		// The kernel reports the cgroup id from 5.9 on; when it does, it
		// is the inode of the creator's v2 cgroup directory.
		if s.CgroupID != 0 && s.CgroupID != cgid {
			t.Errorf("%s: cgroup id %d, want %d (the inode of this process's v2 cgroup %s)", w, s.CgroupID, cgid, ownV2Cgroup(t))
		}
	}
	var uts unix.Utsname
	_ = unix.Uname(&uts)
	t.Logf("kernel %s: %d of %d listeners carry a cgroup id", unix.ByteSliceToString(uts.Release[:]), withCgroup, len(got))
}

func TestSockDiagUnix(t *testing.T) {
	want := testListeners(t)
	abstract := fmt.Sprintf("@medic-diag-test-%d", os.Getpid())
	lna, err := net.Listen("unix", abstract)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = lna.Close() })
	uid := os.Getuid()
	want = append(want, fmt.Sprintf("unix unix:%s uid=%d ino=%d", abstract, uid, fdInode(t, lna.(*net.UnixListener))))

	// A unix listener that sock_diag and /proc/net/unix must both skip: a
	// datagram socket.
	dg, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: filepath.Join(t.TempDir(), "dgram.sock"), Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dg.Close() })

	got, err := SockDiagUnix()
	if err != nil {
		t.Fatal(err)
	}
	g := describeSockets(got)
	for _, w := range want {
		if !strings.HasPrefix(w, "unix ") {
			continue
		}
		// testListeners expects uid 0 for /proc/net/unix, which has none.
		w = strings.Replace(w, " uid=0 ", fmt.Sprintf(" uid=%d ", uid), 1)
		if !slices.Contains(g, w) {
			t.Errorf("SockDiagUnix lacks %q; got\n%s", w, strings.Join(g, "\n"))
		}
	}
	for _, s := range got {
		if strings.HasSuffix(s.Path, "dgram.sock") {
			t.Errorf("SockDiagUnix lists the datagram socket %s", describeSocket(s))
		}
	}

	// Both sources agree on the named stream listeners.
	proc, err := ProcListeners("")
	if err != nil {
		t.Fatal(err)
	}
	var fromProc, fromDiag []string
	for _, s := range proc {
		if s.Proto == "unix" {
			fromProc = append(fromProc, fmt.Sprintf("%s %d", s.Path, s.Inode))
		}
	}
	for _, s := range got {
		fromDiag = append(fromDiag, fmt.Sprintf("%s %d", s.Path, s.Inode))
	}
	slices.Sort(fromProc)
	slices.Sort(fromDiag)
	if !slices.Equal(fromProc, fromDiag) {
		t.Errorf("unix listeners differ:\n/proc/net/unix %q\nsock_diag      %q", fromProc, fromDiag)
	}
}

func TestSockDiagParseInetDiagMsg(t *testing.T) {
	msg := func(family byte, port uint16, addr []byte, uid, inode uint32, attrs ...[]byte) []byte {
		b := make([]byte, inetDiagMsgLen)
		b[0], b[1] = family, tcpListen
		binary.BigEndian.PutUint16(b[4:], port)
		copy(b[8:], addr)
		binary.NativeEndian.PutUint32(b[4+inetDiagSockIDLen+12:], uid)
		binary.NativeEndian.PutUint32(b[4+inetDiagSockIDLen+16:], inode)
		for _, a := range attrs {
			b = append(b, a...)
		}
		return b
	}
	attr := func(typ uint16, val []byte) []byte {
		a := make([]byte, 4, nlmsgAlign(4+len(val)))
		binary.NativeEndian.PutUint16(a[0:], uint16(4+len(val)))
		binary.NativeEndian.PutUint16(a[2:], typ)
		a = append(a, val...)
		return a[:nlmsgAlign(len(a))]
	}
	u64 := func(v uint64) []byte { return binary.NativeEndian.AppendUint64(nil, v) }
	v4mapped := []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127, 0, 0, 1}
	tests := []struct {
		name    string
		in      []byte
		want    string
		wantErr string
	}{
		{name: "v4 with cgroup", in: msg(unix.AF_INET, 8080, []byte{127, 0, 0, 1}, 1000, 4242, attr(10, []byte{6}), attr(inetDiagCgroupID, u64(7))),
			want: "tcp 127.0.0.1:8080 uid=1000 ino=4242 cgroup=7"},
		{name: "v6 loopback, no cgroup", in: msg(unix.AF_INET6, 3000, net.IPv6loopback, 0, 1),
			want: "tcp6 [::1]:3000 uid=0 ino=1"},
		{name: "v4-mapped", in: msg(unix.AF_INET6, 9090, v4mapped, 0, 1), want: "tcp6 127.0.0.1:9090 uid=0 ino=1"},
		{name: "truncated attribute ignored", in: append(msg(unix.AF_INET, 1, []byte{10, 0, 0, 1}, 0, 1), 12, 0, 21, 0, 1),
			want: "tcp 10.0.0.1:1 uid=0 ino=1"},
		{name: "short", in: make([]byte, 20), wantErr: "inet_diag_msg of 20 bytes, want 72"},
		{name: "family", in: msg(unix.AF_UNIX, 1, nil, 0, 1), wantErr: "inet_diag_msg of family 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := parseInetDiagMsg(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describeSocket(s); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSockDiagUnixName(t *testing.T) {
	for in, want := range map[string]string{
		"/run/app.sock":     "/run/app.sock",
		"/run/app.sock\x00": "/run/app.sock",
		"\x00abstract":      "@abstract",
		"\x00a\x00b":        "@a@b",
		"":                  "",
	} {
		if got := unixName([]byte(in)); got != want {
			t.Errorf("unixName(%q) = %q, want %q", in, got, want)
		}
	}
}

// Environment of the helper process that tests run as another user.
const (
	diagHelperEnv = "MEDIC_DIAGNOSE_HELPER" // the mode: "sockdiag", "unit", "owner"
	diagHelperArg = "MEDIC_DIAGNOSE_HELPER_ARG"
	diagNobody    = 65534
)

// TestSockDiagHelperProcess is not a test: runAsNobody runs the test binary
// as uid 65534 with only this test selected, and it prints what the
// diagnose functions see from there, one "key: value" line each.
//
//	sockdiag: listens on 127.0.0.1:0 and an abstract unix socket and
//	          prints "want: ..." for each, then "tcp: ..." and "unix: ..."
//	          for what SockDiagListeners and SockDiagUnix return
//	unit:     prints "listener: ..." and "unavailable: ..." from
//	          UnitListeners(ARG)
//	owner:    prints "owner: ..." or "error: ..." from SocketOwner("", ARG)
//	serve:    listens on the TCP addresses and unix sockets in ARG until
//	          SIGTERM (run as a unit)
//	diagnose: probes and diagnoses a diagnoseRequest, prints "diagnosis: JSON"
//	firewall: prints "firewall: ..." from FirewallRules' unavailable
func TestSockDiagHelperProcess(t *testing.T) {
	mode := os.Getenv(diagHelperEnv)
	if mode == "" {
		t.Skip("helper process for the unprivileged sock_diag and cgroup tests; runs only as their child")
	}
	arg := os.Getenv(diagHelperArg)
	fmt.Printf("uid: %d\n", os.Getuid())
	switch mode {
	case "sockdiag":
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("want: tcp %s uid=%d ino=%d\n", ln.Addr(), os.Getuid(), fdInode(t, ln.(*net.TCPListener)))
		name := fmt.Sprintf("@medic-diag-helper-%d", os.Getpid())
		lu, err := net.Listen("unix", name)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
		fmt.Printf("want: unix unix:%s uid=%d ino=%d\n", name, os.Getuid(), fdInode(t, lu.(*net.UnixListener)))
		tcp, err := SockDiagListeners()
		if err != nil {
			fmt.Printf("error: %v\n", err)
		}
		for _, s := range tcp {
			fmt.Printf("tcp: %s\n", describeSocket(s))
		}
		us, err := SockDiagUnix()
		if err != nil {
			fmt.Printf("error: %v\n", err)
		}
		for _, s := range us {
			fmt.Printf("unix: %s\n", describeSocket(s))
		}
	case "unit":
		ls, notes := UnitListeners(arg)
		for _, s := range ls {
			fmt.Printf("listener: %s\n", describeSocket(s))
		}
		for _, n := range notes {
			fmt.Printf("unavailable: %s\n", n)
		}
	case "serve":
		// ARG is "ADDR[,MODE] ...": listen on each TCP address or unix
		// socket path (one that starts with "/"), chmod a socket file to
		// the octal MODE, until SIGTERM.
		ctx, stop := ossignal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		var lns []net.Listener
		for _, a := range strings.Fields(arg) {
			addr, modeStr, _ := strings.Cut(a, ",")
			network := "tcp"
			if strings.HasPrefix(addr, "/") {
				network = "unix"
			}
			mode, _ := strconv.ParseUint(modeStr, 8, 32)
			ln, err := net.Listen(network, addr)
			if err != nil {
				fmt.Printf("error: %v\n", err)
				os.Exit(1)
			}
			if mode != 0 {
				if err := os.Chmod(addr, os.FileMode(mode)); err != nil {
					fmt.Printf("error: %v\n", err)
					os.Exit(1)
				}
			}
			lns = append(lns, ln)
			go func() {
				for {
					c, err := ln.Accept()
					if err != nil {
						return
					}
					_ = c.Close()
				}
			}()
		}
		fmt.Printf("serving: %d listeners, pid %d\n", len(lns), os.Getpid())
		<-ctx.Done()
		for _, ln := range lns {
			_ = ln.Close()
		}
	case "diagnose":
		// ARG is the JSON of a diagnoseRequest; the probe runs here too.
		var req diagnoseRequest
		if err := json.Unmarshal([]byte(arg), &req); err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
		p, err := probe.New(req.Spec)
		if err != nil {
			fmt.Printf("error: %v\n", err)
			os.Exit(1)
		}
		ForgetSocketSnapshot()
		dg := Diagnose(context.Background(), Input{Spec: req.Spec, Result: p.Probe(context.Background(), time.Second), Unit: req.Unit})
		b, _ := json.Marshal(dg)
		fmt.Printf("diagnosis: %s\n", b)
	case "firewall":
		rules, unavailable := FirewallRules(context.Background(), 8080)
		fmt.Printf("rules: %q\nfirewall: %s\n", rules, unavailable)
	case "owner":
		ino, _ := strconv.ParseUint(arg, 10, 64)
		pid, comm, unit, err := SocketOwner("", ino)
		if err != nil {
			fmt.Printf("error: %v\n", err)
		} else {
			fmt.Printf("owner: %d %s %s\n", pid, comm, unit)
		}
	}
	os.Exit(0)
}

// runAsNobody runs TestSockDiagHelperProcess in a copy of the test binary
// as uid 65534 and returns its output lines by key. It skips (or fails under
// MEDIC_REQUIRE_SYSTEMD=1) when this process cannot change uid.
func runAsNobody(t *testing.T, mode, arg string) map[string][]string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skipf("skipping: running as uid %d already shows the unprivileged view; the copy as uid %d needs root", os.Getuid(), diagNobody)
	}
	// A directory nobody can search: t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "medic-diagnose-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "diagnose.test")
	if err := copyTestBinary(exe); err != nil {
		t.Fatalf("copy the test binary for uid %d: %v", diagNobody, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestSockDiagHelperProcess$")
	cmd.Dir = dir
	cmd.Env = []string{diagHelperEnv + "=" + mode, diagHelperArg + "=" + arg, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: diagNobody, Gid: diagNobody, Groups: []uint32{}},
	}
	out, err := cmd.CombinedOutput()
	t.Logf("helper as uid %d (%s %s):\n%s", diagNobody, mode, arg, out)
	if err != nil {
		t.Fatalf("run the test binary as uid %d: %v", diagNobody, err)
	}
	lines := map[string][]string{}
	for l := range strings.Lines(string(out)) {
		if k, v, ok := strings.Cut(strings.TrimSpace(l), ": "); ok {
			lines[k] = append(lines[k], v)
		}
	}
	if got := lines["uid"]; len(got) != 1 || got[0] != strconv.Itoa(diagNobody) {
		t.Fatalf("helper ran as uid %v, want %d", got, diagNobody)
	}
	return lines
}

// copyTestBinary copies the running test binary to dst with mode 0755.
func copyTestBinary(dst string) error {
	src, err := os.Executable()
	if err != nil {
		return err
	}
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// TestSockDiagUnprivileged proves sock_diag works for an unprivileged user:
// as uid 65534 the helper finds its own listeners with its uid and inode,
// and the cgroup id (when the kernel reports one) is that of its v2 cgroup,
// which it inherits from this process.
func TestSockDiagUnprivileged(t *testing.T) {
	// A root listener, which the helper must see too.
	root, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rootWant := fmt.Sprintf("tcp %s uid=0 ino=%d", root.Addr(), fdInode(t, root.(*net.TCPListener)))

	lines := runAsNobody(t, "sockdiag", "")
	if e := lines["error"]; len(e) > 0 {
		t.Fatalf("helper errors: %q", e)
	}
	cgid := ownCgroupID(t)
	want := lines["want"]
	if len(want) != 2 {
		t.Fatalf("helper wants %q, want two listeners", want)
	}
	found := func(key, w string) bool {
		for _, g := range lines[key] {
			if g == w || g == fmt.Sprintf("%s cgroup=%d", w, cgid) {
				return true
			}
		}
		return false
	}
	if !found("tcp", want[0]) {
		t.Errorf("as uid %d SockDiagListeners lacks %q (cgroup %d or none); got %q", diagNobody, want[0], cgid, lines["tcp"])
	}
	if !found("unix", want[1]) {
		t.Errorf("as uid %d SockDiagUnix lacks %q; got %q", diagNobody, want[1], lines["unix"])
	}
	if !found("tcp", rootWant) {
		t.Errorf("as uid %d SockDiagListeners lacks root's %q; got %q", diagNobody, rootWant, lines["tcp"])
	}
}
