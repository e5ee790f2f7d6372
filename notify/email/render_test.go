package email

import (
	"github.com/medic-watchdog/medic/internal/notifytest"

	"bytes"
	"flag"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

var update = flag.Bool("update", false, "rewrite testdata/example-firing.eml")

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 123e6, time.UTC)

// sample is a firing message: my-app crashed, one restart did not help.
func sample(kind notify.Kind, incidentID string, seq string) *notify.Message {
	m := &notify.Message{
		ID:      incidentID + "." + seq,
		Kind:    kind,
		Event:   notify.VerifyFailed,
		At:      t0.Add(2*time.Minute + 15*time.Second),
		Version: "1.4.2",
		Incident: notify.Incident{
			ID:        incidentID,
			Check:     "my-app",
			Unit:      "my-app.service",
			Host:      "web1",
			Target:    "127.0.0.1:8080",
			Problem:   "127.0.0.1:8080 connection refused",
			Cause:     "backend crashed",
			Diagnosis: notifytest.CrashDiagnosis(t0.Add(37 * time.Second)),
			Since:     t0,
			Restarts:  1,
			Timeline: []notify.Entry{
				{At: t0, What: "first failed probe", Detail: "dial tcp 127.0.0.1:8080: connect: connection refused"},
				{At: t0.Add(6 * time.Second), What: "restart 1", Detail: "job done"},
				{At: t0.Add(36 * time.Second), What: "verify failed", Detail: "probes still failing after verify_timeout 30s"},
			},
			UnitState: notify.UnitState{
				ActiveState:    "failed",
				SubState:       "failed",
				Result:         "exit-code",
				ExecMainCode:   1,
				ExecMainStatus: 1,
				NRestarts:      0,
				MainPID:        0,
				Since:          t0.Add(37 * time.Second),
			},
			Journal: []string{
				"Nov 21 08:00:36 web1 my-app[4242]: listening on 127.0.0.1:8080",
				"Nov 21 08:00:37 web1 my-app[4242]: panic: config: missing DATABASE_URL",
				"Nov 21 08:00:37 web1 systemd[1]: my-app.service: Main process exited, code=exited, status=1/FAILURE",
			},
		},
	}
	switch kind {
	case notify.Reminder:
		m.At = m.At.Add(4 * time.Hour)
	case notify.Resolved:
		m.Event = notify.EventResolved
		m.Incident.ResolvedAt = t0.Add(12*time.Minute + 3*time.Second)
		m.At = m.Incident.ResolvedAt
		m.Incident.UnitState = notify.UnitState{ActiveState: "active", SubState: "running", Result: "success", MainPID: 5151}
	}
	return m
}

func sampleConfig() Config {
	return Config{
		Name: "ops-email", Host: "smtp.example.com", Port: 587, TLS: "starttls",
		From: "medic@example.com", To: []string{"ops@example.com", "oncall@example.com"},
		Hostname: "web1.example.com",
	}
}

