package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/notify/outbox"
)

// TestPendingMailSurvivesSIGKILL: medic raises an incident while the SMTP
// server is down, is killed with SIGKILL with the mail still in its outbox,
// and the next medic delivers it once the server is up: exactly one mail.
func TestPendingMailSurvivesSIGKILL(t *testing.T) {
	dir := t.TempDir()
	bin := medicBinary(t)
	smtp := smtptest.Start(t, smtptest.Options{Mode: smtptest.NoTLS})
	if err := smtp.Down(); err != nil {
		t.Fatal(err)
	}
	// The backend: a port that refuses now and answers after the kill.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	backend := ln.Addr().String()
	ln.Close()

	cfg := filepath.Join(dir, "medic.toml")
	state := filepath.Join(dir, "state")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = ""
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
  [check.escalate]
  notify = ["mail"]
[[notifier]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = %d
tls = "none"
from = "medic@example.com"
to = ["ops@example.com"]
`, state, backend, smtp.Port())), 0o600); err != nil {
		t.Fatal(err)
	}

	first := exec.Command(bin, "run", "-c", cfg)
	var log1 syncBuffer
	first.Stderr = &log1
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	pending := func() []string {
		files, _ := filepath.Glob(filepath.Join(state, "outbox", "mail", "*.json"))
		return files
	}
	// Wait until the mail is queued and its first attempt has failed.
	tried := func() bool {
		st, _ := outbox.Inspect(filepath.Join(state, "outbox"))
		return len(st) == 1 && st[0].Pending == 1 && st[0].LastError != ""
	}
	deadline := time.Now().Add(15 * time.Second)
	for !tried() {
		if time.Now().After(deadline) {
			_ = first.Process.Kill()
			t.Fatalf("no message in the outbox within 15s:\n%s", log1.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	if n := len(smtp.Messages()); n != 0 {
		t.Fatalf("%d mails delivered while the server was down", n)
	}
	// `medic outbox` shows the waiting mail and why it waits.
	out, _, err := execute("outbox", "-c", cfg)
	if err != nil || !strings.Contains(out, "mail ") || !strings.Contains(out, "connection refused") {
		t.Errorf("medic outbox: err %v, output:\n%s", err, out)
	}

	// The backend is back, and so is the mail server.
	ln, err = net.Listen("tcp", backend)
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
	if err := smtp.Up(); err != nil {
		t.Fatal(err)
	}

	second := exec.Command(bin, "run", "-c", cfg)
	var log2 syncBuffer
	second.Stderr = &log2
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = second.Process.Signal(syscall.SIGTERM)
		_ = second.Wait()
	}()
	deadline = time.Now().Add(20 * time.Second)
	for len(smtp.Messages()) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("pending mail not delivered within 20s of the restart:\n%s", log2.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// The incident went on across the restart (state_dir): once the
	// backend answers, the second medic resolves it. The firing mail from
	// before the kill arrives exactly once, then the resolved one, in one
	// thread.
	deadline = time.Now().Add(10 * time.Second)
	for len(smtp.Messages()) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond)
	msgs := smtp.Messages()
	if len(msgs) != 2 {
		t.Fatalf("got %d mails, want the firing one once and the resolved one:\n%s", len(msgs), log2.String())
	}
	if s := msgs[0].Header.Get("Subject"); !strings.HasPrefix(s, "[medic] FIRING web on ") || !strings.Contains(s, backend+" connection refused") {
		t.Errorf("first subject = %q", s)
	}
	if s := msgs[1].Header.Get("Subject"); !strings.HasPrefix(s, "[medic] RESOLVED web on ") {
		t.Errorf("second subject = %q", s)
	}
	if a, b := msgs[0].Header.Get("References"), msgs[1].Header.Get("References"); a == "" || a != b {
		t.Errorf("References %q and %q: want one incident thread", a, b)
	}
	if left := pending(); len(left) != 0 {
		t.Errorf("outbox still holds %v after delivery", left)
	}
}
