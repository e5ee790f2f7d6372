package outbox_test

// Notifier faults through the real outbox with the real email and webhook
// notifiers: an SMTP server that refuses connections, hangs after EHLO or
// answers 4xx/5xx, and a webhook endpoint that hangs, resets the connection
// or answers 500. Each attempt is bounded by the notifier's timeout, retried
// as designed, and every message reaches the receiver exactly once (by
// Message-ID / webhook-id), in order, leaving the outbox empty.

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/email"
	"github.com/medic-watchdog/medic/notify/outbox"
	"github.com/medic-watchdog/medic/notify/webhook"
)

// faultMessages returns n messages of one incident: a firing message,
// reminders and a resolved one.
func faultMessages(n int) []*notify.Message {
	since := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	inc := notify.Incident{ID: "my-app-20261121T080000.000Z", Check: "my-app", Unit: "my-app.service", Host: "web1", Since: since}
	out := make([]*notify.Message, n)
	for i := range n {
		kind, ev := notify.Reminder, notify.VerifyFailed
		switch i {
		case 0:
			kind = notify.Firing
		case n - 1:
			kind, ev = notify.Resolved, notify.EventResolved
		}
		out[i] = &notify.Message{ID: fmt.Sprintf("%s.%d", inc.ID, i+1), Kind: kind, Event: ev, At: since.Add(time.Duration(i) * time.Minute), Version: "test", Incident: inc}
	}
	return out
}

// runOutbox opens the outbox in a temp dir for n with fast retries, enqueues
// msgs and runs it until the test ends. It returns the outbox and its dir.
func runOutbox(t *testing.T, n notify.Notifier, msgs []*notify.Message) (*outbox.Outbox, string) {
	t.Helper()
	dir := t.TempDir()
	ob, err := outbox.Open(outbox.Options{Dir: dir, Backoff: 50 * time.Millisecond, BackoffMax: 200 * time.Millisecond,
		Log: zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))}, []notify.Notifier{n})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		if err := ob.Enqueue(n.Name(), m); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ob.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Errorf("outbox Run did not return within 10s of cancel")
		}
	})
	return ob, dir
}

