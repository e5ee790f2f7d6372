package diagnose

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
	"golang.org/x/sys/unix"
)

func TestParseProcStat(t *testing.T) {
	tests := []struct {
		in      string
		want    ProcState
		wantErr bool
	}{
		{"1234 (nginx) T 1 1234 1234 0 -1 4194560 ...", ProcState{PID: 1234, Comm: "nginx", State: "T"}, false},
		{"7 (a) b) (c) D 1 2 3", ProcState{PID: 7, Comm: "a) b) (c", State: "D"}, false},
		{"9 (tracee) t 1", ProcState{PID: 9, Comm: "tracee", State: "t"}, false},
		{"9 (x)", ProcState{}, true},
		{"x (y) S 1", ProcState{}, true},
		{"", ProcState{}, true},
		{"9 (x) SS 1", ProcState{}, true},
	}
	for _, tt := range tests {
		got, err := parseProcStat(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseProcStat(%q) = %+v, %v; want %+v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	self, err := ReadProcState(os.Getpid())
	if err != nil || self.PID != os.Getpid() || self.Stuck() {
		t.Errorf("ReadProcState(self) = %+v, %v", self, err)
	}
}

func TestParsePressureSome(t *testing.T) {
	tests := []struct {
		in     string
		want   float64
		wantOK bool
	}{
		{"some avg10=25.22 avg60=26.97 avg300=36.06 total=2298593647\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", 25.22, true},
		{"full avg10=3.00\nsome avg60=1 avg10=7.5\n", 7.5, true},
		{"some avg10=x\n", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, ok := parsePressureSome(tt.in)
		if got != tt.want || ok != tt.wantOK {
			t.Errorf("parsePressureSome(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
		}
	}
	if _, err := os.Stat("/proc/pressure/cpu"); err == nil {
		if _, err := ReadPressure(); err != nil {
			t.Errorf("ReadPressure: %v", err)
		}
	}
}

func TestAcceptQueueFull(t *testing.T) {
	for _, tt := range []struct {
		q    AcceptQueue
		want bool
	}{{AcceptQueue{0, 0}, false}, {AcceptQueue{1, 0}, true}, {AcceptQueue{1, 2}, false}, {AcceptQueue{2, 1}, true}, {AcceptQueue{128, 128}, true}} {
		if got := tt.q.Full(); got != tt.want {
			t.Errorf("%v.Full() = %v; want %v", tt.q, got, tt.want)
		}
	}
}

// TestStallHelperProcess serves HTTP on 127.0.0.1:0 and prints the port;
// it does nothing in a normal test run.
func TestStallHelperProcess(t *testing.T) {
	if os.Getenv("MEDIC_STALL_HELPER") != "1" {
		return
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(2)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("ok")) }))
	os.Exit(0)
}

// TestDiagnoseStoppedBackend starts a real HTTP backend in its own cgroup
// (the cgroup2 hierarchy), stops it with SIGSTOP and probes it over HTTP
// with a short timeout: the cause must be "backend not responding" naming
// the stopped main process, not a firewall.
func TestDiagnoseStoppedBackend(t *testing.T) {
	requireRootForTest(t, "creating a cgroup")
	root := ""
	for _, r := range cgroupV2Roots {
		var st unix.Statfs_t
		if unix.Statfs(r, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			root = r
			break
		}
	}
	if root == "" {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatal("no cgroup2 hierarchy and MEDIC_REQUIRE_SYSTEMD=1")
		}
		t.Skip("no cgroup2 hierarchy")
	}
	cg := fmt.Sprintf("/medic-stall-test-%d", os.Getpid())
	dir := filepath.Join(root, cg)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err := os.Remove(dir); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^TestStallHelperProcess$")
	child.Env = append(os.Environ(), "MEDIC_STALL_HELPER=1")
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	t.Cleanup(func() {
		_ = child.Process.Signal(syscall.SIGCONT)
		_ = child.Process.Kill()
		_ = child.Wait()
	})
	if err := os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read port: %v", err)
	}
	port := strings.TrimSpace(line)
	url := "http://127.0.0.1:" + port + "/health"
	spec := probe.Spec{Type: "http", HTTP: probe.HTTPOptions{URL: url}}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if r := p.Probe(ctx, 2*time.Second); !r.OK {
		t.Fatalf("probe before SIGSTOP: %+v", r)
	}
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	for range 100 { // SIGSTOP takes effect asynchronously
		if st, _ := ReadProcState(pid); st.State == "T" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	res := p.Probe(ctx, 300*time.Millisecond)
	if res.OK || res.Class != probe.ClassTimeout {
		t.Fatalf("probe of the stopped backend: %+v; want a timeout", res)
	}
	ForgetSocketSnapshot()
	u := &unit.State{Name: "backend.service", LoadState: "loaded", ActiveState: "active", SubState: "running", Result: "success",
		MainPID: uint32(pid), ExecMainPID: uint32(pid), ControlGroup: cg}
	dg := Diagnose(ctx, Input{Spec: spec, Result: res, Unit: u})
	t.Logf("%s\n%s\n%v\n%v", dg.Primary.Summary, dg.Primary.Hint, dg.Primary.Evidence, dg.Unavailable)
	if dg.Primary.Cause != NotResponding {
		t.Fatalf("primary %q (%s); want %q", dg.Primary.Cause, dg.Primary.Summary, NotResponding)
	}
	want := fmt.Sprintf("main process %d (diagnose.test) is stopped (SIGSTOP)", pid)
	if !strings.Contains(dg.Primary.Summary, want) || !strings.Contains(dg.Primary.Summary, "backend.service is active and listening on 127.0.0.1:"+port) {
		t.Errorf("summary %q; want it to contain %q", dg.Primary.Summary, want)
	}
	if !strings.Contains(dg.Primary.Hint, "SIGCONT") {
		t.Errorf("hint %q; want SIGCONT", dg.Primary.Hint)
	}
	for _, f := range append(dg.Secondary, dg.Primary) {
		if f.Cause == Firewall {
			t.Errorf("firewall finding for a stopped backend: %s", f.Summary)
		}
	}
}

