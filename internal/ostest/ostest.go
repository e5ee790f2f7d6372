// Package ostest boots a whole Debian with systemd as PID 1 in a
// systemd-nspawn container, so that tests can install the real medic .deb
// and drive medic as the real medic.service: User=medic, the system bus,
// polkit, the unit's sandbox.
//
// The recipe is the one in DESIGN.md, "Testing the installed package under
// PID-1 systemd":
//
//  1. Rootfs builds the suite's root filesystem once with mmdebstrap and
//     caches it under CacheDir.
//  2. Boot makes a cgroup of its own, <own name=systemd cgroup>/
//     medic-ostest-<id>, under /sys/fs/cgroup/systemd and
//     /sys/fs/cgroup/unified, moves the shell that execs systemd-nspawn into
//     both, and boots the root filesystem with --volatile=overlay (the cache
//     is never written) and --private-network (loopback only). It waits for
//     `systemctl is-system-running` to say running or degraded.
//  3. Run, Sh and WriteFile work inside through `nsenter -t PID1 -a env -i
//     PATH=...`; files go in through nsenter's stdin, never through a bind
//     mount of a host directory.
//  4. Stop: `systemctl poweroff` inside, then SIGTERM and SIGKILL to the
//     systemd-nspawn process Boot started, then the cgroups are removed.
//
// systemd runs only as the container's PID 1, never as `systemd --system`
// on the host. Tests skip (see Unavailable) when the machine cannot do this
// (not root, no mmdebstrap or systemd-nspawn, no hybrid cgroup hierarchy),
// and fail instead under MEDIC_REQUIRE_SYSTEMD=1.
package ostest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the variable that turns skips into failures when set to "1".
const RequireEnv = "MEDIC_REQUIRE_SYSTEMD"

// Suites are the Debian releases the OS tests run on: Debian 12 and 13.
var Suites = []string{"bookworm", "trixie"}

// Cgroup hierarchies of a hybrid host.
const (
	cgroupV1Root = "/sys/fs/cgroup/systemd"
	cgroupV2Root = "/sys/fs/cgroup/unified"
	namePrefix   = "medic-ostest-"
)

// path is PATH inside the machine.
const path = "PATH=/usr/sbin:/usr/bin:/sbin:/bin"

// Timeouts of Boot and Stop.
const (
	bootTimeout     = 60 * time.Second
	poweroffTimeout = 20 * time.Second
	// shTimeout bounds one Sh or WriteFile.
	shTimeout = 3 * time.Minute
)

// Available reports whether this machine can boot an OS test machine: nil,
// or an error that says what is missing.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (cgroups, systemd-nspawn, mmdebstrap --mode=root), running as uid %d", os.Geteuid())
	}
	for _, tool := range []string{"mmdebstrap", "systemd-nspawn", "nsenter", "sh"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w (apt-get install mmdebstrap systemd-container)", err)
		}
	}
	if _, err := ownCgroup(); err != nil {
		return err
	}
	for _, root := range []string{cgroupV1Root, cgroupV2Root} {
		if _, err := os.Stat(filepath.Join(root, "cgroup.procs")); err != nil {
			return fmt.Errorf("needs a hybrid cgroup host: %w", err)
		}
	}
	return nil
}

// Unavailable skips the test with reason, or fails it when
// MEDIC_REQUIRE_SYSTEMD=1.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but the OS test tier cannot run: %s", RequireEnv, reason)
		return
	}
	t.Skipf("skipping: the OS test tier cannot run: %s (set %s=1 to fail instead)", reason, RequireEnv)
}

// ownCgroup reads this process's cgroup in the name=systemd hierarchy.
func ownCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == "name=systemd" {
			return parts[2], nil
		}
	}
	return "", errors.New("needs a hybrid cgroup host: no name=systemd hierarchy in /proc/self/cgroup")
}

