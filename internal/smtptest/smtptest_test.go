package smtptest_test

import (
	"bufio"
	"crypto/hmac"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/medic-watchdog/medic/internal/smtptest"
)

const rawMessage = "From: medic@example.com\r\n" +
	"To: ops@example.com\r\n" +
	"Subject: hello\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/alternative; boundary=BOUND\r\n" +
	"\r\n" +
	"--BOUND\r\n" +
	"Content-Type: text/plain; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: quoted-printable\r\n" +
	"\r\n" +
	"caf=C3=A9 is =\r\nopen\r\n" +
	"--BOUND\r\n" +
	"Content-Type: text/html; charset=UTF-8\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"\r\n" +
	"PHA+aGk8L3A+\r\n" +
	"--BOUND--\r\n"

// cramMD5 is a CRAM-MD5 client, which go-sasl does not provide.
type cramMD5 struct{ user, pass string }

func (c cramMD5) Start() (string, []byte, error) { return "CRAM-MD5", nil, nil }
func (c cramMD5) Next(challenge []byte) ([]byte, error) {
	mac := hmac.New(md5.New, []byte(c.pass))
	mac.Write(challenge)
	return []byte(c.user + " " + hex.EncodeToString(mac.Sum(nil))), nil
}

func send(t *testing.T, s *smtptest.Server, auth sasl.Client) error {
	t.Helper()
	c, err := smtp.DialStartTLS(s.Addr(), s.TLSConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return err
		}
	}
	return c.SendMail("medic@example.com", []string{"ops@example.com", "oncall@example.com"}, strings.NewReader(rawMessage))
}

func TestStartTLSAuthDelivers(t *testing.T) {
	for _, tc := range []struct {
		mech string
		auth sasl.Client
	}{
		{smtptest.Plain, sasl.NewPlainClient("", "medic", "s3cret")},
		{smtptest.Login, sasl.NewLoginClient("medic", "s3cret")},
		{smtptest.CramMD5, cramMD5{"medic", "s3cret"}},
	} {
		t.Run(tc.mech, func(t *testing.T) {
			s := smtptest.Start(t, smtptest.Options{Username: "medic", Password: "s3cret"})
			if err := send(t, s, tc.auth); err != nil {
				t.Fatalf("send: %v", err)
			}
			msgs := s.Messages()
			if len(msgs) != 1 {
				t.Fatalf("got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.From != "medic@example.com" || strings.Join(m.To, ",") != "ops@example.com,oncall@example.com" {
				t.Errorf("envelope = %q -> %q", m.From, m.To)
			}
			if !m.TLS || m.Mechanism != tc.mech || m.Username != "medic" {
				t.Errorf("TLS=%v Mechanism=%q Username=%q", m.TLS, m.Mechanism, m.Username)
			}
			if got := m.Header.Get("Subject"); got != "hello" {
				t.Errorf("Subject = %q", got)
			}
			if txt, err := m.Text(); err != nil || txt != "café is open" {
				t.Errorf("Text() = %q, %v", txt, err)
			}
			if html, err := m.HTML(); err != nil || html != "<p>hi</p>" {
				t.Errorf("HTML() = %q, %v", html, err)
			}
			if a := s.AuthAttempts(); len(a) != 1 || !a[0].OK || a[0].Mechanism != tc.mech {
				t.Errorf("AuthAttempts() = %+v", a)
			}
		})
	}
}

func TestWrongPasswordIs535(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "medic", Password: "s3cret"})
	err := send(t, s, sasl.NewPlainClient("", "medic", "wrong"))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 535 {
		t.Fatalf("err = %v, want a 535", err)
	}
	if len(s.Messages()) != 0 {
		t.Error("message accepted")
	}
	if a := s.AuthAttempts(); len(a) != 1 || a[0].OK {
		t.Errorf("AuthAttempts() = %+v", a)
	}
}

func TestAuthRequired(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Username: "medic", Password: "s3cret"})
	err := send(t, s, nil)
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 530 {
		t.Fatalf("err = %v, want a 530", err)
	}
}

func TestRejectNext(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	s.RejectNext(2, 451, "try later")
	for i := range 2 {
		err := send(t, s, nil)
		var se *smtp.SMTPError
		if !errors.As(err, &se) || se.Code != 451 {
			t.Fatalf("attempt %d: err = %v, want a 451", i, err)
		}
	}
	if err := send(t, s, nil); err != nil {
		t.Fatalf("third attempt: %v", err)
	}
	s.RejectNext(1, 554, "no")
	var se *smtp.SMTPError
	if err := send(t, s, nil); !errors.As(err, &se) || se.Code != 554 {
		t.Fatalf("err = %v, want a 554", err)
	}
	if n := len(s.Messages()); n != 1 {
		t.Errorf("got %d messages, want 1", n)
	}
}

func TestDownUpSamePort(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Mode: smtptest.NoTLS})
	addr := s.Addr()
	if err := s.Down(); err != nil {
		t.Fatalf("Down: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatal("dial succeeded while down")
	}
	if err := s.Up(); err != nil {
		t.Fatalf("Up: %v", err)
	}
	if s.Addr() != addr {
		t.Fatalf("Addr changed from %s to %s", addr, s.Addr())
	}
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatalf("dial after Up: %v", err)
	}
	defer c.Close()
	if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(rawMessage)); err != nil {
		t.Fatalf("send after Up: %v", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("NoTLS server offers STARTTLS")
	}
}

func TestHangAfterEHLO(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{})
	s.HangAfterEHLO(true)
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
		t.Fatalf("greeting = %q, %v", line, err)
	}
	if _, err := c.Write([]byte("EHLO client\r\n")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	var ne net.Error
	if line, err := r.ReadString('\n'); !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("EHLO answered: %q, %v", line, err)
	}
	s.HangAfterEHLO(false)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "421") {
		t.Fatalf("after release: %q, %v", line, err)
	}
}

func TestImplicitTLS(t *testing.T) {
	s := smtptest.Start(t, smtptest.Options{Mode: smtptest.ImplicitTLS, Username: "u", Password: "p"})
	c, err := smtp.DialTLS(s.Addr(), s.TLSConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		t.Error("implicit TLS server offers STARTTLS")
	}
	if err := c.Auth(sasl.NewPlainClient("", "u", "p")); err != nil {
		t.Fatalf("auth: %v", err)
	}
	if err := c.SendMail("a@example.com", []string{"b@example.com"}, strings.NewReader(rawMessage)); err != nil {
		t.Fatalf("send: %v", err)
	}
	if m := s.Messages(); len(m) != 1 || !m[0].TLS {
		t.Fatalf("messages = %+v", m)
	}
	// The certificate does not verify for another name.
	conf := s.TLSConfig()
	conf.ServerName = "example.com"
	if c, err := tls.Dial("tcp", s.Addr(), conf); err == nil {
		c.Close()
		t.Error("handshake for example.com succeeded")
	}
}
