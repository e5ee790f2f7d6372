package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

func execute(args ...string) (stdout, stderr string, err error) {
	var out, errb bytes.Buffer
	cmd := newRootCmd()
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

// TestCheckConfigOK checks the example configuration, with the secret files
// it names under /etc/medic moved to a directory of the test's.
func TestCheckConfigOK(t *testing.T) {
	example, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, name := range []string{"smtp-password", "webhook-secret"} {
		if !strings.Contains(string(example), "/etc/medic/"+name) {
			t.Fatalf("the example names no /etc/medic/%s", name)
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte("secret\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := filepath.Join(dir, "medic.toml")
	text := strings.ReplaceAll(string(example), "\"/etc/medic/", "\""+dir+"/")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := execute("check-config", "-c", cfg)
	if err != nil {
		t.Fatalf("check-config on the example: %v\n%s", err, stderr)
	}
	if !strings.Contains(out, "configuration OK") {
		t.Errorf("output %q, want it to say configuration OK", out)
	}
}

// TestCheckConfigReportsEveryProblem wants every problem of a bad file, each
// with file, line and key, and exit status 1, as nginx -t does.
func TestCheckConfigReportsEveryProblem(t *testing.T) {
	_, stderr, err := execute("check-config", "-c", "testdata/bad.toml")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("error = %v, want exit status 1", err)
	}
	for _, want := range []string{
		"testdata/bad.toml:7: check[0].unit:",
		"testdata/bad.toml:10: check[0].probe[0].address: missing port",
		"testdata/bad.toml:13: check[1].name:",
		"testdata/bad.toml:15: check[1].timeout:",
		"testdata/bad.toml:18: check[1].probe[0].url:",
		"testdata/bad.toml:20: check[1].escalate.notify[0]:",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("output lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "configuration OK") {
		t.Errorf("bad configuration reported OK")
	}
}

// TestRunStopsOnSIGTERM runs the built binary and sends it SIGTERM: it must
// exit 0, promptly, after logging that it stopped.
func TestRunStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	bin := medicBinary(t)
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(cfg, []byte(`
[agent]
bus = "user"
state_dir = "`+dir+`"
[[check]]
name = "web"
interval = "1s"
timeout = "500ms"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"
  [check.remedy]
  action = "none"
`), 0o644); err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(stderr.String(), "medic started") {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("medic did not start:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Fatalf("medic run exited with %v after SIGTERM:\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("medic run still running 10s after SIGTERM")
	}
	if !strings.Contains(stderr.String(), "medic stopped") {
		t.Errorf("log lacks 'medic stopped':\n%s", stderr.String())
	}
}

// syncBuffer is a bytes.Buffer that a child's output copier and the test
// can use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// medicBinary builds medic once per test process into a directory that
// lives as long as the process (its tests run units from it).
func medicBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "medic-bin-")
		if err != nil {
			buildErr = err
			return
		}
		if err := os.Chmod(dir, 0o755); err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "medic")
		if out, err := exec.Command("go", "build", "-o", builtBin, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}
