package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/medic-watchdog/medic/internal/usermanager"
)

// backendUnit is the name of the unit every MTTR variant heals.
const backendUnit = "medic-bench-backend.service"

// lab is what the MTTR variants share: a user manager, the backend unit on
// a loopback port, nginx in front of it, and a temp directory.
type lab struct {
	mgr        *usermanager.Manager
	dir        string
	port       int
	addr       string // 127.0.0.1:port of the backend
	backendBin string
	medicBin   string
	nginx      *nginx // nil when nginx could not start
	keep       bool
}

// newLab reuses a running user manager or boots a private one, and makes a
// temp directory. Callers close it.
func newLab(ctx context.Context, o *options) (*lab, error) {
	l := &lab{backendBin: o.BackendBin, medicBin: o.MedicBin, keep: o.Keep}
	var err error
	if l.dir, err = os.MkdirTemp("", "medic-bench-"); err != nil {
		return nil, err
	}
	if l.mgr, err = usermanager.Detect(ctx); err != nil {
		return nil, err
	}
	if l.mgr == nil {
		logf("booting a private systemd user manager")
		l.mgr, err = usermanager.Boot(ctx, usermanager.Options{Log: os.Stderr})
		if err != nil {
			os.RemoveAll(l.dir)
			return nil, fmt.Errorf("boot a user manager: %w", err)
		}
	} else {
		logf("using the running user manager (XDG_RUNTIME_DIR=%s)", l.mgr.RuntimeDir)
	}
	if l.port, err = freePort(); err != nil {
		l.close()
		return nil, err
	}
	l.addr = fmt.Sprintf("127.0.0.1:%d", l.port)
	return l, nil
}

// close stops nginx and the user manager (or unlinks the unit from a reused
// one) and removes the temp directory.
func (l *lab) close() {
	if l.nginx != nil {
		l.nginx.stop()
	}
	if l.mgr != nil {
		if err := l.mgr.Stop(); err != nil {
			logf("stop user manager: %v", err)
		}
	}
	removeDir(l.dir, l.keep)
}

// removeDir removes a temp directory, or says where it is kept.
func removeDir(dir string, keep bool) {
	if keep {
		logf("kept %s", dir)
		return
	}
	os.RemoveAll(dir)
}

// env is the environment of a child that talks to the user manager:
// ours with the manager's variables on top (later entries win in os/exec).
func (l *lab) env() []string {
	return append(os.Environ(), l.mgr.Env()...)
}

// envValue returns one of the manager's variables.
func (l *lab) envValue(key string) string {
	for _, kv := range l.mgr.Env() {
		if k, v, ok := strings.Cut(kv, "="); ok && k == key {
			return v
		}
	}
	return ""
}

// unitFile is the backend unit. restart is its Restart= setting: "no" for
// every watcher but the systemd floor, which uses "always".
func (l *lab) unitFile(restart string) string {
	return fmt.Sprintf(`[Unit]
Description=medic bench backend
StartLimitIntervalSec=0

[Service]
Type=simple
ExecStart=%s -listen %s
Restart=%s
RestartSec=0
`, l.backendBin, l.addr, restart)
}

// resetBackend (re)links the backend unit with the given Restart= setting,
// clears a failed state, restarts it and waits until its port accepts.
func (l *lab) resetBackend(ctx context.Context, restart string) error {
	if err := l.mgr.LinkUnit(ctx, backendUnit, l.unitFile(restart)); err != nil {
		return err
	}
	_, _ = l.mgr.Systemctl(ctx, "reset-failed", backendUnit)
	if _, err := l.mgr.Systemctl(ctx, "restart", backendUnit); err != nil {
		return err
	}
	if _, err := waitAccept(ctx, l.addr, time.Now().Add(10*time.Second)); err != nil {
		return fmt.Errorf("backend did not come up: %w", err)
	}
	return nil
}

// stopBackend stops the backend unit.
func (l *lab) stopBackend(ctx context.Context) {
	_, _ = l.mgr.Systemctl(ctx, "stop", backendUnit)
	_, _ = l.mgr.Systemctl(ctx, "reset-failed", backendUnit)
}

// mainPID is the backend unit's MainPID (0 when it has none).
func (l *lab) mainPID(ctx context.Context) (int, error) {
	out, err := l.mgr.Systemctl(ctx, "show", "-p", "MainPID", "--value", backendUnit)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(out)
}

// freePort asks the kernel for a free loopback TCP port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// canConnect reports whether a TCP connection to addr succeeds now.
func canConnect(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// waitAccept polls addr every millisecond until a connection succeeds and
// returns the time it did.
func waitAccept(ctx context.Context, addr string, deadline time.Time) (time.Time, error) {
	for {
		if canConnect(addr) {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s did not accept connections in time", addr)
		}
		if err := sleepCtx(ctx, time.Millisecond); err != nil {
			return time.Time{}, err
		}
	}
}

// waitDead waits until every thread of pid has exited: the process is gone,
// or its leader is a zombie with no other thread left. Only then has the
// kernel closed its files, the listening socket among them, so that a later
// successful connect reaches a new process. (A multi-threaded process's
// leader turns zombie while other threads still hold the files.)
func waitDead(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !exited(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("pid %d still alive %s after SIGKILL", pid, timeout)
		}
		time.Sleep(100 * time.Microsecond)
	}
	return nil
}

// exited reports whether pid is gone or a zombie without threads.
func exited(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	// pid (comm) S ...: the state follows the last ')'.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X') {
		return false
	}
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	return err != nil || len(tasks) <= 1
}

// kill sends SIGKILL to pid; ESRCH counts as done.
func kill(pid int) error {
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
