package email

import (
	"bytes"
	"net/mail"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/notify"
)

// sampleDigest is a digest of three incidents behind one shared
// dependency: my-app and worker firing, api resolved.
func sampleDigest() *notify.Message {
	a := sample(notify.Firing, "my-app-20261121T080000.123Z", "1")
	b := sample(notify.Firing, "worker-20261121T080001.000Z", "1")
	b.Incident.Check, b.Incident.Unit, b.Incident.Target = "worker", "worker.service", "unix:/run/worker.sock"
	b.Incident.Problem, b.Incident.Cause, b.Incident.Diagnosis = "unix:/run/worker.sock connection refused", "", nil
	b.Incident.Journal = nil
	c := sample(notify.Resolved, "api-20261121T075500.000Z", "2")
	c.Incident.Check, c.Incident.Unit, c.Incident.Target = "api", "api.service", "http://127.0.0.1:9000/health"
	c.Incident.Problem = "http://127.0.0.1:9000/health: 502 Bad Gateway"
	c.Incident.Since = t0.Add(-5 * time.Minute)
	return notify.NewDigest([]*notify.Message{a, b, c})
}

func TestDigestEmail(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	d := sampleDigest()
	mustNotify(t, e, d)
	mustNotify(t, e, d) // a retry after a lost answer
	msgs := s.Messages()
	if len(msgs) != 2 {
		t.Fatalf("server got %d mails, want 2", len(msgs))
	}
	h := msgs[0].Header
	wantID := MessageID(d.ID, "web1.example.com")
	for k, want := range map[string]string{
		"Subject":          "[medic] DIGEST 3 incidents on web1: 2 firing, 1 resolved",
		"Message-Id":       wantID,
		"X-Medic-Kind":     "digest",
		"In-Reply-To":      "",
		"References":       "",
		"X-Medic-Incident": "",
		"X-Medic-Event":    "",
		"Auto-Submitted":   "auto-generated",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if got := msgs[1].Header.Get("Message-Id"); got != wantID {
		t.Errorf("resent digest has Message-ID %q, want %q", got, wantID)
	}
	if !msgIDRe.MatchString(wantID) {
		t.Errorf("digest Message-ID %q is not an RFC 5322 msg-id", wantID)
	}

	text, err := msgs[0].Text()
	if err != nil {
		t.Fatal(err)
	}
	text = strings.ReplaceAll(text, "\r\n", "\n") // as sent over SMTP
	lines := strings.Split(text, "\n")
	for _, want := range []string{
		"DIGEST 3 incidents on web1: 2 firing, 1 resolved",
		"  FIRING    my-app.service  since 2026-11-21T08:00:00Z  127.0.0.1:8080 connection refused; cause: backend crashed",
		"  FIRING    worker.service  since 2026-11-21T08:00:00Z  unix:/run/worker.sock connection refused",
		"  RESOLVED  api.service     since 2026-11-21T07:55:00Z  http://127.0.0.1:9000/health: 502 Bad Gateway; cause: backend crashed",
		"=== 1/3 my-app.service on web1: FIRING: 127.0.0.1:8080 connection refused; the restart job was done, but the probes did not pass within verify_timeout",
		"    incident my-app-20261121T080000.123Z; message my-app-20261121T080000.123Z.1",
		"=== 3/3 api.service on web1: resolved after 17m3s",
		"  Check:    my-app",
		"  Check:    worker",
		"  ✗ backend running  my-app.service: failed/failed, result exit-code, main process exited, status 1",
		"  Nov 21 08:00:37 web1 my-app[4242]: panic: config: missing DATABASE_URL",
		"Host: web1; medic 1.4.2; digest " + d.ID,
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
	if n := strings.Count(text, "\nWhat failed\n"); n != 3 {
		t.Errorf("%d member details, want 3:\n%s", n, text)
	}
	html, err := msgs[0].HTML()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"1/3 my-app.service on web1", "3/3 api.service on web1", "worker.service", "digest digest-my-app-20261121T080000.123Z.1"} {
		if !strings.Contains(html, want) {
			t.Errorf("html lacks %q", want)
		}
	}
	if n := strings.Count(html, ">What failed</h3>"); n != 3 {
		t.Errorf("html has %d member details, want 3", n)
	}
}

// TestExampleDigest keeps testdata/example-digest.eml, the digest of
// sampleDigest as sent, for review (go test -run TestExampleDigest -update
// rewrites it).
func TestExampleDigest(t *testing.T) {
	d := sampleDigest()
	msg, err := Render(d, sampleConfig())
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
	text, _, err := Bodies(d)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, k := range []string{"Date", "From", "To", "Subject", "Message-ID", "Auto-Submitted", "Precedence",
		"X-Auto-Response-Suppress", "X-Medic-Kind", "User-Agent", "MIME-Version"} {
		v := parsed.Header[textproto.CanonicalMIMEHeaderKey(k)]
		if len(v) != 1 {
			t.Fatalf("header %s: %q, want one value", k, v)
		}
		b.WriteString(k + ": " + v[0] + "\n")
	}
	b.WriteString("Content-Type: text/plain; charset=UTF-8\n\n")
	b.WriteString(text)
	got := b.String()
	path := filepath.Join("testdata", "example-digest.eml")
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
