package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/notify/outbox"
	"github.com/medic-watchdog/medic/probe"
)

// hostile clears the screen, retitles the terminal and returns the cursor
// to the line's start; escaped, it reads as below.
const (
	hostile        = "\x1b]0;pwned\x07\x1b[2J\r"
	hostileEscaped = `\x1b]0;pwned\x07\x1b[2J\r`
)

// assertInert fails when out carries a control character other than
// newline, or lacks the escaped hostile text.
func assertInert(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) || r == 0x202e {
			t.Errorf("%s prints the control character %U:\n%q", what, r, out)
			break
		}
	}
	if !strings.Contains(out, hostileEscaped) {
		t.Errorf("%s does not show the hostile text escaped (%s):\n%s", what, hostileEscaped, out)
	}
}

// TestStatusEscapesControlCharacters prints a report whose every string a
// backend or a control client could set carries escape sequences.
func TestStatusEscapesControlCharacters(t *testing.T) {
	dg := &diagnose.Diagnosis{
		Primary:     diagnose.Finding{Cause: diagnose.Unknown, Summary: "got " + hostile, Hint: "fix " + hostile},
		Secondary:   []diagnose.Finding{{Cause: diagnose.Crashed, Summary: hostile, Hint: hostile}},
		Checklist:   []diagnose.Item{{Name: diagnose.ItemDirect, Status: diagnose.Fail, Evidence: "http://127.0.0.1/ returned 503 " + hostile}},
		Unavailable: []string{hostile},
	}
	r := &agent.Report{
		Version: "1", Host: "h" + hostile, Started: time.Now(),
		Checks: []agent.Status{{
			Check: "web", Unit: "web.service", State: "failing", LastProbe: time.Now(),
			LastError: "http://127.0.0.1:8080/health returned 503 " + hostile, Incident: "inc-1",
			Diagnosis: dg, Paused: &agent.Pause{Until: time.Now().Add(time.Hour), Reason: "deploy " + hostile + "\u202e"},
		}},
		Outbox:      []outbox.Stat{{Notifier: "ops", Pending: 1, LastError: "550 " + hostile}},
		ReloadError: "medic.toml:3: bad\nmedic.toml:4: " + hostile,
	}
	var out bytes.Buffer
	printStatus(&out, r)
	assertInert(t, "medic status", out.String())
	if !strings.Contains(out.String(), "medic.toml:3: bad\nmedic.toml:4: ") {
		t.Errorf("the reload's problems are not one per line:\n%s", out.String())
	}

	out.Reset()
	if err := printOutbox(&out, r.Outbox); err != nil {
		t.Fatal(err)
	}
	assertInert(t, "medic outbox", out.String())
}

// TestDiagnoseEscapesReasonPhrase runs `medic diagnose` against a server
// whose status line carries escape sequences and a CR in its reason phrase.
func TestDiagnoseEscapesReasonPhrase(t *testing.T) {
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
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					l, err := br.ReadString('\n')
					if err != nil || l == "\r\n" {
						break
					}
				}
				_, _ = c.Write([]byte("HTTP/1.1 503 Busy " + hostile + "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
			}()
		}
	}()
	stdout, stderr, err := execute("diagnose", "http://"+ln.Addr().String()+"/health", "--timeout", "2s")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("diagnose: %v, want exit 1; stderr:\n%s", err, stderr)
	}
	// probe may already have replaced the controls of a server's text; what
	// counts is that none reaches the terminal.
	for _, r := range stdout {
		if (r < 0x20 && r != '\n') || r == 0x7f || (r >= 0x80 && r <= 0x9f) {
			t.Errorf("medic diagnose prints the control character %U:\n%q", r, stdout)
			break
		}
	}
	if !strings.Contains(stdout, "pwned") {
		t.Errorf("medic diagnose does not show the reason phrase:\n%s", stdout)
	}

	// The printer escapes whatever text it is given.
	var out bytes.Buffer
	res := probe.Result{Target: "http://127.0.0.1:8080/health", Class: probe.ClassHTTPStatus, Err: &probe.StatusError{Status: "503 " + hostile, Code: 503}}
	printProbeDiagnosis(&out, res, &diagnose.Diagnosis{Primary: diagnose.Finding{Cause: diagnose.Unknown, Summary: "returned 503 " + hostile}})
	assertInert(t, "medic diagnose's printer", out.String())
}

// TestControlErrorEscaped: an error text the status socket answers is
// escaped before it reaches the terminal.
func TestControlErrorEscaped(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "medic.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"error":"no check \u001b]0;pwned\u0007\u001b[2J\r"}`))
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Shutdown(context.Background())
	_, _, err = execute("pause", "web", "--socket", sock)
	if err == nil {
		t.Fatal("pause: no error")
	}
	assertInert(t, "medic pause's error", err.Error())
}
