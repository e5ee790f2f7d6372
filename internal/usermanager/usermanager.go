// Package usermanager boots and tears down a private systemd user manager
// (systemd --user) with its own D-Bus session bus, for tests and for the
// CLI's demo command. It does not depend on package testing; the testing
// wrapper is internal/systemdtest.
//
// The recipe is the one in DESIGN.md, "Testing on real parts":
//
//  1. A fresh run directory holds XDG_RUNTIME_DIR (mode 0700) and
//     XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_STATE_HOME and XDG_CACHE_HOME, so
//     that nothing is written under $HOME.
//  2. The manager gets a cgroup of its own before it starts:
//     <own name=systemd cgroup>/medic-test-<id> under /sys/fs/cgroup/systemd
//     and /sys/fs/cgroup/unified, into which the shell that execs systemd
//     writes its own PID. Without this a manager takes the whole machine's
//     processes as its init.scope, and two managers share app.slice.
//  3. setsid unshare --mount --propagation private sh -c '<step 2> &&
//     mount -t tmpfs none /run/systemd && mkdir -p /run/systemd/system &&
//     exec /lib/systemd/systemd --user', stdin from /dev/null, output to a
//     log file in the run directory.
//  4. Boot waits for $XDG_RUNTIME_DIR/systemd/private, for
//     `systemctl --user show -p Version`, and for org.freedesktop.systemd1
//     to own its name on the socket-activated bus at $XDG_RUNTIME_DIR/bus.
//  5. Stop: `systemctl --user exit`, SIGKILL to the manager if it lingers,
//     SIGKILL to every PID still in the sub-cgroups, rmdir the sub-cgroups,
//     remove the run directory.
//
// It NEVER boots `systemd --system`: that one's boot-time tmpfiles cleanup
// empties the host's /tmp.
package usermanager

import (
	"bufio"
	"bytes"
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
	"sync"
	"syscall"
	"time"

	sddbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/godbus/dbus/v5"
)

// Default paths of the parts the recipe uses.
const (
	// DefaultSystemd is the systemd binary that Boot execs with --user.
	DefaultSystemd = "/lib/systemd/systemd"
	// CgroupV1Root is where the name=systemd (v1) hierarchy is mounted.
	CgroupV1Root = "/sys/fs/cgroup/systemd"
	// CgroupV2Root is where the unified (v2) hierarchy of a hybrid setup is
	// mounted.
	CgroupV2Root = "/sys/fs/cgroup/unified"
	// DefaultStartupTimeout bounds Boot when Options.StartupTimeout is zero.
	DefaultStartupTimeout = 20 * time.Second
	// NamePrefix starts the run directory's and the cgroups' names.
	NamePrefix = "medic-test-"
)

// maxSocketPath is the longest path a unix socket address may hold
// (sizeof(sun_path) - 1 on Linux).
const maxSocketPath = 107

// ErrUnavailable is wrapped by the errors of Available and Boot when this
// machine cannot boot a private user manager at all (not root, no systemd
// binary, no name=systemd cgroup hierarchy); callers that test may skip.
var ErrUnavailable = errors.New("private systemd user manager unavailable")

// Options configures Boot. The zero value is usable.
type Options struct {
	// BaseDir is the parent of the run directory; empty means os.TempDir().
	// Keep it short: $XDG_RUNTIME_DIR/systemd/private must fit in a unix
	// socket address (107 bytes).
	BaseDir string
	// LogFile receives the manager's stdout and stderr, and through
	// DefaultStandardOutput=inherit the output of its units; empty means
	// <RunDir>/manager.log (removed by Stop).
	LogFile string
	// Log, if not nil, receives one line per harness step (boot, teardown,
	// processes killed) and, when Boot fails, the tail of the manager log.
	Log io.Writer
	// StartupTimeout bounds the wait for the manager to answer; zero means
	// DefaultStartupTimeout.
	StartupTimeout time.Duration
	// Systemd is the systemd binary; empty means DefaultSystemd.
	Systemd string
}

