package ostest

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestMachine boots each suite and checks what the OS tests rely on: the
// right release with systemd as PID 1, a loopback-only network, files that
// go in through WriteFile land only in the machine's overlay (never in the
// cached root filesystem), and Stop leaves no process and no cgroup behind.
func TestMachine(t *testing.T) {
	for _, suite := range Suites {
		t.Run(suite, func(t *testing.T) {
			t.Parallel()
			m := Boot(t, suite)

			if got := m.Sh(t, ". /etc/os-release && echo $VERSION_CODENAME"); got != suite {
				t.Errorf("VERSION_CODENAME in /etc/os-release is %q, want %q", got, suite)
			}
			if got := m.Sh(t, "cat /proc/1/comm"); got != "systemd" {
				t.Errorf("PID 1 is %q, want systemd", got)
			}
			if got := m.Sh(t, "ls /sys/class/net"); got != "lo" {
				t.Errorf("network interfaces %q, want only lo", got)
			}

			data := []byte("line one\nline two\x00\xff\n")
			m.WriteFile(t, "/root/sub/dir/file", data, 0o640)
			if got := m.Sh(t, "stat -c '%a %U:%G' /root/sub/dir/file"); got != "640 root:root" {
				t.Errorf("stat of the written file: %q, want 640 root:root", got)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, _, err := m.Run(ctx, "cat", "/root/sub/dir/file")
			if err != nil || !bytes.Equal(out, data) {
				t.Errorf("cat of the written file: %q, %v; want %q", out, err, data)
			}
			if _, err := os.Stat(filepath.Join(m.Rootfs, "root", "sub")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the cached root filesystem got /root/sub (stat: %v): the overlay leaks", err)
			}

			_, stderr, err := m.Run(ctx, "sh", "-c", "echo oops >&2; exit 3")
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 3 || strings.TrimSpace(string(stderr)) != "oops" {
				t.Errorf("Run of a failing command: err %v, stderr %q; want exit status 3 and stderr oops", err, stderr)
			}

			if err := m.Stop(); err != nil {
				t.Fatalf("Stop: %v", err)
			}
			if err := syscall.Kill(m.NspawnPID, 0); err == nil {
				t.Errorf("systemd-nspawn (pid %d) still runs after Stop", m.NspawnPID)
			}
			if err := syscall.Kill(m.PID, 0); err == nil {
				t.Errorf("the container's PID 1 (host pid %d) still runs after Stop", m.PID)
			}
			for _, d := range m.cgDirs {
				if _, err := os.Stat(d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("cgroup %s still there after Stop (stat: %v)", d, err)
				}
			}
		})
	}
}