// TestDiagnoseFullAcceptQueue fills the accept queue of a listener that
// never accepts (backlog 1): the probe times out in connect, yet the
// cause is "backend not responding" with the queue as evidence, not a
// firewall.
func TestDiagnoseFullAcceptQueue(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 16 {
		c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	q, err := ListenQueue(addr)
	if err != nil {
		t.Fatal(err)
	}
	if !q.Full() || q.Backlog != 1 {
		t.Fatalf("ListenQueue = %v after %d connections; want full with backlog 1", q, len(conns))
	}
	spec := probe.Spec{Type: "http", HTTP: probe.HTTPOptions{URL: "http://" + addr.String() + "/"}}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	res := p.Probe(context.Background(), 300*time.Millisecond)
	if res.OK || res.Class != probe.ClassTimeout {
		t.Fatalf("probe: %+v; want a timeout", res)
	}
	ForgetSocketSnapshot()
	dg := Diagnose(context.Background(), Input{Spec: spec, Result: res})
	t.Logf("%s\n%s\n%v\n%v", dg.Primary.Summary, dg.Primary.Hint, dg.Primary.Evidence, dg.Unavailable)
	if dg.Primary.Cause != NotResponding || !strings.Contains(dg.Primary.Summary, "accept queue is full") {
		t.Fatalf("primary %q: %s; want %q naming the full accept queue", dg.Primary.Cause, dg.Primary.Summary, NotResponding)
	}
	if ev, _ := dg.Primary.Evidence["accept_queue"].(string); !strings.HasSuffix(ev, "/1") {
		t.Errorf("accept_queue evidence %q; want N/1", ev)
	}
}

// TestDiagnoseUnixNotAccepting: a unix listener that never accepts, with a
// full queue, is "backend not responding" too.
func TestDiagnoseUnixNotAccepting(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range 8 {
		c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
		if err != nil {
			break
		}
		conns = append(conns, c)
	}
	q, err := UnixListenQueue(path)
	if err != nil || !q.Full() {
		t.Fatalf("UnixListenQueue = %v, %v; want full", q, err)
	}
	res := probe.Result{Class: probe.ClassTimeout, Duration: 300 * time.Millisecond, Target: "unix:" + path, Err: errors.New("dial unix: i/o timeout")}
	ForgetSocketSnapshot()
	dg := Diagnose(context.Background(), Input{Spec: probe.Spec{Type: "unix", Path: path}, Result: res, ClientUser: "root"})
	t.Logf("%s: %s\n%v", dg.Primary.Cause, dg.Primary.Summary, dg.Unavailable)
	if dg.Primary.Cause != NotResponding {
		t.Fatalf("primary %q: %s; want %q", dg.Primary.Cause, dg.Primary.Summary, NotResponding)
	}
}

// TestDiagnoseLocalTimeoutNoListener: a timeout on a local port where
// nothing listens and no rule matches is "nothing listens", not a firewall.
func TestDiagnoseLocalTimeoutNoListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	res := probe.Result{Class: probe.ClassTimeout, Duration: time.Second, Target: addr, Err: errors.New("dial tcp " + addr + ": i/o timeout")}
	ForgetSocketSnapshot()
	dg := Diagnose(context.Background(), Input{Spec: probe.Spec{Type: "tcp", Address: addr}, Result: res})
	t.Logf("%s: %s; unavailable %v", dg.Primary.Cause, dg.Primary.Summary, dg.Unavailable)
	if dg.Primary.Cause == Firewall {
		t.Fatalf("primary %q with no listener and no rule", Firewall)
	}
	fwKnown := true
	for _, u := range dg.Unavailable {
		fwKnown = fwKnown && !strings.HasPrefix(u, "firewall rules:")
	}
	if fwKnown && (dg.Primary.Cause != NotRunning || !strings.Contains(dg.Primary.Summary, "nothing listens on "+addr)) {
		t.Errorf("primary %q: %s; want %q, nothing listens", dg.Primary.Cause, dg.Primary.Summary, NotRunning)
	}
}
