package email

import (
	"context"
	"errors"
	"net/textproto"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/notify"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const password = "pw-Zq8!secret"

// newEmail makes a notifier for s; edit changes the config first.
func newEmail(t *testing.T, s *smtptest.Server, tlsMode string, edit func(*Config)) *Email {
	t.Helper()
	cfg := Config{
		Name: "ops-email", Host: s.Host(), Port: s.Port(), TLS: tlsMode,
		Username: "medic@example.com", Password: password,
		From: "medic@example.com", To: []string{"ops@example.com", "oncall@example.com"},
		Hostname: "web1.example.com", RootCAs: s.CertPool(),
		ConnectTimeout: 2 * time.Second, SendTimeout: 5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return e
}

func authServer(t *testing.T, opts smtptest.Options) *smtptest.Server {
	opts.Username, opts.Password = "medic@example.com", password
	return smtptest.Start(t, opts)
}

func mustNotify(t *testing.T, e *Email, m *notify.Message) {
	t.Helper()
	retry, err := e.Notify(context.Background(), m)
	if err != nil {
		t.Fatalf("Notify(%s): retry=%v err=%v", m.ID, retry, err)
	}
}

func TestStartTLSAuthDelivers(t *testing.T) {
	for _, tc := range []struct{ auth, offer, want string }{
		{"plain", "", smtptest.Plain},
		{"login", "", smtptest.Login},
		{"cram-md5", "", smtptest.CramMD5},
		{"", smtptest.Plain, smtptest.Plain},
		{"auto", smtptest.Login, smtptest.Login},
		{"", "", smtptest.CramMD5}, // auto prefers challenge-response
	} {
		t.Run(tc.auth+"/"+tc.offer, func(t *testing.T) {
			opts := smtptest.Options{}
			if tc.offer != "" {
				opts.Mechanisms = []string{tc.offer}
			}
			s := authServer(t, opts)
			e := newEmail(t, s, "starttls", func(c *Config) { c.Auth = tc.auth })
			m1 := sample(notify.Firing, "my-app-20261121T080000.123Z", "1")
			m2 := sample(notify.Firing, "other-20261121T090000.000Z", "1")
			mustNotify(t, e, m1)
			mustNotify(t, e, m2)

			got := s.Messages()
			if len(got) != 2 {
				t.Fatalf("server has %d messages, want 2", len(got))
			}
			r := got[0]
			if !r.TLS || r.Mechanism != tc.want || r.Username != "medic@example.com" {
				t.Errorf("TLS=%v Mechanism=%q Username=%q, want TLS with %s", r.TLS, r.Mechanism, r.Username, tc.want)
			}
			if r.Helo != "web1.example.com" {
				t.Errorf("EHLO name = %q", r.Helo)
			}
			if r.From != "medic@example.com" || !slices.Equal(r.To, []string{"ops@example.com", "oncall@example.com"}) {
				t.Errorf("envelope %q -> %q", r.From, r.To)
			}
			h := r.Header
			if got, want := h.Get("Subject"), m1.Subject(); got != want {
				t.Errorf("Subject = %q, want %q", got, want)
			}
			if got := h.Get("Message-Id"); got != "<my-app-20261121T080000.123Z.1@web1.example.com>" || !msgIDRe.MatchString(got) {
				t.Errorf("Message-ID = %q", got)
			}
			if a, b := h.Get("Message-Id"), got[1].Header.Get("Message-Id"); a == b || !msgIDRe.MatchString(b) {
				t.Errorf("Message-IDs %q and %q", a, b)
			}
			for k, want := range map[string]string{
				"Auto-Submitted":   "auto-generated",
				"Precedence":       "bulk",
				"X-Medic-Incident": "my-app-20261121T080000.123Z",
				"X-Medic-Event":    "verify_failed",
				"From":             "<medic@example.com>",
				"To":               "<ops@example.com>, <oncall@example.com>",
				"Date":             "Sat, 21 Nov 2026 08:02:15 +0000",
			} {
				if got := h.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if ct := h.Get("Content-Type"); !strings.HasPrefix(ct, "multipart/alternative;") {
				t.Errorf("Content-Type = %q", ct)
			}
			text, err := r.Text()
			if err != nil {
				t.Fatal(err)
			}
			html, err := r.HTML()
			if err != nil {
				t.Fatal(err)
			}
			for _, fact := range []string{
				"my-app.service", "127.0.0.1:8080 connection refused", "backend crashed", "exit-code",
				"exited, status 1", "first failed probe", "restart 1", "job done", "verify failed",
				"missing DATABASE_URL", "1.4.2", "web1", "2026-11-21T08:00:00Z", "2m15s",
			} {
				if !strings.Contains(text, fact) {
					t.Errorf("text/plain lacks %q", fact)
				}
				if !strings.Contains(html, fact) {
					t.Errorf("text/html lacks %q", fact)
				}
			}
		})
	}
}

func TestIncidentThreading(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	a := "my-app-20261121T080000.123Z"
	mustNotify(t, e, sample(notify.Firing, a, "1"))
	mustNotify(t, e, sample(notify.Reminder, a, "2"))
	mustNotify(t, e, sample(notify.Resolved, a, "3"))
	mustNotify(t, e, sample(notify.Firing, "db-20261121T083000.000Z", "1"))

	msgs := s.Messages()
	if len(msgs) != 4 {
		t.Fatalf("got %d messages", len(msgs))
	}
	root := "<my-app-20261121T080000.123Z@web1.example.com>"
	ids := map[string]bool{}
	for i, m := range msgs[:3] {
		if irt, refs := m.Header.Get("In-Reply-To"), m.Header.Get("References"); irt != root || refs != root {
			t.Errorf("message %d: In-Reply-To %q References %q, want %q", i, irt, refs, root)
		}
		ids[m.Header.Get("Message-Id")] = true
	}
	if len(ids) != 3 || ids[root] {
		t.Errorf("Message-IDs %v not distinct from each other and the root", ids)
	}
	other := msgs[3].Header
	if other.Get("In-Reply-To") == root || other.Get("References") == root ||
		other.Get("In-Reply-To") != "<db-20261121T083000.000Z@web1.example.com>" {
		t.Errorf("other incident threads as In-Reply-To %q References %q", other.Get("In-Reply-To"), other.Get("References"))
	}
	if got := msgs[1].Header.Get("X-Medic-Kind"); got != "reminder" {
		t.Errorf("X-Medic-Kind = %q", got)
	}
}

func TestSameMessageSameMessageID(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	m := sample(notify.Firing, "my-app-20261121T080000.123Z", "1")
	mustNotify(t, e, m)
	mustNotify(t, e, m)
	msgs := s.Messages()
	if a, b := msgs[0].Header.Get("Message-Id"), msgs[1].Header.Get("Message-Id"); a != b {
		t.Errorf("resent message has Message-ID %q, first %q", b, a)
	}
}

func TestHeaderInjection(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	m := sample(notify.Firing, "my-app-20261121T080000.123Z\r\nBcc: evil@example.net", "1")
	m.Incident.Problem = "refused\r\nBcc: evil@example.net\r\nX-Evil: 1"
	m.Incident.Host = "web1\nBcc: evil@example.net"
	m.Incident.Timeline[0].Detail = "x\r\n\r\nBcc: evil@example.net"
	m.Incident.Journal = append(m.Incident.Journal, "\r\nBcc: evil@example.net", "\x1b[31mred\x1b[0m")
	m.Version = "1.0\r\nBcc: evil@example.net"
	mustNotify(t, e, m)

	r := s.Messages()[0]
	if !slices.Equal(r.To, []string{"ops@example.com", "oncall@example.com"}) {
		t.Errorf("envelope recipients = %q", r.To)
	}
	want := []string{"Auto-Submitted", "Content-Type", "Date", "From", "In-Reply-To", "Message-Id", "Mime-Version",
		"Precedence", "References", "Subject", "To", "User-Agent", "X-Auto-Response-Suppress", "X-Mailer",
		"X-Medic-Event", "X-Medic-Incident", "X-Medic-Kind"}
	var keys []string
	for k, v := range r.Header {
		keys = append(keys, k)
		if len(v) != 1 {
			t.Errorf("header %s appears %d times", k, len(v))
		}
	}
	slices.Sort(keys)
	if !slices.Equal(keys, want) {
		t.Errorf("headers = %q, want %q", keys, want)
	}
	head, _, _ := strings.Cut(string(r.Data), "\r\n\r\n")
	if strings.Contains(head, "\nBcc:") || strings.Contains(head, "\nX-Evil") {
		t.Errorf("a Bcc or X-Evil line got into the header:\n%s", head)
	}
	text, _ := r.Text()
	if strings.Contains(text, "\x1b") {
		t.Error("terminal escape in text body")
	}
}

func TestStartTLSRequired(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Mode: smtptest.NoTLS})
	e := newEmail(t, s, "starttls", func(c *Config) { c.Username, c.Password = "", "" })
	retry, err := e.Notify(context.Background(), sample(notify.Firing, "i", "1"))
	// Nothing is sent in clear text; the message stays queued (retry) so
	// that a server whose EHLO failed for a moment gets it later.
	if err == nil || !retry || !errors.Is(err, ErrNoStartTLS) {
		t.Fatalf("Notify = %v, %v; want retry and ErrNoStartTLS", retry, err)
	}
	if !strings.Contains(err.Error(), "does not offer STARTTLS") {
		t.Errorf("error %q does not say STARTTLS is missing", err)
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages sent in clear text", n)
	}
}

func TestTLSNoneOnLoopback(t *testing.T) {
	s := authServer(t, smtptest.Options{Mode: smtptest.NoTLS, AllowInsecureAuth: true, Mechanisms: []string{smtptest.Plain}})
	e := newEmail(t, s, "none", nil)
	mustNotify(t, e, sample(notify.Firing, "i", "1"))
	if r := s.Messages()[0]; r.TLS || r.Mechanism != smtptest.Plain {
		t.Errorf("TLS=%v Mechanism=%q", r.TLS, r.Mechanism)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := authServer(t, smtptest.Options{Mode: smtptest.ImplicitTLS, Mechanisms: []string{smtptest.Plain}})
	e := newEmail(t, s, "tls", nil)
	mustNotify(t, e, sample(notify.Firing, "i", "1"))
	if r := s.Messages()[0]; !r.TLS || r.Mechanism != smtptest.Plain {
		t.Errorf("TLS=%v Mechanism=%q", r.TLS, r.Mechanism)
	}
}

func TestUntrustedCertificate(t *testing.T) {
	for _, mode := range []string{"starttls", "tls"} {
		t.Run(mode, func(t *testing.T) {
			m := smtptest.StartTLS
			if mode == "tls" {
				m = smtptest.ImplicitTLS
			}
			s := authServer(t, smtptest.Options{Mode: m})
			e := newEmail(t, s, mode, func(c *Config) { c.RootCAs = nil })
			retry, err := e.Notify(context.Background(), sample(notify.Firing, "i", "1"))
			if err == nil || retry {
				t.Fatalf("Notify = %v, %v; want a TLS error without retry", retry, err)
			}
			if !strings.Contains(err.Error(), "certificate") {
				t.Errorf("error %q does not mention the certificate", err)
			}
		})
	}
}

func TestWrongPassword(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "medic@example.com", Password: "right"})
	for _, auth := range []string{"plain", "login", "cram-md5"} {
		e := newEmail(t, s, "starttls", func(c *Config) { c.Auth = auth })
		retry, err := e.Notify(context.Background(), sample(notify.Firing, "i", "1"))
		var te *textproto.Error
		if err == nil || retry || !errors.As(err, &te) || te.Code != 535 {
			t.Fatalf("%s: Notify = %v, %v; want a 535 without retry", auth, retry, err)
		}
		if strings.Contains(err.Error(), password) {
			t.Errorf("%s: error contains the password: %v", auth, err)
		}
	}
	if n := len(s.Messages()); n != 0 {
		t.Errorf("%d messages accepted", n)
	}
}

