package main

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/internal/smtptest"
)

// TestNotifyTest sends a test message through a real SMTP server, a webhook
// that accepts and one that answers 500: the report names each outcome and
// the command exits 1 because one notifier failed.
func TestNotifyTest(t *testing.T) {
	smtp := smtptest.Start(t, smtptest.Options{Mode: smtptest.NoTLS})
	var hookIDs []string
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hookIDs = append(hookIDs, r.Header.Get("webhook-id"))
	}))
	defer ok.Close()
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "upstream exploded", http.StatusInternalServerError)
	}))
	defer broken.Close()

	cfg := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[[notifier]]
name = "mail"
type = "email"
host = "127.0.0.1"
port = %d
tls = "none"
from = "medic@example.com"
to = ["ops@example.com"]

[[notifier]]
name = "hook"
type = "webhook"
url = %q

[[notifier]]
name = "broken"
type = "webhook"
url = %q
`, smtp.Port(), ok.URL, broken.URL)), 0o600); err != nil {
		t.Fatal(err)
	}

	out, _, err := execute("notify", "test", "-c", cfg)
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("err = %v, want exit status 1 because one notifier failed", err)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 {
		t.Fatalf("report has %d lines, want one per notifier:\n%s", len(lines), out)
	}
	for i, want := range []string{"mail", "hook", "broken"} {
		if !strings.HasPrefix(lines[i], want+" ") {
			t.Errorf("line %d = %q, want it to start with %q", i, lines[i], want)
		}
	}
	if !strings.Contains(lines[0], "accepted") || !strings.Contains(lines[1], "accepted") {
		t.Errorf("mail and hook not accepted:\n%s", out)
	}
	if !strings.Contains(lines[2], "FAILED") || !strings.Contains(lines[2], "500 Internal Server Error") || !strings.Contains(lines[2], "would retry") {
		t.Errorf("broken line = %q, want FAILED with the HTTP status, retryable", lines[2])
	}
	msgs := smtp.Messages()
	if len(msgs) != 1 || !strings.Contains(msgs[0].Header.Get("Subject"), "test message") {
		t.Errorf("smtp got %d messages (%v), want one test message", len(msgs), msgs)
	}
	if len(hookIDs) != 1 || !strings.HasPrefix(hookIDs[0], "medic-test-") {
		t.Errorf("webhook ids = %v", hookIDs)
	}

	// --notifier picks one.
	out, _, err = execute("notify", "test", "-c", cfg, "--notifier", "hook")
	if err != nil || strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "hook ") {
		t.Errorf("--notifier hook: err %v, output %q", err, out)
	}
	if _, _, err := execute("notify", "test", "-c", cfg, "--notifier", "nope"); err == nil || !strings.Contains(err.Error(), `no notifier named "nope"`) {
		t.Errorf("--notifier nope: err = %v", err)
	}
}

// TestNotifyTestLogNotifier: a log notifier's test message is written to
// stderr, where whoever runs the test sees it.
func TestNotifyTestLogNotifier(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(cfg, []byte("[[notifier]]\nname = \"ops-log\"\ntype = \"log\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, errOut, err := execute("notify", "test", "-c", cfg)
	if err != nil || !strings.Contains(out, "ops-log") || !strings.Contains(out, "accepted") {
		t.Fatalf("notify test: %v\n%s", err, out)
	}
	for _, want := range []string{"[medic] TEST medic-test", `"notifier": "ops-log"`, "this is a test message from medic notify test"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("the log notifier's line lacks %q; stderr:\n%s", want, errOut)
		}
	}
	_, _, err = execute("notify", "test", "-c", cfg, "--notifier", "nope")
	if err == nil || !strings.HasPrefix(err.Error(), "notify test: no notifier named \"nope\"") {
		t.Errorf("--notifier nope: %v", err)
	}
}