// Manager is a running systemd user manager: one that Boot started
// (Reused == false) or one that Detect found (Reused == true).
type Manager struct {
	// RunDir holds everything Boot created: the XDG directories, unit files
	// written by LinkUnit, and the default log file. For a reused manager it
	// holds only the unit files.
	RunDir string
	// RuntimeDir is $XDG_RUNTIME_DIR of the manager (mode 0700).
	RuntimeDir string
	// ConfigHome, DataHome, StateHome and CacheHome are the XDG base
	// directories inside RunDir (empty for a reused manager).
	ConfigHome, DataHome, StateHome, CacheHome string
	// UnitDir is where LinkUnit writes unit files.
	UnitDir string
	// LogFile is the manager's log (empty for a reused manager).
	LogFile string
	// PID is the manager's process id (0 for a reused manager).
	PID int
	// Cgroup is the manager's cgroup, relative to the hierarchy roots, e.g.
	// "/medic-test-1234"; its units run below it ("/medic-test-1234/
	// app.slice/x.service"). Empty for a reused manager.
	Cgroup string
	// Reused tells that Detect found this manager already running; Stop then
	// removes only what this package added (linked units, RunDir).
	Reused bool
	// BootDuration is how long Boot took until the manager answered on its
	// bus.
	BootDuration time.Duration

	env     []string
	busAddr string
	log     io.Writer
	cgDirs  []string // absolute sub-cgroup directories, v1 first
	cmd     *exec.Cmd
	exited  chan struct{} // closed when cmd.Wait returned

	mu     sync.Mutex
	linked []string // unit names linked by LinkUnit

	stopOnce sync.Once
	stopErr  error
}

// Available reports whether this machine can boot a private user manager:
// nil, or an error wrapping ErrUnavailable that says what is missing.
func Available() error {
	return available(DefaultSystemd)
}

func available(systemd string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("%w: needs root (to create cgroups and a mount namespace), running as uid %d", ErrUnavailable, os.Geteuid())
	}
	if _, err := os.Stat(systemd); err != nil {
		return fmt.Errorf("%w: no systemd binary: %w", ErrUnavailable, err)
	}
	for _, tool := range []string{"setsid", "unshare", "systemctl", "sh", "mount"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%w: %w", ErrUnavailable, err)
		}
	}
	if _, err := ownSystemdCgroup(); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if _, err := os.Stat(filepath.Join(CgroupV1Root, "cgroup.procs")); err != nil {
		return fmt.Errorf("%w: no cgroup v1 name=systemd hierarchy at %s: %w", ErrUnavailable, CgroupV1Root, err)
	}
	return nil
}

// ownSystemdCgroup reads this process's cgroup in the name=systemd
// hierarchy from /proc/self/cgroup ("/" on the build machines).
func ownSystemdCgroup() (string, error) {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return "", fmt.Errorf("read own cgroup: %w", err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		// hierarchy-ID:controller-list:cgroup-path
		parts := strings.SplitN(line, ":", 3)
		if len(parts) == 3 && parts[1] == "name=systemd" {
			return parts[2], nil
		}
	}
	return "", errors.New("no cgroup v1 name=systemd hierarchy in /proc/self/cgroup")
}

// Detect reports a user manager that is already running for this user:
// XDG_RUNTIME_DIR and DBUS_SESSION_BUS_ADDRESS are set and
// `systemctl --user show -p Version` answers within 5 seconds. It returns
// (nil, nil) when there is none. The returned Manager has Reused set and a
// fresh RunDir for unit files; its Stop removes what LinkUnit added and
// leaves the manager running.
func Detect(ctx context.Context) (*Manager, error) {
	rt := os.Getenv("XDG_RUNTIME_DIR")
	bus := os.Getenv("DBUS_SESSION_BUS_ADDRESS")
	if rt == "" || bus == "" {
		return nil, nil
	}
	var env []string
	for _, k := range []string{"XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME", "DBUS_SESSION_BUS_ADDRESS"} {
		if v := os.Getenv(k); v != "" {
			env = append(env, k+"="+v)
		}
	}
	probe := &Manager{env: env}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := probe.Systemctl(pctx, "show", "-p", "Version", "--value"); err != nil {
		return nil, nil
	}
	runDir, err := os.MkdirTemp("", NamePrefix+"reuse-")
	if err != nil {
		return nil, fmt.Errorf("make run directory: %w", err)
	}
	return &Manager{
		RunDir:     runDir,
		RuntimeDir: rt,
		UnitDir:    runDir,
		Reused:     true,
		env:        env,
		busAddr:    bus,
		log:        io.Discard,
	}, nil
}

