// Package systemdtest gives tests a real systemd user manager
// (internal/usermanager) and a real backend to run as its units.
//
// Tests that need systemd skip with the reason when the machine cannot give
// them one (not root, no /lib/systemd/systemd, no cgroup v1 name=systemd
// hierarchy); with MEDIC_REQUIRE_SYSTEMD=1 (set by .ci/run) they fail
// instead. MEDIC_TEST_USER_MANAGER=private makes Start boot a private
// manager even when one is already running for the user.
package systemdtest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/usermanager"
)

// RequireEnv is the variable that turns skips into failures when set to "1".
const RequireEnv = "MEDIC_REQUIRE_SYSTEMD"

// BackendPackage is the import path of the backend binary Backend builds.
const BackendPackage = "github.com/medic-watchdog/medic/internal/testbackend/cmd/medic-test-backend"

// Unavailable skips the test with reason, or fails it when
// MEDIC_REQUIRE_SYSTEMD=1.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but systemd is unavailable: %s", RequireEnv, reason)
		return
	}
	t.Skipf("skipping: needs a systemd user manager: %s (set %s=1 to fail instead)", reason, RequireEnv)
}

// Missing skips the test because what it needs is missing (a program, a
// pseudo-terminal, IPv6 loopback, a cgroup hierarchy), or fails it when
// MEDIC_REQUIRE_SYSTEMD=1: CI installs and provides all of them, so a skip
// there would hide a test that never ran.
func Missing(t testing.TB, format string, args ...any) {
	t.Helper()
	what := fmt.Sprintf(format, args...)
	if os.Getenv(RequireEnv) == "1" {
		t.Fatalf("%s=1 but %s", RequireEnv, what)
		return
	}
	t.Skipf("skipping: %s (set %s=1 to fail instead)", what, RequireEnv)
}

// UnixSocket listens on a unix socket of the given mode, in a directory of
// its own that every user may search (0755; t.TempDir is 0700, which would
// deny other users before the socket's mode is looked at), accepts and
// closes every connection, and returns its path. Listener and directory are
// removed when the test ends.
func UnixSocket(t testing.TB, mode os.FileMode) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "medic-sock-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
	return path
}

// Start returns a systemd user manager for the test: one already running
// for the user (usermanager.Detect) or, failing that, a private one booted
// with usermanager.Boot, torn down by t.Cleanup. When neither can be had it
// skips (see Unavailable). When the test failed, the cleanup logs the tail
// of the manager's log, where the units' output lands too.
func Start(t testing.TB) *usermanager.Manager {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var m *usermanager.Manager
	if os.Getenv("MEDIC_TEST_USER_MANAGER") != "private" {
		d, err := usermanager.Detect(ctx)
		if err != nil {
			t.Fatalf("detect user manager: %v", err)
		}
		m = d
	}
	if m == nil {
		if err := usermanager.Available(); err != nil {
			Unavailable(t, err.Error())
		}
		b, err := usermanager.Boot(ctx, usermanager.Options{Log: logWriter{t}})
		if err != nil {
			t.Fatalf("boot systemd user manager: %v", err)
		}
		m = b
	}
	t.Cleanup(func() {
		if t.Failed() && m.LogFile != "" {
			if b, err := os.ReadFile(m.LogFile); err == nil {
				lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
				if len(lines) > 60 {
					lines = lines[len(lines)-60:]
				}
				t.Logf("manager log %s (tail):\n%s", m.LogFile, strings.Join(lines, "\n"))
			}
		}
		if err := m.Stop(); err != nil {
			t.Errorf("stop systemd user manager: %v", err)
		}
	})
	return m
}

// logWriter sends usermanager's progress lines to t.Log.
type logWriter struct{ t testing.TB }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var (
	backendOnce sync.Once
	backendPath string
	backendErr  error
)

// Backend builds medic-test-backend (once per test process) and returns
// the binary's path. The binary lives at a fixed path per user under
// os.TempDir(), replaced atomically by each build, so that nothing piles up
// and concurrent test processes do not trip over each other.
func Backend(t testing.TB) string {
	t.Helper()
	backendOnce.Do(func() { backendPath, backendErr = buildBackend() })
	if backendErr != nil {
		t.Fatalf("build medic-test-backend: %v", backendErr)
	}
	return backendPath
}