// Machine is a booted Debian container with systemd as PID 1.
type Machine struct {
	// Suite is the Debian release ("bookworm", "trixie").
	Suite string
	// Name is the machine's name (systemd-nspawn -M), unique on the host.
	Name string
	// Rootfs is the cached root filesystem it booted (read-only for it).
	Rootfs string
	// PID is the host PID of the container's PID 1 (systemd).
	PID int
	// NspawnPID is the host PID of the systemd-nspawn process Boot started.
	NspawnPID int
	// LogFile holds systemd-nspawn's output: the container's console.
	LogFile string
	// BootDuration is the time from starting systemd-nspawn until
	// `systemctl is-system-running` said running or degraded.
	BootDuration time.Duration

	cgDirs   []string      // this machine's cgroups, v1 first
	exited   chan struct{} // closed when systemd-nspawn exited
	stopOnce sync.Once
	stopErr  error
}

var seq atomic.Int64

// Boot boots the suite's root filesystem (building it first when it is not
// cached, see Rootfs) and returns once systemd inside says running or
// degraded. It registers a t.Cleanup that, when the test failed, logs the
// tail of the machine's journal and the systemd-nspawn log, and then stops
// the machine (see Stop). It skips the test when the host cannot do this
// (see Available, Unavailable) and fails it when the build or the boot
// fails.
func Boot(t testing.TB, suite string) *Machine {
	t.Helper()
	if err := Available(); err != nil {
		Unavailable(t, err.Error())
	}
	start := time.Now()
	rootfs, err := Rootfs(suite)
	if err != nil {
		t.Fatalf("root filesystem of %s: %v", suite, err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Logf("built the %s root filesystem %s in %s", suite, rootfs, d.Round(time.Second))
	}
	m, err := boot(suite, rootfs, t.TempDir())
	if m != nil {
		t.Cleanup(func() {
			if t.Failed() {
				m.dumpLogs(t)
			}
			if err := m.Stop(); err != nil {
				t.Errorf("stop machine %s: %v", m.Name, err)
			}
		})
	}
	if err != nil {
		t.Fatalf("boot %s: %v", suite, err)
	}
	t.Logf("booted %s as %s (pid 1 = host pid %d) in %s", suite, m.Name, m.PID, m.BootDuration.Round(time.Millisecond))
	return m
}

// boot starts systemd-nspawn on rootfs and waits for the system to run. It
// returns a non-nil Machine whenever something must be stopped, even with
// an error.
func boot(suite, rootfs, logDir string) (*Machine, error) {
	own, err := ownCgroup()
	if err != nil {
		return nil, err
	}
	sweepStale(own)
	id := fmt.Sprintf("%d-%d", os.Getpid(), seq.Add(1))
	m := &Machine{
		Suite:   suite,
		Name:    "medic-" + suite + "-" + id,
		Rootfs:  rootfs,
		LogFile: filepath.Join(logDir, "nspawn.log"),
		exited:  make(chan struct{}),
	}
	cg := filepath.Join(own, namePrefix+id)
	var enter []string
	for _, root := range []string{cgroupV1Root, cgroupV2Root} {
		dir := filepath.Join(root, cg)
		if err := os.Mkdir(dir, 0o755); err != nil {
			m.removeCgroups()
			return nil, fmt.Errorf("make cgroup: %w", err)
		}
		m.cgDirs = append(m.cgDirs, dir)
		enter = append(enter, "echo $$ > "+shellQuote(filepath.Join(dir, "cgroup.procs")))
	}
	logf, err := os.Create(m.LogFile)
	if err != nil {
		m.removeCgroups()
		return nil, fmt.Errorf("create nspawn log: %w", err)
	}
	defer logf.Close()
	script := strings.Join(enter, " && ") + " && exec env SYSTEMD_NSPAWN_UNIFIED_HIERARCHY=1 systemd-nspawn -q" +
		" -D " + shellQuote(rootfs) + " -M " + shellQuote(m.Name) +
		" -b --volatile=overlay --register=no --keep-unit --private-network --link-journal=no" +
		" --resolv-conf=off --timezone=off --console=pipe"
	cmd := exec.Command("sh", "-c", script)
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	// SIGTERM makes systemd-nspawn power the container off; it is sent when
	// the thread that started it exits, normally when this process dies.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Pdeathsig: syscall.SIGTERM}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		m.removeCgroups()
		return nil, fmt.Errorf("start systemd-nspawn: %w", err)
	}
	m.NspawnPID = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	if err := m.waitBooted(ctx); err != nil {
		return m, fmt.Errorf("%w\nsystemd-nspawn log (tail):\n%s", err, logTail(m.LogFile, 30))
	}
	m.BootDuration = time.Since(start)
	return m, nil
}

