package probe

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// unixListener listens on a Unix stream socket at path and accepts every
// connection, closing it at once.
func unixListener(t *testing.T, path string) *net.UnixListener {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(func() { _ = ln.Close() })
	return ln
}

// fullBacklogUnix makes path a Unix stream socket whose listener
// never accepts and whose accept queue (backlog 0, which holds one) is full.
func fullBacklogUnix(t *testing.T, path string) {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrUnix{Name: path}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("fill the accept queue of %s: %v", path, err)
	}
	t.Cleanup(func() { _ = c.Close() })
}

func TestUnix(t *testing.T) {
	dir := t.TempDir()

	okPath := filepath.Join(dir, "ok.sock")
	unixListener(t, okPath)

	// A stale socket: the file stays, nothing listens.
	stalePath := filepath.Join(dir, "stale.sock")
	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: stalePath, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	if err := stale.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(stalePath); err != nil || fi.Mode()&os.ModeSocket == 0 {
		t.Fatalf("stale socket file not left behind: %v", err)
	}

	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, nil, 0o666); err != nil {
		t.Fatal(err)
	}

	fullPath := filepath.Join(dir, "full.sock")
	fullBacklogUnix(t, fullPath)

	dgramPath := filepath.Join(dir, "dgram.sock")
	dgram, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: dgramPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dgram.Close() })

	missing := filepath.Join(dir, "missing.sock")

	tests := []struct {
		name       string
		path       string
		wantOK     bool
		wantClass  Class
		wantErrHas []string
	}{
		{name: "ok", path: okPath, wantOK: true},
		{name: "stale socket", path: stalePath, wantClass: ClassRefused,
			wantErrHas: []string{"dial unix " + stalePath + ": connect: connection refused"}},
		// ENOENT is refused: no backend serves the path (servers unlink
		// their socket on exit); the text keeps the errno.
		{name: "missing path", path: missing, wantClass: ClassRefused,
			wantErrHas: []string{"dial unix " + missing + ": connect: no such file or directory"}},
		{name: "not a socket", path: regular, wantClass: ClassRefused,
			wantErrHas: []string{"connect: connection refused"}},
		// A full accept queue on a Unix socket fails at once with EAGAIN
		// (it does not wait); Classify calls that a timeout, like TCP.
		{name: "accept queue full", path: fullPath, wantClass: ClassTimeout,
			wantErrHas: []string{"dial unix " + fullPath + ": connect: resource temporarily unavailable"}},
		{name: "datagram socket", path: dgramPath, wantClass: ClassOther,
			wantErrHas: []string{"connect: protocol wrong type for socket"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewUnix(tt.path).Probe(context.Background(), time.Second)
			checkResult(t, r, "unix:"+tt.path, tt.wantOK, tt.wantClass, tt.wantErrHas...)
		})
	}
}

func TestUnixCancelled(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ok.sock")
	unixListener(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := NewUnix(path).Probe(ctx, time.Second)
	checkResult(t, r, "unix:"+path, false, ClassOther, "operation was canceled")
}

// Environment of the helper process that TestUnixPermission runs as another
// user.
const (
	helperEnvPath = "MEDIC_PROBE_HELPER_UNIX_PATH"
	nobodyUID     = 65534
	nobodyGID     = 65534
)

// TestHelperProcess is not a test: TestUnixPermission runs the test binary
// as uid 65534 with only this test selected, and it probes the Unix socket
// named in the environment and prints the Result on stdout.
func TestHelperProcess(t *testing.T) {
	path := os.Getenv(helperEnvPath)
	if path == "" {
		t.Skip("helper process for TestUnixPermission; runs only as its child")
	}
	r := NewUnix(path).Probe(context.Background(), 2*time.Second)
	fmt.Printf("uid=%d ok=%t class=%s duration=%d err=%v\n", os.Getuid(), r.OK, r.Class, r.Duration, r.Err)
	os.Exit(0)
}

// TestUnixPermission probes a socket that the probing user may not write to.
// Root bypasses file permissions, so as root the probe runs in a copy of the
// test binary started as uid 65534 (nobody) against a root-owned 0600
// socket. As another user the test probes its own socket with mode 0000 (an
// owner without the write bit is refused too, unless the process holds
// CAP_DAC_OVERRIDE).
func TestUnixPermission(t *testing.T) {
	if os.Getuid() != 0 {
		path := filepath.Join(t.TempDir(), "perm.sock")
		unixListener(t, path)
		if err := os.Chmod(path, 0); err != nil {
			t.Fatal(err)
		}
		r := NewUnix(path).Probe(context.Background(), time.Second)
		if r.OK {
			skipOrFail(t, "connect to a mode 0000 socket succeeded as uid %d (CAP_DAC_OVERRIDE?); cannot produce EACCES", os.Getuid())
		}
		checkResult(t, r, "unix:"+path, false, ClassPermission, "dial unix "+path+": connect: permission denied")
		return
	}

	// A directory nobody can search and read: t.TempDir's parent is 0700.
	dir, err := os.MkdirTemp("", "medic-probe-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "probe.test")
	if err := copyExecutable(exe); err != nil {
		skipOrFail(t, "copy the test binary for uid %d: %v", nobodyUID, err)
	}
	path := filepath.Join(dir, "perm.sock")
	unixListener(t, path)
	if err := os.Chmod(path, 0o600); err != nil {
		t.Fatal(err)
	}

	// Control: root itself may connect.
	checkResult(t, NewUnix(path).Probe(context.Background(), time.Second), "unix:"+path, true, ClassNone)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, "-test.run=^TestHelperProcess$")
	cmd.Dir = dir
	cmd.Env = []string{helperEnvPath + "=" + path, "PATH=/usr/bin:/bin", "TMPDIR=" + os.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID, Groups: []uint32{}},
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		skipOrFail(t, "run the test binary as uid %d: %v\n%s", nobodyUID, err, out)
	}
	line := ""
	for l := range strings.Lines(string(out)) {
		if strings.HasPrefix(l, "uid=") {
			line = strings.TrimSpace(l)
		}
	}
	t.Logf("helper: %s", line)
	wantPrefix := fmt.Sprintf("uid=%d ok=false class=permission duration=", nobodyUID)
	if !strings.HasPrefix(line, wantPrefix) {
		t.Fatalf("helper printed %q, want prefix %q (full output:\n%s)", line, wantPrefix, out)
	}
	if want := "err=dial unix " + path + ": connect: permission denied"; !strings.HasSuffix(line, want) {
		t.Errorf("helper printed %q, want it to end in %q", line, want)
	}
	if strings.Contains(line, "duration=0 ") {
		t.Errorf("helper reported a zero duration: %q", line)
	}
}

// copyExecutable copies the running test binary to dst with mode 0755.
func copyExecutable(dst string) error {
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