func buildBackend() (string, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if root := os.Getenv("GOROOT"); root != "" {
			goBin = filepath.Join(root, "bin", "go")
		} else {
			return "", fmt.Errorf("find go: %w", err)
		}
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("medic-test-backend-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command(goBin, "build", "-o", tmp.Name(), BackendPackage)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", BackendPackage, err, out)
	}
	path := filepath.Join(dir, "medic-test-backend")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// BackendUnit returns the text of a service unit that runs bin (from
// Backend) listening on addr: Type=simple, Restart=no and
// StartLimitIntervalSec=0, so that only medic heals it and systemd never
// refuses to start it. Each extra line is appended after the [Service]
// section, in order: plain settings land in [Service]; a section header
// ("[Unit]") starts a repeated section, which systemd merges. To change the
// command line, reset it first: "ExecStart=", "ExecStart=BIN -listen A -fail".
func BackendUnit(bin, addr string, extra ...string) string {
	var b strings.Builder
	b.WriteString("[Unit]\n")
	b.WriteString("Description=medic test backend on " + addr + "\n")
	b.WriteString("StartLimitIntervalSec=0\n")
	b.WriteString("\n[Service]\n")
	b.WriteString("Type=simple\n")
	b.WriteString("Restart=no\n")
	b.WriteString("ExecStart=" + bin + " -listen " + addr + "\n")
	for _, l := range extra {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Prop returns a unit property as `systemctl --user show -p prop --value
// unit` prints it, failing the test when systemctl fails.
func Prop(t testing.TB, m *usermanager.Manager, unit, prop string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := m.Systemctl(ctx, "show", "-p", prop, "--value", unit)
	if err != nil {
		t.Fatalf("show %s of %s: %v", prop, unit, err)
	}
	return out
}

// Systemctl runs `systemctl --user args...` on m, failing the test on error,
// and returns the output.
func Systemctl(t testing.TB, m *usermanager.Manager, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := m.Systemctl(ctx, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// LinkUnit links a unit into m (usermanager.Manager.LinkUnit), failing the
// test on error.
func LinkUnit(t testing.TB, m *usermanager.Manager, name, content string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.LinkUnit(ctx, name, content); err != nil {
		t.Fatal(err)
	}
}

// FreePort returns "127.0.0.1:N" for a port that was free a moment ago,
// chosen below the kernel's ephemeral port range
// (/proc/sys/net/ipv4/ip_local_port_range): a port from that range can be
// taken meanwhile as the local port of any outgoing connection (a probe's,
// say), and a backend unit then fails to bind it.
func FreePort(t testing.TB) string {
	t.Helper()
	lo := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				lo = n
			}
		}
	}
	const base = 10000
	for range 200 {
		port := base + rand.IntN(max(1, lo-base))
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		addr := ln.Addr().String()
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		return addr
	}
	t.Fatal("no free port below the ephemeral range after 200 tries")
	return ""
}

// WaitFor polls cond every 20 ms until it returns true, failing the test
// with msg when timeout passes first.
func WaitFor(t testing.TB, timeout time.Duration, cond func() bool, msg string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, msg)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Answers reports whether a TCP connection to addr succeeds within 200 ms.
func Answers(addr string) bool {
	c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// SYNDropListener returns a loopback address whose listener never accepts
// and whose accept queue is full, so that the kernel drops a new SYN and a
// connect hangs until its deadline: what a firewall's DROP rule looks like
// from the client. The listener is made with listen(2) and a backlog of 0
// (Go's net.Listen uses somaxconn), then filled with connections until one
// times out. With net.ipv4.tcp_abort_on_overflow=1 the kernel resets
// instead; the test then cannot have its timeout (Missing).
func SYNDropListener(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	var d net.Dialer
	for range 16 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		if err == nil {
			t.Cleanup(func() { _ = c.Close() })
			continue
		}
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			return addr
		}
		Missing(t, "a full accept queue on %s: %v (net.ipv4.tcp_abort_on_overflow set?)", addr, err)
		return ""
	}
	Missing(t, "a full accept queue: %s did not fill after 16 connections", addr)
	return ""
}