// waitBooted finds the container's PID 1 among systemd-nspawn's children
// and polls `systemctl is-system-running` until it says running or
// degraded.
func (m *Machine) waitBooted(ctx context.Context) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "systemd-nspawn has no child that is PID 1 of a namespace"
	for {
		select {
		case <-m.exited:
			return errors.New("systemd-nspawn exited during boot")
		case <-ctx.Done():
			return fmt.Errorf("boot did not finish within %s: %s", bootTimeout, last)
		case <-tick.C:
		}
		if m.PID == 0 {
			m.PID = containerInit(m.NspawnPID)
			if m.PID == 0 {
				continue
			}
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, _, _ := m.Run(cctx, "systemctl", "is-system-running")
		cancel()
		state := strings.TrimSpace(string(out))
		switch state {
		case "running", "degraded":
			return nil
		}
		last = fmt.Sprintf("systemctl is-system-running says %q", state)
	}
}

// containerInit returns the host PID of the child of systemd-nspawn that is
// PID 1 in its own PID namespace, or 0 while there is none.
func containerInit(nspawn int) int {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", nspawn))
	for _, f := range tasks {
		b, _ := os.ReadFile(f)
		for _, c := range strings.Fields(string(b)) {
			pid, err := strconv.Atoi(c)
			if err != nil {
				continue
			}
			status, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
			for line := range strings.SplitSeq(string(status), "\n") {
				// NSpid: <host pid> ... <pid in the innermost namespace>
				if f := strings.Fields(line); len(f) > 2 && f[0] == "NSpid:" && f[len(f)-1] == "1" {
					return pid
				}
			}
		}
	}
	return 0
}

// Run runs args inside the machine, as root, with only PATH in the
// environment, in all of PID 1's namespaces and its root directory, and
// returns what it wrote to stdout and stderr. err is nil when the command
// exited 0; an *exec.ExitError in its chain carries the exit status.
func (m *Machine) Run(ctx context.Context, args ...string) (stdout, stderr []byte, err error) {
	return m.run(ctx, nil, args...)
}

func (m *Machine) run(ctx context.Context, stdin io.Reader, args ...string) (stdout, stderr []byte, err error) {
	nsArgs := append([]string{"-t", strconv.Itoa(m.PID), "-a", "env", "-i", path}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", nsArgs...)
	var outb, errb bytes.Buffer
	cmd.Stdin = stdin
	cmd.Stdout = &outb
	cmd.Stderr = &errb
	// nsenter forks to enter the PID namespace; if it is killed, its child
	// may hold the pipes open until the machine stops.
	cmd.WaitDelay = 2 * time.Second
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s in %s: %w", strings.Join(args, " "), m.Name, err)
	}
	return outb.Bytes(), errb.Bytes(), err
}

// Sh runs script with sh -c inside the machine and returns its stdout
// without trailing newlines. It fails the test, showing the script, its
// stdout and stderr, when the script exits non-zero or runs longer than
// three minutes.
func (m *Machine) Sh(t testing.TB, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shTimeout)
	defer cancel()
	out, errOut, err := m.Run(ctx, "sh", "-c", script)
	if err != nil {
		t.Fatalf("in %s: sh -c %q: %v\nstdout:\n%s\nstderr:\n%s", m.Name, script, err, out, errOut)
	}
	return strings.TrimRight(string(out), "\n")
}

// WriteFile writes data to path inside the machine with mode (root owns the
// file; parent directories are created), through nsenter's stdin. It fails
// the test on error.
func (m *Machine) WriteFile(t testing.TB, path string, data []byte, mode os.FileMode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shTimeout)
	defer cancel()
	script := `mkdir -p "$(dirname "$1")" && cat > "$1.medic-ostest" && chmod "$2" "$1.medic-ostest" && mv -f "$1.medic-ostest" "$1"`
	out, errOut, err := m.run(ctx, bytes.NewReader(data), "sh", "-c", script, "sh", path, fmt.Sprintf("%o", mode.Perm()))
	if err != nil {
		t.Fatalf("write %s in %s: %v\n%s%s", path, m.Name, err, out, errOut)
	}
}

