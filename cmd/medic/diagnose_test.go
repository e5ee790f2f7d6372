package main

import (
	"encoding/json"
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

	"github.com/medic-watchdog/medic/agent"
)

func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDiagnoseCommand(t *testing.T) {
	addr := closedPort(t)
	out, _, err := execute("diagnose", "tcp://"+addr)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("diagnose of a closed port: err %v, want exit status 1", err)
	}
	for _, want := range []string{addr + " connection refused", "✗ direct test", "✓ firewall", "refused, not dropped"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	out, _, err = execute("diagnose", "--json", "tcp://"+addr)
	if err == nil {
		t.Fatal("--json of a closed port: want exit status 1")
	}
	var dg struct {
		OK        bool `json:"ok"`
		Checklist []struct{ Name, Status string }
	}
	if err := json.Unmarshal([]byte(out), &dg); err != nil || dg.OK || len(dg.Checklist) != 5 {
		t.Errorf("--json output %q: %v", out, err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	time.Sleep(300 * time.Millisecond) // the host's socket listing is shared for 250ms
	out, _, err = execute("diagnose", "tcp://"+ln.Addr().String())
	if err != nil || !strings.Contains(out, "answers") || !strings.Contains(out, "✓ port listening") {
		t.Errorf("diagnose of a listening port: err %v, output:\n%s", err, out)
	}

	if _, _, err := execute("diagnose", "ftp://x"); err == nil || !strings.Contains(err.Error(), "want tcp://host:port") {
		t.Errorf("bad target: err = %v", err)
	}
}

// TestStatusShowsDiagnosis runs medic with a failing check and reads its
// status socket: the check is failing and carries the diagnosis.
func TestStatusShowsDiagnosis(t *testing.T) {
	dir := t.TempDir()
	bin := medicBinary(t)
	addr := closedPort(t)
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = %q
[[check]]
name = "web"
interval = "200ms"
timeout = "100ms"
failures = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  action = "none"
`, dir, sock, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()

	var (
		out string
		err error
	)
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, _, err = execute("status", "--socket", sock)
		if strings.Contains(out, "failing") && strings.Contains(out, "cause:") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status never showed the failing check with a diagnosis (err %v):\n%s\nmedic log:\n%s", err, out, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Errorf("status with a failing check: err %v, want exit status 1", err)
	}
	for _, want := range []string{"web", addr + " connection refused", "✗ direct test"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	jsonOut, _, _ := execute("status", "--socket", sock, "--json")
	var r agent.Report
	if err := json.Unmarshal([]byte(jsonOut), &r); err != nil || len(r.Checks) != 1 || r.Checks[0].Diagnosis == nil {
		t.Errorf("status --json: %v\n%s", err, jsonOut)
	}
	if !strings.Contains(stderr.String(), `"event":"diagnosis"`) {
		t.Errorf("medic's log has no diagnosis line:\n%s", stderr.String())
	}
}