func TestRedact(t *testing.T) {
	err := redact(errors.Join(errors.New("auth "+password+" failed"), ErrNoStartTLS), password)
	if strings.Contains(err.Error(), password) || !errors.Is(err, ErrNoStartTLS) {
		t.Errorf("redact = %q", err)
	}
}

func TestRejectTemporaryAndPermanent(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	m := sample(notify.Firing, "i", "1")

	s.RejectNext(1, 451, "greylisted, try again later")
	retry, err := e.Notify(context.Background(), m)
	if err == nil || !retry || !strings.Contains(err.Error(), "451") {
		t.Fatalf("451: Notify = %v, %v; want retry", retry, err)
	}
	s.RejectNext(1, 554, "rejected by policy")
	retry, err = e.Notify(context.Background(), m)
	if err == nil || retry || !strings.Contains(err.Error(), "554") {
		t.Fatalf("554: Notify = %v, %v; want no retry", retry, err)
	}
	mustNotify(t, e, m)
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages accepted, want 1", n)
	}
}

func TestServerDownThenUp(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	if err := s.Down(); err != nil {
		t.Fatal(err)
	}
	m := sample(notify.Firing, "i", "1")
	retry, err := e.Notify(context.Background(), m)
	if err == nil || !retry {
		t.Fatalf("down: Notify = %v, %v; want retry", retry, err)
	}
	if want := "connect to smtp 127.0.0.1:" + strconv.Itoa(s.Port()) + ": "; !strings.HasPrefix(err.Error(), want) ||
		!strings.Contains(err.Error(), "connection refused") {
		t.Errorf("error %q, want %q... connection refused", err, want)
	}
	if err := s.Up(); err != nil {
		t.Fatal(err)
	}
	mustNotify(t, e, m)
	if n := len(s.Messages()); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestServerHangsAfterEHLO(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	s.HangAfterEHLO(true)
	e := newEmail(t, s, "starttls", func(c *Config) { c.SendTimeout = 500 * time.Millisecond })
	start := time.Now()
	retry, err := e.Notify(context.Background(), sample(notify.Firing, "i", "1"))
	took := time.Since(start)
	if err == nil || !retry {
		t.Fatalf("Notify = %v, %v; want retry", retry, err)
	}
	if took > 2*time.Second {
		t.Errorf("Notify took %s with a send timeout of 500ms", took)
	}
	if !strings.Contains(err.Error(), "send timeout 500ms exceeded") {
		t.Errorf("error %q does not name the send timeout", err)
	}
	s.HangAfterEHLO(false)
}

func TestContextCancelled(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	s.HangAfterEHLO(true)
	e := newEmail(t, s, "starttls", func(c *Config) { c.SendTimeout = time.Minute })
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	retry, err := e.Notify(ctx, sample(notify.Firing, "i", "1"))
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Notify took %s after cancel", took)
	}
	if err == nil || !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("Notify = %v, %v; want retry and context.Canceled", retry, err)
	}
	s.HangAfterEHLO(false)

	// Already cancelled: no connection at all.
	n := s.Connections()
	retry, err = e.Notify(ctx, sample(notify.Firing, "i", "1"))
	if err == nil || !retry || !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled ctx: Notify = %v, %v", retry, err)
	}
	if s.Connections() != n {
		t.Error("connected with a cancelled context")
	}
}

func TestNewValidates(t *testing.T) {
	_, err := New(Config{
		Name: "x", Host: "smtp example", Port: 70000, TLS: "ssl", Auth: "ntlm",
		Password: "hunter2-secret", From: "not an address", To: []string{"ok@example.com", "bad"},
		SendTimeout: -1,
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"host \"smtp example\"", "port 70000", "tls \"ssl\"", "auth \"ntlm\"",
		"password is set but username is empty", "parse from", "parse to \"bad\"", "send timeout"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "hunter2-secret") {
		t.Errorf("error contains the password: %v", err)
	}

	e, err := New(Config{Name: "x", Host: "smtp.example.com", TLS: "TLS", From: "a@example.com", To: []string{"b@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	c := e.Config()
	if c.Port != 465 || c.Auth != AuthAuto || c.SendTimeout != DefaultSendTimeout || c.ConnectTimeout != DefaultConnectTimeout || c.Hostname == "" {
		t.Errorf("defaults not filled in: %+v", c)
	}
	if e.Name() != "x" {
		t.Errorf("Name() = %q", e.Name())
	}
}
