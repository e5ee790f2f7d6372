package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestControlWithBrokenConfig runs medic, then breaks its configuration
// file: status still shows the checks (over the socket the running medic
// recorded in its runtime directory) and says on stderr what is broken and
// which socket it used; reload reaches the running medic and reports its
// refusal.
func TestControlWithBrokenConfig(t *testing.T) {
	bin := medicBinary(t)
	dir := t.TempDir()
	runtimeDir := filepath.Join(dir, "run")
	if err := os.Mkdir(runtimeDir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("RUNTIME_DIRECTORY", runtimeDir) // for medic run and for the commands below
	backend, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer backend.Close()
	go func() {
		for {
			c, err := backend.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	good := fmt.Sprintf(`[agent]
bus = "user"
state_dir = %q
status_socket = %q
[[check]]
name = "web"
interval = "200ms"
timeout = "100ms"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  action = "none"
`, dir, sock, backend.Addr().String())
	if err := os.WriteFile(cfg, []byte(good), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(15 * time.Second); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; medic log:\n%s", what, stderr.String())
			}
		}
	}
	waitUntil("the status socket record", func() bool {
		b, err := os.ReadFile(filepath.Join(runtimeDir, "status-socket"))
		return err == nil && string(b) == sock+"\n"
	})

	// Line 2 names no bus; line 15 a notifier nobody defined.
	broken := strings.Replace(good, "action = \"none\"\n", "action = \"none\"\n  [check.escalate]\n  notify = [\"nobody\"]\n", 1)
	broken = strings.Replace(broken, `bus = "user"`, `bus = "nope"`, 1)
	if err := os.WriteFile(cfg, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(runtimeDir, "status-socket")); err != nil {
		t.Fatal(err)
	}
	var out, errOut string
	waitUntil("status to show the healthy check", func() bool {
		out, errOut, err = execute("status", "-c", cfg)
		return err == nil && strings.Contains(out, "web") && strings.Contains(out, "healthy")
	})
	for _, want := range []string{
		"the configuration is broken: " + cfg + ":2: agent.bus:",
		"and 1 more problem(s)",
		"using the status socket " + sock + ", recorded by the running medic in " + filepath.Join(runtimeDir, "status-socket"),
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("status stderr lacks %q:\n%s", want, errOut)
		}
	}
	if !strings.Contains(out, "CHECK") {
		t.Errorf("status printed no table:\n%s", out)
	}

	// reload reaches the running medic, which refuses the file.
	_, errOut, err = execute("reload", "-c", cfg)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("reload of a broken file: err %v, want exit status 1\n%s", err, errOut)
	}
	if !strings.Contains(errOut, "reload failed") || !strings.Contains(errOut, cfg+":15: check[0].escalate.notify[0]: unknown notifier") {
		t.Errorf("reload does not report the running medic's refusal:\n%s", errOut)
	}
	out, _, _ = execute("status", "-c", cfg)
	if !strings.Contains(out, "the last reload failed") {
		t.Errorf("status does not show the failed reload:\n%s", out)
	}
}

// TestStatusBrokenConfigDefaultSocket: with a broken file and no record of
// a running medic, status tries the default socket and says so.
func TestStatusBrokenConfigDefaultSocket(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", dir)
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(cfg, []byte("[agent]\nbus = \"nope\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, _ := execute("status", "-c", cfg)
	for _, want := range []string{
		"the configuration is broken: " + cfg + ":2: agent.bus:",
		"using the default status socket /run/medic/medic.sock (no running medic recorded one in " + filepath.Join(dir, "status-socket") + ")",
	} {
		if !strings.Contains(errOut, want) {
			t.Errorf("status stderr lacks %q:\n%s", want, errOut)
		}
	}
	if strings.Contains(errOut, "more problem") {
		t.Errorf("one problem reported as several:\n%s", errOut)
	}
}

func TestStatusSocketRecord(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("RUNTIME_DIRECTORY", dir+":/elsewhere")
	if got, want := statusSocketRecordPath(), filepath.Join(dir, "status-socket"); got != want {
		t.Errorf("record path %q, want %q", got, want)
	}
	if err := recordStatusSocket("/run/x/medic.sock"); err != nil {
		t.Fatal(err)
	}
	if got, err := readStatusSocketRecord(statusSocketRecordPath()); got != "/run/x/medic.sock" || err != nil {
		t.Errorf("read back %q, %v", got, err)
	}
	fi, err := os.Stat(statusSocketRecordPath())
	if err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("record mode %v, %v; want 0644", fi.Mode(), err)
	}
	if err := os.WriteFile(statusSocketRecordPath(), []byte("relative.sock\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readStatusSocketRecord(statusSocketRecordPath()); err == nil {
		t.Errorf("a relative path in the record was accepted")
	}

	t.Setenv("RUNTIME_DIRECTORY", "")
	if got := statusSocketRecordPath(); got != "/run/medic/status-socket" {
		t.Errorf("record path without RUNTIME_DIRECTORY %q", got)
	}
	if err := recordStatusSocket("/run/x/medic.sock"); err != nil {
		t.Errorf("recordStatusSocket without RUNTIME_DIRECTORY: %v, want nil (nothing recorded)", err)
	}
}