// Journal returns the output of `journalctl --no-pager args...` inside the
// machine, failing the test when journalctl fails.
func (m *Machine) Journal(t testing.TB, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), shTimeout)
	defer cancel()
	out, errOut, err := m.Run(ctx, append([]string{"journalctl", "--no-pager"}, args...)...)
	if err != nil {
		t.Fatalf("journalctl %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return string(out)
}

// Prop returns a unit's property as `systemctl show -p prop --value unit`
// prints it inside the machine, failing the test when systemctl fails.
func (m *Machine) Prop(t testing.TB, unit, prop string) string {
	t.Helper()
	return m.Sh(t, "systemctl show -p "+shellQuote(prop)+" --value "+shellQuote(unit))
}

// dumpLogs logs the tail of the machine's journal and of the nspawn log.
func (m *Machine) dumpLogs(t testing.TB) {
	t.Helper()
	select {
	case <-m.exited:
	default:
		if m.PID != 0 {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			out, errOut, err := m.Run(ctx, "sh", "-c", "journalctl -b --no-pager | tail -200")
			cancel()
			t.Logf("journal of %s (last 200 lines; err %v):\n%s%s", m.Name, err, out, errOut)
		}
	}
	t.Logf("systemd-nspawn log %s (tail):\n%s", m.LogFile, logTail(m.LogFile, 60))
}

// Stop powers the machine off (`systemctl poweroff` inside), then sends
// SIGTERM and at last SIGKILL to the systemd-nspawn process Boot started,
// each after a wait, and removes the machine's cgroups. It is safe to call
// more than once; Boot's cleanup calls it.
func (m *Machine) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.stop() })
	return m.stopErr
}

func (m *Machine) stop() error {
	if m.NspawnPID != 0 {
		steps := []struct {
			what string
			do   func()
			wait time.Duration
		}{
			{"systemctl poweroff", func() {
				if m.PID != 0 {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, _, _ = m.Run(ctx, "systemctl", "--no-block", "poweroff")
					cancel()
				}
			}, poweroffTimeout},
			{"SIGTERM", func() { _ = syscall.Kill(m.NspawnPID, syscall.SIGTERM) }, 10 * time.Second},
			{"SIGKILL", func() { _ = syscall.Kill(m.NspawnPID, syscall.SIGKILL) }, 10 * time.Second},
		}
		stopped := false
		for _, s := range steps {
			s.do()
			select {
			case <-m.exited:
				stopped = true
			case <-time.After(s.wait):
			}
			if stopped {
				break
			}
		}
		if !stopped {
			return fmt.Errorf("systemd-nspawn (pid %d) still runs after SIGKILL", m.NspawnPID)
		}
	}
	return m.removeCgroups()
}

// removeCgroups removes the machine's cgroups and what systemd-nspawn and
// the container made below them, deepest first.
func (m *Machine) removeCgroups() error {
	var errs []error
	for _, dir := range m.cgDirs {
		if err := removeCgroupTree(dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeCgroupTree rmdirs dir and every cgroup below it, deepest first.
// rmdir fails on a cgroup that still has processes, so nothing running is
// touched.
func removeCgroupTree(dir string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("remove cgroup: %w", err)
	}
	var errs []error
	for _, e := range entries {
		if e.IsDir() {
			if err := removeCgroupTree(filepath.Join(dir, e.Name())); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if err := syscall.Rmdir(dir); err != nil && !errors.Is(err, syscall.ENOENT) {
		errs = append(errs, fmt.Errorf("remove cgroup %s: %w", dir, err))
	}
	return errors.Join(errs...)
}

// sweepStale removes the empty cgroups of machines whose test process died
// without cleaning up (their systemd-nspawn, sent SIGTERM by Pdeathsig,
// has powered them off by now). Cgroups that still hold processes stay.
func sweepStale(own string) {
	for _, root := range []string{cgroupV1Root, cgroupV2Root} {
		dirs, _ := filepath.Glob(filepath.Join(root, own, namePrefix+"*"))
		for _, d := range dirs {
			pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), namePrefix), "-")
			if n, err := strconv.Atoi(pid); err == nil && n != os.Getpid() && syscall.Kill(n, 0) != nil {
				_ = removeCgroupTree(d)
			}
		}
	}
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
