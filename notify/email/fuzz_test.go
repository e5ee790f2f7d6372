package email

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

// FuzzSMTPReplies feeds arbitrary server bytes to medic's SMTP client.
// Each input is what a server sends: it is read reply by reply with
// net/textproto through a replyReader, as go-mail reads replies, and no
// reply textproto returns may be past the limits; then it is the server's
// side of whole sessions (greeting, EHLO, STARTTLS or AUTH,
// MAIL, RCPT, DATA, QUIT), through the same bounds as Notify. A session
// must end, without a panic; one that went past a bound fails retryable
// with *ReplyTooLargeError. The limits are small so that the fuzzer
// reaches them.
func FuzzSMTPReplies(f *testing.F) {
	small := replyLimits{line: 64, lines: 4, reply: 160}
	var notifiers []*Email
	for _, c := range []struct{ mode, user string }{{TLSNone, ""}, {TLSNone, "medic"}, {TLSStartTLS, "medic"}} {
		cfg := Config{
			Name: "fuzz", Host: "127.0.0.1", Port: 25, TLS: c.mode, Username: c.user,
			From: "medic@example.com", To: []string{"ops@example.com"}, Hostname: "web1.example.com",
		}
		if c.user != "" {
			cfg.Password = "pw"
		}
		e, err := New(cfg)
		if err != nil {
			f.Fatal(err)
		}
		notifiers = append(notifiers, e)
	}
	m := &notify.Message{ID: "i.1", Kind: notify.Test, Event: notify.EventTest,
		Incident: notify.Incident{ID: "i", Check: "c", Host: "web1", Problem: "test"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = readReplies(t, data, small)
		for _, e := range notifiers {
			msg, err := Render(m, e.cfg)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			ss := &session{limits: small}
			retry, err := e.converse(ctx, &serverBytes{r: bytes.NewReader(data)}, msg, ss)
			hung := ctx.Err()
			cancel()
			if hung != nil {
				t.Fatalf("session (tls %s) did not end within 10s: %v", e.cfg.TLS, err)
			}
			if ss.exceeded() != nil {
				var big *ReplyTooLargeError
				if err == nil || !retry || !errors.As(err, &big) {
					t.Fatalf("past a bound (tls %s): retry=%v err=%v, want retryable with *ReplyTooLargeError", e.cfg.TLS, retry, err)
				}
			}
		}
	})
}

// serverBytes is the client's end of a connection to a server that sends
// r, then ends its side (reads give io.EOF); what the client writes is
// discarded.
type serverBytes struct {
	r      io.Reader
	closed bool
}

func (c *serverBytes) Read(b []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return c.r.Read(b)
}

func (c *serverBytes) Write(b []byte) (int, error) {
	if c.closed {
		return 0, net.ErrClosed
	}
	return len(b), nil
}

func (c *serverBytes) Close() error { c.closed = true; return nil }
func (c *serverBytes) LocalAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}
}
func (c *serverBytes) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 25}
}
func (c *serverBytes) SetDeadline(time.Time) error      { return nil }
func (c *serverBytes) SetReadDeadline(time.Time) error  { return nil }
func (c *serverBytes) SetWriteDeadline(time.Time) error { return nil }