// Boot starts a private systemd user manager following the recipe in the
// package comment and returns once it answers on its private socket and on
// its D-Bus. On failure everything it created is torn down again and the
// error carries the tail of the manager log. Errors wrap ErrUnavailable when
// the machine cannot do this at all.
//
// The manager is sent SIGTERM (which makes a user manager stop its units and
// exit) when the thread that started it exits, i.e. normally when this
// process dies; a caller must still call Stop.
func Boot(ctx context.Context, opts Options) (m *Manager, err error) {
	start := time.Now()
	if opts.Systemd == "" {
		opts.Systemd = DefaultSystemd
	}
	if opts.StartupTimeout <= 0 {
		opts.StartupTimeout = DefaultStartupTimeout
	}
	if opts.BaseDir == "" {
		opts.BaseDir = os.TempDir()
	}
	if opts.Log == nil {
		opts.Log = io.Discard
	}
	if err := available(opts.Systemd); err != nil {
		return nil, err
	}
	ownCg, err := ownSystemdCgroup()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	sweepStale(ownCg, opts.BaseDir, opts.Log)

	// Step 1: run directory.
	runDir, err := os.MkdirTemp(opts.BaseDir, NamePrefix)
	if err != nil {
		return nil, fmt.Errorf("make run directory: %w", err)
	}
	id := strings.TrimPrefix(filepath.Base(runDir), NamePrefix)
	m = &Manager{
		RunDir:     runDir,
		RuntimeDir: filepath.Join(runDir, "runtime"),
		ConfigHome: filepath.Join(runDir, "config"),
		DataHome:   filepath.Join(runDir, "data"),
		StateHome:  filepath.Join(runDir, "state"),
		CacheHome:  filepath.Join(runDir, "cache"),
		UnitDir:    filepath.Join(runDir, "units"),
		LogFile:    opts.LogFile,
		log:        opts.Log,
		exited:     make(chan struct{}),
	}
	if m.LogFile == "" {
		m.LogFile = filepath.Join(runDir, "manager.log")
	}
	m.busAddr = "unix:path=" + filepath.Join(m.RuntimeDir, "bus")
	m.env = []string{
		"XDG_RUNTIME_DIR=" + m.RuntimeDir,
		"XDG_CONFIG_HOME=" + m.ConfigHome,
		"XDG_DATA_HOME=" + m.DataHome,
		"XDG_STATE_HOME=" + m.StateHome,
		"XDG_CACHE_HOME=" + m.CacheHome,
		"DBUS_SESSION_BUS_ADDRESS=" + m.busAddr,
	}
	defer func() {
		if err != nil {
			if tail := logTail(m.LogFile, 30); tail != "" {
				err = fmt.Errorf("%w\nmanager log %s (tail):\n%s", err, m.LogFile, tail)
			}
			if serr := m.Stop(); serr != nil {
				err = errors.Join(err, fmt.Errorf("tear down after failed boot: %w", serr))
			}
		}
	}()
	if p := filepath.Join(m.RuntimeDir, "systemd", "private"); len(p) > maxSocketPath {
		return m, fmt.Errorf("run directory %s too long: socket path %s exceeds %d bytes", runDir, p, maxSocketPath)
	}
	if err := os.Mkdir(m.RuntimeDir, 0o700); err != nil {
		return m, fmt.Errorf("make runtime directory: %w", err)
	}
	for _, d := range []string{m.ConfigHome, m.DataHome, m.StateHome, m.CacheHome, m.UnitDir} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return m, fmt.Errorf("make run directory: %w", err)
		}
	}
	// The manager reads $XDG_CONFIG_HOME/systemd/user.conf: log to the
	// console (our log file) rather than a journal that is not there, and
	// let units inherit that output so their lines land in the log too.
	if err := os.MkdirAll(filepath.Join(m.ConfigHome, "systemd"), 0o755); err != nil {
		return m, fmt.Errorf("make config directory: %w", err)
	}
	userConf := "[Manager]\nLogTarget=console\nLogColor=no\nDefaultStandardOutput=inherit\nDefaultStandardError=inherit\n"
	if err := os.WriteFile(filepath.Join(m.ConfigHome, "systemd", "user.conf"), []byte(userConf), 0o644); err != nil {
		return m, fmt.Errorf("write user.conf: %w", err)
	}

	// Step 2: cgroups of its own, before it starts.
	m.Cgroup = filepath.Join(ownCg, NamePrefix+id)
	roots := []string{CgroupV1Root}
	if _, err := os.Stat(filepath.Join(CgroupV2Root, "cgroup.procs")); err == nil {
		roots = append(roots, CgroupV2Root)
	}
	var enter []string
	for _, root := range roots {
		dir := filepath.Join(root, m.Cgroup)
		if err := os.Mkdir(dir, 0o755); err != nil {
			return m, fmt.Errorf("make cgroup: %w", err)
		}
		m.cgDirs = append(m.cgDirs, dir)
		enter = append(enter, "echo $$ > "+shellQuote(filepath.Join(dir, "cgroup.procs")))
	}

	// Step 3: the manager in a private mount namespace, in its own session.
	logf, err := os.OpenFile(m.LogFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return m, fmt.Errorf("open manager log: %w", err)
	}
	defer logf.Close()
	script := strings.Join(enter, " && ") +
		" && mount -t tmpfs none /run/systemd && mkdir -p /run/systemd/system && exec " +
		shellQuote(opts.Systemd) + " --user"
	cmd := exec.Command("setsid", "unshare", "--mount", "--propagation", "private", "sh", "-c", script)
	cmd.Env = append(baseEnv(), m.env...)
	cmd.Dir = runDir
	cmd.Stdin = nil // /dev/null
	cmd.Stdout = logf
	cmd.Stderr = logf
	// setsid(1) does not fork here (a child of ours is no process group
	// leader), so the PID we get is the one that execs systemd.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return m, fmt.Errorf("start systemd --user: %w", err)
	}
	m.cmd = cmd
	m.PID = cmd.Process.Pid
	go func() {
		_ = cmd.Wait()
		close(m.exited)
	}()

	// Step 4: wait until it answers.
	wctx, cancel := context.WithTimeout(ctx, opts.StartupTimeout)
	defer cancel()
	if err := m.waitReady(wctx); err != nil {
		return m, fmt.Errorf("wait for systemd --user (pid %d): %w", m.PID, err)
	}
	if comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", m.PID)); strings.TrimSpace(string(comm)) != "systemd" {
		return m, fmt.Errorf("pid %d is %q, not systemd", m.PID, strings.TrimSpace(string(comm)))
	}
	m.BootDuration = time.Since(start)
	fmt.Fprintf(m.log, "usermanager: booted systemd --user pid %d in %s, run dir %s, cgroup %s\n",
		m.PID, m.BootDuration.Round(time.Millisecond), m.RunDir, m.Cgroup)
	return m, nil
}

