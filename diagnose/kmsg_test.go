package diagnose

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
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
)

// Kernel lines as Linux 6.18 logs them for a kill in a v1 memory cgroup,
// captured with dmesg on this project's build machine.
const (
	capturedOOMKill = "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/medic-oom-test-5676,task_memcg=/medic-oom-test-5676,task=diagnose.test,pid=5797,uid=0"
	capturedKilled  = "Memory cgroup out of memory: Killed process 5797 (diagnose.test) total-vm:2804320kB, anon-rss:32256kB, file-rss:9680kB, shmem-rss:0kB, UID:0 pgtables:308kB oom_score_adj:0"
	// A global OOM in the format of Linux 5.x (mm/oom_kill.c).
	globalOOMKill = "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/app.service,task=my app (x),pid=812,uid=33"
	globalKilled  = "Out of memory: Killed process 812 (my app (x)) total-vm:9000kB, anon-rss:8000kB, file-rss:0kB, shmem-rss:0kB, UID:33 pgtables:60kB oom_score_adj:0"
)

func TestParseOOMLine(t *testing.T) {
	tests := []struct {
		name     string
		line     string
		wantOK   bool
		wantKill bool
		want     OOMReport
	}{
		{"captured oom-kill", capturedOOMKill, true, false, OOMReport{PID: 5797, Comm: "diagnose.test", Constraint: "CONSTRAINT_MEMCG", TaskMemcg: "/medic-oom-test-5676", OOMMemcg: "/medic-oom-test-5676"}},
		{"captured kill", capturedKilled, true, true, OOMReport{PID: 5797, Comm: "diagnose.test", Memcg: true, Line: capturedKilled}},
		{"global kill, comm with parentheses", globalKilled, true, true, OOMReport{PID: 812, Comm: "my app (x)", Line: globalKilled}},
		{"old kernel kill", "Killed process 77 (java) total-vm:100kB", false, false, OOMReport{}},
		{"old kernel out of memory", "Out of memory: Killed process 77 (java)", true, true, OOMReport{PID: 77, Comm: "java", Line: "Out of memory: Killed process 77 (java)"}},
		{"unrelated", "usb 1-1: new high-speed USB device", false, false, OOMReport{}},
		{"bad pid", "oom-kill:constraint=CONSTRAINT_NONE,pid=x", false, false, OOMReport{}},
		{"no pid", "oom-kill:constraint=CONSTRAINT_NONE,task=a", false, false, OOMReport{}},
		{"negative pid", "Out of memory: Killed process -3 (a)", false, false, OOMReport{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := parseOOMLine(tt.line)
			if ok != tt.wantOK || l.kill != tt.wantKill || l.r != tt.want {
				t.Errorf("parseOOMLine = %+v, %v; want kill %v %+v, %v", l, ok, tt.wantKill, tt.want, tt.wantOK)
			}
		})
	}
}

func TestMatchOOM(t *testing.T) {
	at := time.Unix(1700000000, 0)
	lines := []kernelLine{
		{at, "oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a/b,task=old,pid=5797,uid=0"},
		{at, "Memory cgroup out of memory: Killed process 5797 (old) total-vm:1kB"},
		{at.Add(time.Second), "eth0: link up"},
		{at.Add(2 * time.Second), globalOOMKill},
		{at.Add(2 * time.Second), globalKilled},
	}
	tests := []struct {
		name      string
		pid       int
		cgroup    string
		wantPID   int
		wantGlob  bool
		wantMemcg string
	}{
		{"by pid", 5797, "", 5797, false, "/a/b"},
		{"by cgroup", 0, "/system.slice/app.service", 812, true, "/system.slice/app.service"},
		{"by parent cgroup", 0, "/a", 5797, false, "/a/b"},
		{"prefix is not a parent", 0, "/system.slice/app", 0, false, ""},
		{"nothing", 1, "/x", 0, false, ""},
		{"zero matches nothing", 0, "", 0, false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := matchOOM(lines, tt.pid, tt.cgroup)
			if tt.wantPID == 0 {
				if r != nil {
					t.Fatalf("matchOOM = %+v; want nil", r)
				}
				return
			}
			if r == nil || r.PID != tt.wantPID || r.Global() != tt.wantGlob || r.TaskMemcg != tt.wantMemcg || r.At.IsZero() {
				t.Fatalf("matchOOM = %+v; want pid %d global %v memcg %s", r, tt.wantPID, tt.wantGlob, tt.wantMemcg)
			}
		})
	}
}

