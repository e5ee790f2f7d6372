package diagnose

import (
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

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

func TestOOMParseMemoryEvents(t *testing.T) {
	read := func(name string) string {
		b, err := os.ReadFile("testdata/oom/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	tests := []struct {
		name string
		text string
		want map[string]uint64
	}{
		// Captured on this project's build machine (Linux 6.18, hybrid
		// hierarchy): cat /sys/fs/cgroup/memory/<cgroup>/memory.oom_control.
		{"v1 memory.oom_control", read("memory.oom_control"), map[string]uint64{"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 0}},
		// cgroup v2 memory.events in the kernel's format (Linux 5.17+
		// adds oom_group_kill). The build machine's v2 hierarchy has no
		// memory controller, so this one is not a capture.
		{"v2 memory.events", read("memory.events"), map[string]uint64{"low": 0, "high": 0, "max": 1284, "oom": 3, "oom_kill": 3, "oom_group_kill": 0}},
		{"junk skipped", "oom_kill x\nthree fields here\n\noom 18446744073709551615\n", map[string]uint64{"oom": 18446744073709551615}},
		{"empty", "", map[string]uint64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseMemoryEvents(tt.text)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("parseMemoryEvents = %v; want %v", got, tt.want)
			}
		})
	}
}

// TestOOMKillsFiles runs oomKills against fake cgroup trees.
func TestOOMKillsFiles(t *testing.T) {
	root := t.TempDir()
	put := func(rel, text string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	put("unified/system.slice/hybrid.service/memory.events", "low 0\nhigh 0\nmax 0\noom 1\noom_kill 1\n")
	put("system.slice/v2.service/memory.events", "low 0\nhigh 0\nmax 0\noom 2\noom_kill 2\n")
	put("memory/system.slice/v1.service/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
	put("memory/system.slice/old.service/memory.oom_control", "oom_kill_disable 0\nunder_oom 0\n")
	// A hybrid machine's unified cgroup without a memory controller.
	put("unified/system.slice/v1.service/cgroup.procs", "")

	tests := []struct {
		cgroup     string
		wantCount  uint64
		wantSource string
		wantErr    string
		notExist   bool
	}{
		{cgroup: "/system.slice/hybrid.service", wantCount: 1, wantSource: "unified/system.slice/hybrid.service/memory.events"},
		{cgroup: "/system.slice/v2.service", wantCount: 2, wantSource: "system.slice/v2.service/memory.events"},
		{cgroup: "/system.slice/v1.service", wantCount: 5, wantSource: "memory/system.slice/v1.service/memory.oom_control"},
		{cgroup: "/system.slice/old.service", wantErr: "no oom_kill in"},
		{cgroup: "/system.slice/gone.service", wantErr: "cgroup gone", notExist: true},
		{cgroup: "/system.slice/../../etc", wantErr: "invalid cgroup path"},
		{cgroup: "system.slice/x.service", wantErr: "invalid cgroup path"},
	}
	for _, tt := range tests {
		t.Run(tt.cgroup, func(t *testing.T) {
			n, src, err := oomKills(root, tt.cgroup)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v; want one containing %q", err, tt.wantErr)
				}
				if errors.Is(err, fs.ErrNotExist) != tt.notExist {
					t.Errorf("errors.Is(err, fs.ErrNotExist) = %v; want %v", !tt.notExist, tt.notExist)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if n != tt.wantCount || src != filepath.Join(root, tt.wantSource) {
				t.Errorf("got %d from %s; want %d from %s", n, src, tt.wantCount, tt.wantSource)
			}
		})
	}
}

func TestOOMKillsThisProcess(t *testing.T) {
	cg := ownCgroup(t, "memory")
	if cg == "" {
		systemdtest.Missing(t, "no memory cgroup in /proc/self/cgroup")
	}
	n, src, err := OOMKills(cg)
	if err != nil {
		t.Fatalf("OOMKills(%s): %v", cg, err)
	}
	t.Logf("OOMKills(%s) = %d from %s", cg, n, src)
	if _, _, err := OOMKills("/medic-no-such-cgroup"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("OOMKills of a missing cgroup: %v; want fs.ErrNotExist", err)
	}
}

// ownCgroup returns this process's cgroup for a v1 controller, or the
// v2 one ("0::") when controller is "".
func ownCgroup(t *testing.T, controller string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Skipf("read /proc/self/cgroup: %v", err)
	}
	for line := range strings.Lines(string(b)) {
		f := strings.SplitN(strings.TrimSpace(line), ":", 3)
		if len(f) != 3 {
			continue
		}
		for _, c := range strings.Split(f[1], ",") {
			if c == controller {
				return f[2]
			}
		}
	}
	return ""
}

// TestOOMKillsReal makes the kernel's OOM killer kill a child process in
// a cgroup v1 memory cgroup limited to 32 MiB, and reads the kill back.
//
// It needs root and a cgroup v1 memory hierarchy at
// /sys/fs/cgroup/memory (this project's build machines have one; on a
// pure cgroup v2 host the test is skipped: there the child would need
// CLONE_INTO_CGROUP or a delegated subtree, which is not done here).
func TestOOMKillsReal(t *testing.T) {
	requireRootForTest(t, "creating a memory cgroup")
	base := "/sys/fs/cgroup/memory"
	if _, err := os.Stat(filepath.Join(base, "memory.oom_control")); err != nil {
		msg := "no cgroup v1 memory hierarchy at " + base
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatal(msg + " and MEDIC_REQUIRE_SYSTEMD=1")
		}
		t.Skip(msg)
	}
	name := fmt.Sprintf("/medic-oom-test-%d", os.Getpid())
	dir := base + name
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// The cgroup is empty once the child is reaped; give the kernel a
		// moment to finish tearing the task down.
		var err error
		for range 50 {
			if err = os.Remove(dir); err == nil || errors.Is(err, fs.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("remove %s: %v", dir, err)
	})
	write := func(file, value string) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
			t.Fatalf("write %s %s: %v", file, value, err)
		}
	}
	write("memory.limit_in_bytes", "32M")
	if _, err := os.Stat(filepath.Join(dir, "memory.memsw.limit_in_bytes")); err == nil {
		write("memory.memsw.limit_in_bytes", "32M") // no swapping out of the limit
	}
	before, src, err := OOMKills(name)
	if err != nil {
		t.Fatal(err)
	}
	if before != 0 || src != dir+"/memory.oom_control" {
		t.Fatalf("OOMKills(%s) before = %d from %s; want 0 from memory.oom_control", name, before, src)
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
	// Move the child into the cgroup, then let it allocate.
	write("cgroup.procs", strconv.Itoa(child.Process.Pid))
	io.WriteString(stdin, "go\n")
	stdin.Close()
	done := make(chan error, 1)
	go func() { done <- child.Wait() }()
	var werr error
	select {
	case werr = <-done:
	case <-time.After(60 * time.Second):
		child.Process.Kill()
		<-done
		t.Fatalf("child not killed within 60s\n%s", out.String())
	}
	var exit *exec.ExitError
	if !errors.As(werr, &exit) {
		t.Fatalf("child: %v; want killed by SIGKILL\n%s", werr, out.String())
	}
	ws := exit.Sys().(syscall.WaitStatus)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v; want killed by SIGKILL\n%s", werr, out.String())
	}
	after, src, err := OOMKills(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("child %v; OOMKills(%s) = %d from %s", werr, name, after, src)
	if after < 1 {
		t.Errorf("oom_kill after = %d; want >= 1", after)
	}
}

// TestOOMHelperProcess allocates 256 MiB once told to on stdin; it does
// nothing in a normal test run.
func TestOOMHelperProcess(t *testing.T) {
	if os.Getenv("MEDIC_OOM_HELPER") != "1" {
		return
	}
	if _, err := io.ReadAll(os.Stdin); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 256<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1 // touch every page so it is charged
	}
	fmt.Println("allocated 256 MiB without being killed")
	os.Exit(3)
}