// waitReady polls for the private socket, `systemctl --user show -p
// Version`, and the systemd1 name on the bus.
func (m *Manager) waitReady(ctx context.Context) error {
	private := filepath.Join(m.RuntimeDir, "systemd", "private")
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var last error
	stage := "private socket"
	for {
		select {
		case <-m.exited:
			return fmt.Errorf("manager exited during startup (%s)", m.cmd.ProcessState)
		case <-ctx.Done():
			return fmt.Errorf("%s: %w (last error: %v)", stage, context.Cause(ctx), last)
		case <-tick.C:
		}
		switch stage {
		case "private socket":
			if _, err := os.Stat(private); err != nil {
				last = err
				continue
			}
			stage = "systemctl --user show -p Version"
			fallthrough
		case "systemctl --user show -p Version":
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err := m.Systemctl(cctx, "show", "-p", "Version", "--value")
			cancel()
			if err != nil {
				last = err
				continue
			}
			stage = "org.freedesktop.systemd1 on the bus"
			fallthrough
		case "org.freedesktop.systemd1 on the bus":
			if err := m.busHasSystemd(ctx); err != nil {
				last = err
				continue
			}
			return nil
		}
	}
}

// busHasSystemd connects to the session bus (socket-activating dbus-daemon)
// and asks whether org.freedesktop.systemd1 owns its name yet.
func (m *Manager) busHasSystemd(ctx context.Context) error {
	conn, err := m.dialBus(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var has bool
	if err := conn.BusObject().CallWithContext(ctx, "org.freedesktop.DBus.NameHasOwner", 0, "org.freedesktop.systemd1").Store(&has); err != nil {
		return fmt.Errorf("ask bus for org.freedesktop.systemd1: %w", err)
	}
	if !has {
		return errors.New("org.freedesktop.systemd1 not yet on the bus")
	}
	return nil
}

// Env returns the variables that point a client at this manager:
// XDG_RUNTIME_DIR, DBUS_SESSION_BUS_ADDRESS and, for a booted manager,
// XDG_CONFIG_HOME, XDG_DATA_HOME, XDG_STATE_HOME and XDG_CACHE_HOME inside
// RunDir. Append it to os.Environ() (later entries win).
func (m *Manager) Env() []string {
	return append([]string(nil), m.env...)
}

// BusAddress returns the D-Bus address of the manager's session bus,
// "unix:path=$XDG_RUNTIME_DIR/bus" for a booted manager.
func (m *Manager) BusAddress() string { return m.busAddr }

// Systemctl runs `systemctl --user args...` with Env() and returns its
// combined output, trimmed of surrounding white space. A non-zero exit is an
// error carrying the output.
func (m *Manager) Systemctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "systemctl", append([]string{"--user", "--no-pager"}, args...)...)
	cmd.Env = append(baseEnv(), m.env...)
	cmd.Env = append(cmd.Env, "SYSTEMD_COLORS=0")
	cmd.WaitDelay = time.Second
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	s := strings.TrimSpace(out.String())
	if err != nil {
		return s, fmt.Errorf("systemctl --user %s: %w: %s", strings.Join(args, " "), err, s)
	}
	return s, nil
}