func TestParseKmsgRecord(t *testing.T) {
	tests := []struct {
		rec      string
		wantUsec uint64
		wantMsg  string
		wantOK   bool
	}{
		{"6,1234,5240051416,-;" + capturedKilled + "\n", 5240051416, capturedKilled, true},
		{"3,9,10,c;first\n SUBSYSTEM=x\n DEVICE=y\n", 10, "first", true},
		{"6,1,x,-;msg\n", 0, "", false},
		{"no header", 0, "", false},
		{"6,1;short", 0, "", false},
	}
	for _, tt := range tests {
		u, m, ok := parseKmsgRecord(tt.rec)
		if u != tt.wantUsec || m != tt.wantMsg || ok != tt.wantOK {
			t.Errorf("parseKmsgRecord(%q) = %d, %q, %v; want %d, %q, %v", tt.rec, u, m, ok, tt.wantUsec, tt.wantMsg, tt.wantOK)
		}
	}
}

func TestParseJournalShortUnix(t *testing.T) {
	out := "1732934652.123456 host kernel: " + capturedOOMKill + "\n1732934652.123460 host kernel: " + capturedKilled + "\nnot a line\n"
	lines := parseJournalShortUnix([]byte(out))
	if len(lines) != 2 || lines[1].msg != capturedKilled || lines[0].at.Unix() != 1732934652 {
		t.Fatalf("parseJournalShortUnix = %+v", lines)
	}
	if r := matchOOM(lines, 5797, ""); r == nil || r.OOMMemcg != "/medic-oom-test-5676" {
		t.Fatalf("matchOOM = %+v", r)
	}
}

// FuzzParseKernelOOM feeds arbitrary /dev/kmsg records through the record
// parser, the OOM line parser and the merge: none may panic, and a parsed
// report always names a positive PID.
func FuzzParseKernelOOM(f *testing.F) {
	for _, s := range []string{
		"6,1234,5240051416,-;" + capturedOOMKill,
		"6,1235,5240051417,-;" + capturedKilled,
		"6,1,1,-;" + globalKilled + "\n SUBSYSTEM=x",
		"oom-kill:pid=1,task_memcg=/",
		"Out of memory: Killed process 1 (",
		"Out of memory: Killed process 1 ()) total-vm:",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, rec string) {
		_, msg, ok := parseKmsgRecord(rec)
		if !ok {
			msg = rec
		}
		if l, ok := parseOOMLine(msg); ok && l.r.PID <= 0 {
			t.Fatalf("parseOOMLine(%q) gave pid %d", msg, l.r.PID)
		}
		lines := []kernelLine{{msg: msg}, {msg: rec}}
		if r := matchOOM(lines, 1, "/"); r != nil && r.PID <= 0 {
			t.Fatalf("matchOOM gave pid %d", r.PID)
		}
	})
}