func TestPlainTextBody(t *testing.T) {
	text, _, err := Bodies(sample(notify.Firing, "my-app-20261121T080000.123Z", "1"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(text, "\n")
	for _, want := range []string{
		"my-app.service on web1: FIRING: 127.0.0.1:8080 connection refused; the restart job was done, but the probes did not pass within verify_timeout",
		"What failed",
		"  Check:    my-app",
		"  Unit:     my-app.service",
		"  Target:   127.0.0.1:8080",
		"  Problem:  127.0.0.1:8080 connection refused",
		"  Cause:    backend crashed",
		"  Since:    2026-11-21T08:00:00Z (for 2m15s)",
		"  Restarts: 1 by medic",
		"Timeline",
		"  2026-11-21T08:00:00Z  first failed probe  dial tcp 127.0.0.1:8080: connect: connection refused",
		"  2026-11-21T08:00:06Z  restart 1           job done",
		"  2026-11-21T08:00:36Z  verify failed       probes still failing after verify_timeout 30s",
		"Unit state",
		"  ActiveState:  failed",
		"  SubState:     failed",
		"  Result:       exit-code",
		"  Main process: exited, status 1",
		"  NRestarts:    0",
		"  MainPID:      none",
		"  State since:  2026-11-21T08:00:37Z",
		"Last journal lines",
		"  Nov 21 08:00:37 web1 my-app[4242]: panic: config: missing DATABASE_URL",
		"-- ",
		"Host: web1; medic 1.4.2; incident my-app-20261121T080000.123Z; message my-app-20261121T080000.123Z.1",
	} {
		found := false
		for _, l := range lines {
			if l == want {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("missing line %q in\n%s", want, text)
		}
	}
	if !strings.Contains(text, "because the incident is firing") {
		t.Errorf("footer does not say why:\n%s", text)
	}
}

func TestResolvedBodySaysHowLong(t *testing.T) {
	text, html, err := Bodies(sample(notify.Resolved, "my-app-20261121T080000.123Z", "3"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"resolved after 12m3s", "Outage:   lasted 12m3s", "The outage lasted 12m3s.", "MainPID:     5151"} {
		if !strings.Contains(text, want) {
			t.Errorf("text lacks %q:\n%s", want, text)
		}
	}
	if strings.Contains(text, "(for ") {
		t.Errorf("resolved text still counts an open duration:\n%s", text)
	}
	if !strings.Contains(html, "lasted 12m3s") {
		t.Errorf("html lacks the outage length")
	}
}

var msgIDRe = regexp.MustCompile(`^<[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~-]+)*@[A-Za-z0-9!#$%&'*+/=?^_` + "`" + `{|}~.-]+>$`)

func TestMessageID(t *testing.T) {
	for _, tc := range []struct{ id, host, want string }{
		{"my-app-20261121T080000.123Z.1", "web1.example.com", "<my-app-20261121T080000.123Z.1@web1.example.com>"},
		{"a b<c>@d", "web1", "<a%20b%3Cc%3E%40d@web1>"},
		{".x..y.", "h", "<%2Ex.%2Ey%2E@h>"},
		{"50%", "h", "<50%25@h>"},
		{"id\r\nBcc: x@y", "h", "<id%0D%0ABcc%3A%20x%40y@h>"},
	} {
		got := MessageID(tc.id, tc.host)
		if got != tc.want {
			t.Errorf("MessageID(%q, %q) = %q, want %q", tc.id, tc.host, got, tc.want)
		}
		if !msgIDRe.MatchString(got) {
			t.Errorf("MessageID(%q) = %q is not an RFC 5322 msg-id", tc.id, got)
		}
		if _, err := (&mail.AddressParser{}).Parse(strings.Trim(got, "<>")); err != nil {
			t.Errorf("MessageID(%q) = %q does not parse as addr-spec: %v", tc.id, got, err)
		}
	}
	if MessageID("a b", "h") == MessageID("a_b", "h") {
		t.Error("distinct ids share a Message-ID")
	}
}

// TestExampleFiring renders the README's example and compares it with
// testdata/example-firing.eml (go test -run TestExampleFiring -update
// rewrites it): the headers as sent, then the text/plain part decoded.
func TestExampleFiring(t *testing.T) {
	msg, err := Render(sample(notify.Firing, "my-app-20261121T080000.123Z", "1"), sampleConfig())
	if err != nil {
		t.Fatal(err)
	}
	var raw bytes.Buffer
	if _, err := msg.WriteTo(&raw); err != nil {
		t.Fatal(err)
	}
	parsed, err := mail.ReadMessage(&raw)
	if err != nil {
		t.Fatal(err)
	}
	text, _, err := Bodies(sample(notify.Firing, "my-app-20261121T080000.123Z", "1"))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range []string{"Date", "From", "To", "Subject", "Message-ID", "In-Reply-To", "References",
		"Auto-Submitted", "Precedence", "X-Auto-Response-Suppress", "X-Medic-Incident", "X-Medic-Kind",
		"X-Medic-Event", "User-Agent", "MIME-Version"} {
		v := parsed.Header[textproto.CanonicalMIMEHeaderKey(k)]
		if len(v) != 1 {
			t.Fatalf("header %s: %q, want one value", k, v)
		}
		b.WriteString(k + ": " + v[0] + "\n")
	}
	b.WriteString("Content-Type: text/plain; charset=UTF-8\n\n")
	b.WriteString(text)
	got := b.String()

	path := filepath.Join("testdata", "example-firing.eml")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s is stale (run with -update); got:\n%s", path, got)
	}
}

// TestReadmeShowsExample: the README shows the current example email.
func TestReadmeShowsExample(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	eml, err := os.ReadFile(filepath.Join("testdata", "example-firing.eml"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(readme, bytes.TrimRight(eml, "\n")) {
		t.Error("README.md does not show testdata/example-firing.eml; copy it in")
	}
}
