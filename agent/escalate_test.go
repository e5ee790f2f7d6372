package agent_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/notify/outbox"
	"github.com/medic-watchdog/medic/remedy"
)

// TestAlwaysFailingUnitSendsOneFiringEmail runs a unit whose ExecStart
// always fails under the real user manager, with the real email notifier,
// outbox and an SMTP server with STARTTLS and AUTH: medic restarts it until
// the budget is spent and sends exactly one firing email, which names the
// unit, its Result and its exit status.
func TestAlwaysFailingUnitSendsOneFiringEmail(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-mail-fails.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr, "ExecStart=", "ExecStart="+bin+" -listen "+addr+" -fail"))
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}

	smtp := smtptest.Start(t, smtptest.Options{Username: "medic", Password: "s3cret-pw"})
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.pem")
	pwFile := filepath.Join(dir, "smtp-password")
	if err := os.WriteFile(caFile, smtp.CertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pwFile, []byte("s3cret-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	text := fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
interval = "1s"
timeout = "300ms"

[[check]]
name = "mail-fails"
unit = %q
retry_interval = "50ms"
failures = 2
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  max_restarts = 2
  verify_timeout = "1s"
  backoff = "100ms"
  [check.escalate]
  notify = ["ops-email"]

[[notifier]]
name = "ops-email"
type = "email"
host = "127.0.0.1"
port = %d
tls = "starttls"
ca_file = %q
username = "medic"
password_file = %q
from = "medic@example.com"
to = ["ops@example.com", "oncall@example.com"]
`, dir, unit, addr, smtp.Port(), caFile, pwFile)
	cfg, err := config.Parse([]byte(text), "medic.toml")
	if err != nil {
		t.Fatal(err)
	}
	log := zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel))
	host, _ := os.Hostname()
	notifiers, err := agent.BuildNotifiers(cfg, host, log)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.Open(outbox.Options{Dir: filepath.Join(dir, "outbox"), Log: log}, notifiers)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rem := remedy.New(ctx, remedy.Dial("user"), []string{unit}, log)
	a, err := agent.New(cfg, log, rem, ob, agent.WithVersion("test"))
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() { _ = ob.Run(ctx) })
	wg.Go(func() { _ = a.Run(ctx) })
	defer func() { cancel(); wg.Wait(); rem.Close() }()

	systemdtest.WaitFor(t, 30*time.Second, func() bool {
		return a.Statuses()[0].State == "gave_up" && len(smtp.Messages()) > 0
	}, "medic to give up and mail")
	time.Sleep(1500 * time.Millisecond) // a second mail would have come by now
	msgs := smtp.Messages()
	if len(msgs) != 1 {
		t.Fatalf("got %d emails, want exactly one", len(msgs))
	}
	mail := msgs[0]
	subject := mail.Header.Get("Subject")
	if !strings.Contains(subject, "FIRING "+unit) {
		t.Errorf("subject %q does not name the unit as firing", subject)
	}
	body, err := mail.Text()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{unit, "exit-code", "status 1", "verify failed",
		"Diagnosis", "Cause:   backend crashed", "✗ backend running", "✗ port listening"} {
		if !strings.Contains(body, want) {
			t.Errorf("plain text body lacks %q:\n%s", want, body)
		}
	}
	if got := strings.Join(mail.To, ","); got != "ops@example.com,oncall@example.com" {
		t.Errorf("recipients = %s", got)
	}
}