// LinkUnit writes content as UnitDir/name, links it into the manager's
// runtime unit directory (`systemctl --user link --runtime`, so that a
// reused manager forgets it at logout) and runs daemon-reload. Calling it
// again with the same name replaces the content.
func (m *Manager) LinkUnit(ctx context.Context, name, content string) error {
	if name == "" || strings.ContainsRune(name, '/') {
		return fmt.Errorf("link unit %q: invalid unit name", name)
	}
	path := filepath.Join(m.UnitDir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("link unit %s: %w", name, err)
	}
	if _, err := m.Systemctl(ctx, "link", "--runtime", "--force", path); err != nil {
		return fmt.Errorf("link unit %s: %w", name, err)
	}
	m.mu.Lock()
	m.linked = append(m.linked, name)
	m.mu.Unlock()
	if _, err := m.Systemctl(ctx, "daemon-reload"); err != nil {
		return fmt.Errorf("link unit %s: %w", name, err)
	}
	return nil
}

// Stop tears the manager down (recipe step 5) and removes RunDir:
// `systemctl --user exit` (10 s), SIGKILL to the manager if it is still
// there after 10 s more, SIGKILL to every PID left in its sub-cgroups (until
// they are empty), rmdir of the sub-cgroups, removal of RunDir. For a
// reused manager it stops and unlinks the units LinkUnit added and removes
// RunDir only. It is safe to call more than once; later calls return the
// first result.
func (m *Manager) Stop() error {
	m.stopOnce.Do(func() { m.stopErr = m.stop() })
	return m.stopErr
}

func (m *Manager) stop() error {
	start := time.Now()
	var errs []error
	if m.Reused {
		errs = append(errs, m.unlinkAll())
	}
	if m.cmd != nil {
		select {
		case <-m.exited:
		default:
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := m.Systemctl(ctx, "exit")
			cancel()
			if err != nil {
				fmt.Fprintf(m.log, "usermanager: %v\n", err)
			}
			select {
			case <-m.exited:
			case <-time.After(10 * time.Second):
				fmt.Fprintf(m.log, "usermanager: manager pid %d lingers after exit, killing it\n", m.PID)
				_ = m.cmd.Process.Signal(syscall.SIGKILL)
				select {
				case <-m.exited:
				case <-time.After(5 * time.Second):
					errs = append(errs, fmt.Errorf("manager pid %d survived SIGKILL", m.PID))
				}
			}
		}
	}
	if len(m.cgDirs) > 0 {
		errs = append(errs, m.emptyCgroups(10*time.Second))
		errs = append(errs, removeCgroups(m.cgDirs))
	}
	if m.RunDir != "" {
		if err := os.RemoveAll(m.RunDir); err != nil {
			errs = append(errs, fmt.Errorf("remove run directory: %w", err))
		}
	}
	err := errors.Join(errs...)
	fmt.Fprintf(m.log, "usermanager: stopped pid %d in %s (err=%v)\n", m.PID, time.Since(start).Round(time.Millisecond), err)
	return err
}

