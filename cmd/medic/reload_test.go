package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestReloadOnFileChangeAndSIGHUP runs medic, then saves a new
// configuration the way editors do (write a temp file, rename it over the
// old one): medic reloads by itself. A second change is applied with
// SIGHUP after the watcher's debounce. The metrics endpoint reports the
// reloads and the checks.
func TestReloadOnFileChangeAndSIGHUP(t *testing.T) {
	bin := medicBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	metricsAddr := closedPort(t)
	check := func(name string) string {
		return fmt.Sprintf("\n[[check]]\nname = %q\ninterval = \"1s\"\ntimeout = \"200ms\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:1\"\n  [check.remedy]\n  action = \"none\"\n", name)
	}
	head := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = %q\nmetrics_listen = %q\n", dir, sock, metricsAddr)
	save := func(text string) {
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	save(head + check("one"))

	var stderr syncBuffer
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()

	checks := func() string {
		out, _, _ := execute("status", "--socket", sock, "--json")
		return out
	}
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; medic log:\n%s", what, stderr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUntil("medic to answer", func() bool { return strings.Contains(checks(), `"check": "one"`) })

	save(head + check("one") + check("two"))
	waitUntil("the saved file to be reloaded", func() bool { return strings.Contains(checks(), `"check": "two"`) })

	// The watcher sees every save, so SIGHUP is told apart by the trigger
	// medic logs.
	save(head + check("two") + check("three"))
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil("the SIGHUP reload", func() bool {
		s := checks()
		return strings.Contains(s, `"check": "three"`) && !strings.Contains(s, `"check": "one"`)
	})
	waitUntil("a reload triggered by SIGHUP in the log", func() bool { return strings.Contains(stderr.String(), `"trigger":"SIGHUP"`) })
	if !strings.Contains(stderr.String(), `"trigger":"file changed"`) {
		t.Errorf("no reload triggered by the file change in the log:\n%s", stderr.String())
	}

	scrape := func() string {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err != nil {
			return ""
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	waitUntil("check two's probe in the metrics", func() bool {
		return strings.Contains(scrape(), `medic_probe_success{check="two",probe="0-tcp"} 0`)
	})
	body := scrape()
	for _, want := range []string{
		`medic_config_last_reload_successful 1`,
		`medic_check_state{check="three",state="`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(body, `check="one"`) {
		t.Error("metrics still report the removed check one")
	}
}

// TestFailedReloadLoggedOnce saves a broken configuration (the watcher
// reloads it and fails), then reloads the same file with SIGHUP and with
// medic reload, as an operator does: each is refused, but the error is
// logged once. A file broken differently is a new error, logged again.
func TestFailedReloadLoggedOnce(t *testing.T) {
	bin := medicBinary(t)
	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	good := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = %q\n"+
		"[[check]]\nname = \"one\"\ninterval = \"1s\"\ntimeout = \"200ms\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:1\"\n  [check.remedy]\n  action = \"none\"\n", dir, sock)
	save := func(text string) {
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	save(good)
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
	count := func(s string) int { return strings.Count(stderr.String(), s) }
	const failed = "config reload failed"
	waitUntil("medic to start", func() bool { return strings.Contains(stderr.String(), "medic started") })

	save(strings.Replace(good, `bus = "user"`, `bus = "nope"`, 1))
	waitUntil("the file-change reload to fail", func() bool { return count(`"trigger":"file changed","ok":false`) == 1 })
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil("the SIGHUP reload to fail", func() bool { return count(`"trigger":"SIGHUP","ok":false`) == 1 })
	_, errOut, err := execute("reload", "--socket", sock)
	if err == nil || !strings.Contains(errOut, "agent.bus") {
		t.Errorf("medic reload of the same broken file: %v, %q; want it refused with the problem", err, errOut)
	}
	if n := count(failed); n != 1 {
		t.Errorf("one broken file reloaded three times: %q logged %d times, want once:\n%s", failed, n, stderr.String())
	}
	if !strings.Contains(stderr.String(), "has not changed since the last failed reload") {
		t.Errorf("the SIGHUP reload does not say the file is unchanged:\n%s", stderr.String())
	}

	save(strings.Replace(good, `bus = "user"`, `bus = "other"`, 1))
	waitUntil("a new problem to be logged", func() bool { return count(failed) == 2 })
}