// TestKernelOOMReportReal makes the kernel's OOM killer kill a child in a
// cgroup v1 memory cgroup limited to 32 MiB, then reads the kernel's report
// for the child's PID and diagnoses a unit whose state says only
// Result=signal (SIGKILL), as systemd reports on cgroup v1 and hybrid
// hosts: the cause must be "killed for memory".
func TestKernelOOMReportReal(t *testing.T) {
	requireRootForTest(t, "creating a memory cgroup")
	base := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(base, "memory.oom_control")); err != nil {
		msg := "no cgroup v1 memory hierarchy at " + base
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatal(msg + " and MEDIC_REQUIRE_SYSTEMD=1")
		}
		t.Skip(msg)
	}
	name := fmt.Sprintf("/medic-kmsg-test-%d", os.Getpid())
	dir := base + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 50 {
			if err := os.Remove(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", dir)
	})
	write := func(file, value string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
			t.Fatalf("write %s %s: %v", file, value, err)
		}
	}
	write("memory.limit_in_bytes", "32M")
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
		write("memory.memsw.limit_in_bytes", "32M")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(exe, "-test.run=^TestOOMHelperProcess$")
	child.Env = append(os.Environ(), "MEDIC_OOM_HELPER=1")
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	child.Stdout, child.Stderr = &out, &out
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	write("cgroup.procs", strconv.Itoa(pid))
	_, _ = io.WriteString(stdin, "go\n")
	_ = stdin.Close()
	werr := child.Wait()
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || !exit.Sys().(syscall.WaitStatus).Signaled() || exit.Sys().(syscall.WaitStatus).Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v; want killed by SIGKILL\n%s", werr, out.String())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var r *OOMReport
	var src string
	for range 20 { // the report may reach the journal a moment after the kill
		if r, src, err = KernelOOMReport(ctx, pid, ""); err != nil || r != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("KernelOOMReport: %v", err)
	}
	if r == nil {
		t.Fatalf("no OOM report for pid %d in %s", pid, src)
	}
	t.Logf("from %s: %+v", src, *r)
	if r.PID != pid || r.Global() || (r.TaskMemcg != "" && r.TaskMemcg != name) {
		t.Errorf("report %+v; want pid %d, memcg %s, not global", *r, pid, name)
	}
	if r2, _, err := KernelOOMReport(ctx, 0, name); err != nil || r2 == nil || r2.PID != pid {
		t.Errorf("KernelOOMReport by cgroup %s = %+v, %v; want pid %d", name, r2, err, pid)
	}

	// ControlGroup is left empty so that only the kernel's report can tell.
	u := &unit.State{Name: "oom.service", LoadState: "loaded", ActiveState: "failed", SubState: "failed", Result: "signal",
		ExecMainCode: 2, ExecMainStatus: 9, ExecMainPID: uint32(pid)}
	dg := Diagnose(ctx, Input{Spec: probe.Spec{Type: "tcp", Address: "127.0.0.1:1"}, Unit: u,
		Result: probe.Result{Class: probe.ClassRefused, Target: "127.0.0.1:1", Err: errors.New("connection refused")}})
	if dg.Primary.Cause != OOMKilled || !strings.Contains(dg.Primary.Summary, "the kernel killed process "+strconv.Itoa(pid)) {
		t.Errorf("primary %+v; want %q naming pid %d", dg.Primary, OOMKilled, pid)
	}
	if dg.Primary.Evidence["oom_pid"] != pid {
		t.Errorf("evidence %v; want oom_pid %d", dg.Primary.Evidence, pid)
	}
}

func TestOOMOfThisRun(t *testing.T) {
	start := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	died := start.Add(time.Hour)
	run := &unit.State{ActiveEnterTimestamp: start, InactiveEnterTimestamp: died, StateChangeTimestamp: died}
	for _, tc := range []struct {
		name string
		at   time.Time
		u    *unit.State
		want bool
	}{
		{"during the run", died.Add(-time.Second), run, true},
		{"at the death, kernel clock a little late", died.Add(time.Second), run, true},
		{"before the unit started: an older kill of the same cgroup", start.Add(-10 * time.Minute), run, false},
		{"long after the death", died.Add(time.Minute), run, false},
		{"no time in the report", time.Time{}, run, true},
		{"no timestamps known", start, &unit.State{}, true},
		{"inactive timestamp from an earlier stop", died.Add(-time.Second), &unit.State{ActiveEnterTimestamp: start, InactiveEnterTimestamp: start.Add(-time.Hour), StateChangeTimestamp: died}, true},
	} {
		if got := oomOfThisRun(tc.at, tc.u); got != tc.want {
			t.Errorf("%s: oomOfThisRun = %v, want %v", tc.name, got, tc.want)
		}
	}
}