// unlinkAll stops, resets and unlinks the units LinkUnit added to a reused
// manager.
func (m *Manager) unlinkAll() error {
	m.mu.Lock()
	names := append([]string(nil), m.linked...)
	m.mu.Unlock()
	if len(names) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var errs []error
	_, _ = m.Systemctl(ctx, append([]string{"stop"}, names...)...)
	_, _ = m.Systemctl(ctx, append([]string{"reset-failed"}, names...)...)
	for _, n := range names {
		link := filepath.Join(m.RuntimeDir, "systemd", "user", n)
		if err := os.Remove(link); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("unlink unit %s: %w", n, err))
		}
	}
	if _, err := m.Systemctl(ctx, "daemon-reload"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// emptyCgroups SIGKILLs every PID listed in cgroup.procs below the
// manager's sub-cgroups until none is left or the timeout passes. All those
// processes were started by the manager this Manager booted.
func (m *Manager) emptyCgroups(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		pids := cgroupPIDs(m.cgDirs)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes left in cgroup %s: %v", m.Cgroup, pids)
		}
		for _, pid := range pids {
			fmt.Fprintf(m.log, "usermanager: killing leftover pid %d in cgroup %s\n", pid, m.Cgroup)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// cgroupPIDs lists the PIDs in every cgroup.procs below dirs.
func cgroupPIDs(dirs []string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, dir := range dirs {
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return nil
			}
			f, err := os.Open(filepath.Join(p, "cgroup.procs"))
			if err != nil {
				return nil
			}
			defer f.Close()
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				if pid, err := strconv.Atoi(strings.TrimSpace(sc.Text())); err == nil && pid > 0 && !seen[pid] {
					seen[pid] = true
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// removeCgroups removes the cgroup directories below and including dirs,
// deepest first, retrying for a while on EBUSY (a cgroup whose last process
// just exited).
func removeCgroups(dirs []string) error {
	var errs []error
	for _, dir := range dirs {
		var sub []string
		_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				sub = append(sub, p)
			}
			return nil
		})
		for i := len(sub) - 1; i >= 0; i-- {
			var err error
			for try := 0; try < 100; try++ {
				err = os.Remove(sub[i])
				if err == nil || errors.Is(err, fs.ErrNotExist) {
					err = nil
					break
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("remove cgroup: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

// sweepStale removes medic-test-* cgroups below own that hold no process
// and are older than ten minutes, with the run directory of the same name
// under baseDir: leftovers of a process that died without Stop (its
// manager got SIGTERM and exited). It kills nothing; a cgroup with a
// process in it cannot be removed.
func sweepStale(own, baseDir string, log io.Writer) {
	for _, root := range []string{CgroupV1Root, CgroupV2Root} {
		matches, _ := filepath.Glob(filepath.Join(root, own, NamePrefix+"*"))
		for _, dir := range matches {
			st, err := os.Stat(dir)
			if err != nil || time.Since(st.ModTime()) < 10*time.Minute {
				continue
			}
			if len(cgroupPIDs([]string{dir})) != 0 {
				continue
			}
			if err := removeCgroups([]string{dir}); err != nil {
				continue
			}
			fmt.Fprintf(log, "usermanager: removed stale cgroup %s\n", dir)
			run := filepath.Join(baseDir, filepath.Base(dir))
			if _, err := os.Stat(filepath.Join(run, "runtime")); err == nil {
				if err := os.RemoveAll(run); err == nil {
					fmt.Fprintf(log, "usermanager: removed stale run directory %s\n", run)
				}
			}
		}
	}
}

// baseEnv is os.Environ() without the variables Env() sets.
func baseEnv() []string {
	var out []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME",
			"XDG_CACHE_HOME", "DBUS_SESSION_BUS_ADDRESS", "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID":
			continue
		}
		out = append(out, kv)
	}
	return out
}

func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// logTail returns the last n lines of the file at path ("" if unreadable).
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Conn opens a go-systemd connection to this manager over its D-Bus
// (BusAddress), without reading the process environment. ctx is the
// connection's whole lifetime: the connection closes when it ends. Callers
// Close it.
func (m *Manager) Conn(ctx context.Context) (*sddbus.Conn, error) {
	conn, err := sddbus.NewConnection(func() (*dbus.Conn, error) { return m.dialBus(ctx) })
	if err != nil {
		return nil, fmt.Errorf("connect to systemd user bus: %w", err)
	}
	return conn, nil
}

// dialBus opens an authenticated private connection to the manager's bus
// that lives until ctx ends or it is closed.
func (m *Manager) dialBus(ctx context.Context) (*dbus.Conn, error) {
	c, err := dbus.Dial(m.busAddr, dbus.WithContext(ctx))
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", m.busAddr, err)
	}
	if err := c.Auth([]dbus.Auth{dbus.AuthExternal(strconv.Itoa(os.Getuid()))}); err != nil {
		c.Close()
		return nil, fmt.Errorf("authenticate on %s: %w", m.busAddr, err)
	}
	if err := c.Hello(); err != nil {
		c.Close()
		return nil, fmt.Errorf("hello on %s: %w", m.busAddr, err)
	}
	return c, nil
}