// waitOutbox polls the outbox's single queue until cond holds.
func waitOutbox(t *testing.T, ob *outbox.Outbox, timeout time.Duration, cond func(outbox.Stat) bool, what string) outbox.Stat {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		st := ob.Stats()[0]
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s: %+v", timeout, what, st)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// assertEmpty checks that nothing is pending, in memory or on disk.
func assertEmpty(t *testing.T, ob *outbox.Outbox, dir, notifier string) {
	t.Helper()
	if st := ob.Stats()[0]; st.Pending != 0 {
		t.Errorf("outbox still has %d pending: %+v", st.Pending, st)
	}
	files, _ := filepath.Glob(filepath.Join(dir, notifier, "*.json"))
	if len(files) != 0 {
		t.Errorf("message files left in the outbox: %v", files)
	}
}

func newFaultEmail(t *testing.T, s *smtptest.Server, sendTimeout time.Duration) *email.Email {
	t.Helper()
	e, err := email.New(email.Config{
		Name: "ops-email", Host: s.Host(), Port: s.Port(), TLS: email.TLSStartTLS,
		Username: "medic@example.com", Password: "pw-faults",
		From: "medic@example.com", To: []string{"ops@example.com"},
		Hostname: "web1.example.com", RootCAs: s.CertPool(),
		ConnectTimeout: time.Second, SendTimeout: sendTimeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// mailIDs returns the Message-IDs of the accepted mails, in order.
func mailIDs(s *smtptest.Server) []string {
	var ids []string
	for _, m := range s.Messages() {
		ids = append(ids, m.Header.Get("Message-Id"))
	}
	return ids
}

func wantMailIDs(msgs []*notify.Message) []string {
	var ids []string
	for _, m := range msgs {
		ids = append(ids, email.MessageID(m.ID, "web1.example.com"))
	}
	return ids
}

// TestFaultSMTP delivers an incident's messages through the outbox and the
// email notifier while the SMTP server is down, hangs after EHLO, or
// rejects with 4xx: every attempt ends within the send timeout, the outbox
// retries, and the server accepts every message exactly once, in order.
// A 5xx rejection is permanent: that message goes to failed/ and the rest
// are delivered.
func TestFaultSMTP(t *testing.T) {
	const sendTimeout = 500 * time.Millisecond
	for _, tc := range []struct {
		name   string
		inject func(s *smtptest.Server)
		heal   func(s *smtptest.Server)
	}{
		{"refused", func(s *smtptest.Server) {
			if err := s.Down(); err != nil {
				t.Fatal(err)
			}
		}, func(s *smtptest.Server) {
			if err := s.Up(); err != nil {
				t.Fatal(err)
			}
		}},
		// The server stops answering after EHLO; it comes back while an
		// attempt waits for the EHLO reply, which is then 421 (smtptest
		// answers a held session so): a temporary failure.
		{"hang after EHLO", func(s *smtptest.Server) { s.HangAfterEHLO(true) }, func(s *smtptest.Server) {
			n := s.Connections()
			deadline := time.Now().Add(5 * time.Second)
			for s.Connections() == n && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // well inside the send timeout
			s.HangAfterEHLO(false)
		}},
		{"451 greylisted", func(s *smtptest.Server) { s.RejectNext(1000, 451, "greylisted, try again later") }, func(s *smtptest.Server) { s.RejectNext(0, 0, "") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{Username: "medic@example.com", Password: "pw-faults"})
			msgs := faultMessages(3)
			tc.inject(s)
			ob, dir := runOutbox(t, newFaultEmail(t, s, sendTimeout), msgs)

			// Three failed attempts, each bounded by the send timeout.
			start := time.Now()
			st := waitOutbox(t, ob, 10*time.Second, func(st outbox.Stat) bool { return st.LastError != "" }, "a failed attempt")
			if took := time.Since(start); took > sendTimeout+2*time.Second {
				t.Errorf("first failed attempt reported after %s, send timeout %s", took, sendTimeout)
			}
			t.Logf("attempt failed: %s", st.LastError)
			time.Sleep(600 * time.Millisecond) // more attempts, with backoff
			if got := len(s.Messages()); got != 0 {
				t.Fatalf("%d mails accepted during the fault", got)
			}
			tc.heal(s)
			waitOutbox(t, ob, 15*time.Second, func(st outbox.Stat) bool { return st.Delivered+uint64(st.Failed) == uint64(len(msgs)) }, "every message to be delivered")
			time.Sleep(300 * time.Millisecond) // room for a wrong resend
			if st := ob.Stats()[0]; st.Failed != 0 {
				t.Errorf("%d message(s) moved to failed/ after a temporary fault (last error: %s)", st.Failed, st.LastError)
			}
			if got, want := mailIDs(s), wantMailIDs(msgs); !slices.Equal(got, want) {
				t.Errorf("accepted Message-IDs %v, want each once, in order: %v", got, want)
			}
			assertEmpty(t, ob, dir, "ops-email")
		})
	}

	t.Run("554 rejected for good", func(t *testing.T) {
		s := smtptest.Start(t, smtptest.Options{Username: "medic@example.com", Password: "pw-faults"})
		msgs := faultMessages(3)
		s.RejectNext(1, 554, "rejected by policy")
		ob, dir := runOutbox(t, newFaultEmail(t, s, sendTimeout), msgs)
		st := waitOutbox(t, ob, 15*time.Second, func(st outbox.Stat) bool { return st.Delivered == 2 && st.Failed == 1 }, "one failed and two delivered")
		if st.Pending != 0 {
			t.Errorf("stats %+v", st)
		}
		if got, want := mailIDs(s), wantMailIDs(msgs[1:]); !slices.Equal(got, want) {
			t.Errorf("accepted Message-IDs %v, want %v", got, want)
		}
		failed, _ := filepath.Glob(filepath.Join(dir, "ops-email", outbox.FailedDir, "*.json"))
		if len(failed) != 1 {
			t.Fatalf("failed/ holds %v, want the rejected message", failed)
		}
		if b, err := os.ReadFile(failed[0]); err != nil || !containsAll(string(b), msgs[0].ID, "554") {
			t.Errorf("failed record %s lacks the message id or the 554 reply (%v)", b, err)
		}
		assertEmpty(t, ob, dir, "ops-email")
	})
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// hookReceiver is a webhook endpoint with a script of faults: each request
// takes the next fault ("hang", "reset", "500"), and "" accepts it. It
// records the webhook-id of every request and of every accepted one.
type hookReceiver struct {
	mu       sync.Mutex
	script   []string
	seen     []string
	accepted []string
	release  chan struct{}
}

func (h *hookReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	id := r.Header.Get("webhook-id")
	h.seen = append(h.seen, id)
	fault := ""
	if len(h.script) > 0 {
		fault, h.script = h.script[0], h.script[1:]
	}
	if fault == "" {
		h.accepted = append(h.accepted, id)
	}
	h.mu.Unlock()
	switch fault {
	case "hang":
		select {
		case <-r.Context().Done():
		case <-h.release:
		}
	case "reset":
		c, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			panic(err)
		}
		c.(*net.TCPConn).SetLinger(0) // close with RST
		c.Close()
	case "500":
		http.Error(w, "database is down", http.StatusInternalServerError)
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

func (h *hookReceiver) record() (seen, accepted []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.seen), slices.Clone(h.accepted)
}

// TestFaultWebhook delivers an incident's messages through the outbox and
// the webhook notifier to an endpoint that first hangs, then resets the
// connection, then answers 500, then accepts: each hanging attempt ends at
// the notifier's timeout, every attempt of the first message carries the
// same webhook-id, and the receiver accepts every message exactly once, in
// order.
func TestFaultWebhook(t *testing.T) {
	const timeout = 300 * time.Millisecond
	recv := &hookReceiver{script: []string{"hang", "hang", "reset", "500", "", "reset", ""}, release: make(chan struct{})}
	srv := httptest.NewServer(recv)
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(recv.release) })
	wh, err := webhook.New(webhook.Config{Name: "hook", URL: srv.URL, Secret: []byte("0123456789abcdef0123456789"), Format: "json", Timeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	msgs := faultMessages(3)
	start := time.Now()
	ob, dir := runOutbox(t, wh, msgs)
	waitOutbox(t, ob, 15*time.Second, func(st outbox.Stat) bool { return st.Delivered == uint64(len(msgs)) }, "every message to be delivered")
	took := time.Since(start)
	time.Sleep(300 * time.Millisecond) // room for a wrong resend

	seen, accepted := recv.record()
	t.Logf("delivered %d messages in %s; requests: %v", len(msgs), took.Round(time.Millisecond), seen)
	var want []string
	for _, m := range msgs {
		want = append(want, m.ID)
	}
	if !slices.Equal(accepted, want) {
		t.Errorf("accepted webhook-ids %v, want each once, in order: %v", accepted, want)
	}
	// The first message: hang, hang, reset, 500, accepted: five attempts,
	// one id. The second: reset, accepted. The third: accepted.
	wantSeen := []string{want[0], want[0], want[0], want[0], want[0], want[1], want[1], want[2]}
	if !slices.Equal(seen, wantSeen) {
		t.Errorf("requests %v, want %v", seen, wantSeen)
	}
	// Two hangs bounded by the timeout, plus backoffs of at most 200ms
	// each: far below what unbounded attempts would take.
	if limit := 2*timeout + 6*200*time.Millisecond + 3*time.Second; took > limit {
		t.Errorf("delivery took %s, want under %s with a %s timeout", took, limit, timeout)
	}
	if st := ob.Stats()[0]; st.Failed != 0 {
		t.Errorf("stats %+v: nothing may be failed", st)
	}
	assertEmpty(t, ob, dir, "hook")
}
