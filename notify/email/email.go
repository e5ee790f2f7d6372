// Package email is medic's email notifier: it sends each notify.Message as
// one multipart (text and HTML) mail over SMTP, with STARTTLS or implicit
// TLS and SMTP AUTH, threading all mails of an incident together.
package email

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/medic-watchdog/medic/notify"
)

// The values of Config.TLS.
const (
	// TLSStartTLS requires STARTTLS (RFC 3207): medic refuses to send when
	// the server does not offer it. The default; port 587 by default.
	TLSStartTLS = "starttls"
	// TLSImplicit speaks TLS from the first byte (RFC 8314); port 465 by
	// default.
	TLSImplicit = "tls"
	// TLSNone sends in clear text; port 25 by default. Only when configured.
	TLSNone = "none"
)

// The values of Config.Auth.
const (
	AuthAuto    = "auto"
	AuthPlain   = "plain"
	AuthLogin   = "login"
	AuthCramMD5 = "cram-md5"
)

// Defaults for the zero values of Config.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultSendTimeout    = 30 * time.Second
)

// Config configures an Email notifier.
type Config struct {
	// Name is the notifier's name from the configuration.
	Name string
	// Host and Port locate the SMTP server. Port 0 is 587 for "starttls",
	// 465 for "tls" and 25 for "none".
	Host string
	Port int
	// TLS is "starttls" (also for ""), "tls" or "none"; see TLSStartTLS.
	TLS string
	// Username and Password are the SMTP AUTH account; no AUTH when Username
	// is "". The password is already read (password_file or
	// $CREDENTIALS_DIRECTORY); it never appears in an error.
	Username, Password string
	// Auth is the SASL mechanism: "" or "auto" takes the best the server
	// offers (SCRAM-SHA-256, SCRAM-SHA-1, CRAM-MD5, then PLAIN or LOGIN over
	// TLS), or "plain", "login", "cram-md5". PLAIN and LOGIN are refused
	// without TLS unless the server is on the loopback.
	Auth string
	// From is the sender address, To the recipients.
	From string
	To   []string
	// ConnectTimeout bounds the TCP connect; SendTimeout the whole delivery
	// from connect to QUIT. Zero means DefaultConnectTimeout and
	// DefaultSendTimeout.
	ConnectTimeout, SendTimeout time.Duration
	// Hostname is this host's name for EHLO and the domain of Message-IDs;
	// "" is os.Hostname().
	Hostname string
	// RootCAs verifies the server's certificate; nil uses the system roots.
	RootCAs *x509.CertPool
}

// Email sends notify.Messages by SMTP. Its methods are safe for concurrent
// use; each Notify opens its own connection.
type Email struct {
	cfg  Config
	addr string
}

var _ notify.Notifier = (*Email)(nil)

// New checks cfg, fills in its defaults and returns the notifier. The error
// lists every problem found and never contains the password.
func New(cfg Config) (*Email, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	if cfg.Name == "" {
		bad("name is empty")
	}
	if cfg.Host == "" {
		bad("host is empty")
	} else if strings.ContainsFunc(cfg.Host, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("host %q contains spaces or control characters", notify.OneLine(cfg.Host))
	}
	cfg.TLS = strings.ToLower(cfg.TLS)
	defPort := 0
	switch cfg.TLS {
	case "", TLSStartTLS:
		cfg.TLS, defPort = TLSStartTLS, 587
	case TLSImplicit:
		defPort = 465
	case TLSNone:
		defPort = 25
	default:
		bad("tls %q is not one of starttls, tls, none", notify.OneLine(cfg.TLS))
	}
	if cfg.Port == 0 {
		cfg.Port = defPort
	} else if cfg.Port < 1 || cfg.Port > 65535 {
		bad("port %d is out of range 1-65535", cfg.Port)
	}
	cfg.Auth = strings.ToLower(cfg.Auth)
	switch cfg.Auth {
	case "", AuthAuto:
		cfg.Auth = AuthAuto
	case AuthPlain, AuthLogin, AuthCramMD5:
		if cfg.Username == "" {
			bad("auth %q is set but username is empty", cfg.Auth)
		}
	default:
		bad("auth %q is not one of auto, plain, login, cram-md5", notify.OneLine(cfg.Auth))
	}
	if cfg.Username != "" && cfg.Password == "" {
		bad("username is set but the password is empty")
	}
	if cfg.Username == "" && cfg.Password != "" {
		bad("a password is set but username is empty")
	}
	if strings.ContainsAny(cfg.Username, "\r\n\x00") {
		bad("username contains control characters")
	}
	if cfg.From == "" {
		bad("from is empty")
	} else if _, err := mail.ParseAddress(cfg.From); err != nil {
		bad("parse from %q: %w", notify.OneLine(cfg.From), err)
	}
	if len(cfg.To) == 0 {
		bad("to is empty")
	}
	for _, to := range cfg.To {
		if _, err := mail.ParseAddress(to); err != nil {
			bad("parse to %q: %w", notify.OneLine(to), err)
		}
	}
	if cfg.ConnectTimeout == 0 {
		cfg.ConnectTimeout = DefaultConnectTimeout
	} else if cfg.ConnectTimeout < 0 {
		bad("connect timeout %s is negative", cfg.ConnectTimeout)
	}
	if cfg.SendTimeout == 0 {
		cfg.SendTimeout = DefaultSendTimeout
	} else if cfg.SendTimeout < 0 {
		bad("send timeout %s is negative", cfg.SendTimeout)
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err != nil {
			bad("read this host's name: %w", err)
		}
		cfg.Hostname = h
	}
	if strings.ContainsFunc(cfg.Hostname, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		bad("hostname %q contains spaces or control characters", notify.OneLine(cfg.Hostname))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("email notifier %q: %w", notify.OneLine(cfg.Name), errors.Join(errs...))
	}
	cfg.To = slices.Clone(cfg.To)
	return &Email{cfg: cfg, addr: net.JoinHostPort(cfg.Host, strconv.Itoa(cfg.Port))}, nil
}

// Name is the notifier's name from the configuration.
func (e *Email) Name() string { return e.cfg.Name }

// Config returns the configuration with its defaults filled in.
func (e *Email) Config() Config { return e.cfg }

// Notify sends m as one mail to all of the configured recipients, in one
// SMTP transaction, within SendTimeout and ctx.
//
// It returns (false, nil) when the server accepted the mail. On failure,
// retry is true when trying again later can help: the server could not be
// reached or did not answer in time (connection refused, reset, timeout),
// it answered 4xx, it did not offer STARTTLS under tls = "starttls", it
// sent a reply past medic's bounds (MaxReplyLineBytes, MaxReplyLines,
// MaxReplyBytes, MaxSessionBytes; the error wraps *ReplyTooLargeError), or
// ctx ended. retry is false when it cannot: the message does not render,
// TLS fails to verify, authentication fails (535) or the server offers no
// usable mechanism, or the server answered 5xx. The error says which step
// failed and never contains the password.
func (e *Email) Notify(ctx context.Context, m *notify.Message) (retry bool, err error) {
	msg, err := Render(m, e.cfg)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeoutCause(ctx, e.cfg.SendTimeout,
		fmt.Errorf("send timeout %s exceeded", e.cfg.SendTimeout))
	defer cancel()
	retry, err = e.send(ctx, msg)
	if err != nil {
		return retry, redact(err, e.cfg.Password)
	}
	return false, nil
}

// send delivers msg: connect, TLS, EHLO, STARTTLS, AUTH, then go-mail's
// transaction (MAIL, RCPT, DATA). Each step classifies its own errors.
func (e *Email) send(ctx context.Context, msg *gomail.Msg) (retry bool, err error) {
	d := net.Dialer{Timeout: e.cfg.ConnectTimeout}
	raw, err := d.DialContext(ctx, "tcp", e.addr)
	if err != nil {
		return true, e.stepErr(ctx, "connect to smtp", err)
	}
	defer raw.Close()
	// Bound every read and write by ctx: cancellation and the deadline close
	// the connection (so the error can name context.Cause); the I/O deadline
	// is only a backstop, a little later.
	if dl, ok := ctx.Deadline(); ok {
		_ = raw.SetDeadline(dl.Add(backstop))
	}
	stop := context.AfterFunc(ctx, func() { _ = raw.Close() })
	defer stop()
	return e.converse(ctx, raw, msg, &session{limits: defaultLimits})
}

// converse runs the SMTP session over raw, which the caller closes. Every
// byte from the server passes ss's bounds (see MaxSessionBytes), every
// reply go-mail reads those of MaxReplyLineBytes, MaxReplyLines and
// MaxReplyBytes.
func (e *Email) converse(ctx context.Context, raw net.Conn, msg *gomail.Msg, ss *session) (retry bool, err error) {
	conn := ss.conn(raw, e.cfg.TLS != TLSImplicit)
	if e.cfg.TLS == TLSImplicit {
		tc := tls.Client(conn, e.tlsConfig())
		if err := tc.HandshakeContext(ctx); err != nil {
			return e.fail(ctx, ss, "tls handshake with smtp", err, retryTLS)
		}
		conn = tc
	}
	c, err := smtp.NewClient(conn, e.cfg.Host)
	if err != nil {
		return e.fail(ctx, ss, "read greeting of smtp", err, replyOr(true))
	}
	defer c.Close()
	ss.bound(c.Text)
	if err := c.Hello(e.cfg.Hostname); err != nil {
		return e.fail(ctx, ss, "send EHLO to smtp", err, replyOr(true))
	}
	if e.cfg.TLS == TLSStartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			// Retryable: the message stays in the outbox, where its last
			// error says why. A server whose EHLO failed for a moment
			// (go-mail then falls back to HELO, which lists no
			// extensions) offers STARTTLS again at the next attempt; one
			// that never does is a configuration error the operator sees
			// in `medic outbox` — either way no alert is thrown away.
			return true, fmt.Errorf("smtp %s does not offer STARTTLS, which tls = %q requires: %w",
				e.addr, TLSStartTLS, ErrNoStartTLS)
		}
		// go-mail reads the EHLO reply over TLS with a reader of its
		// own, bounded by MaxSessionBytes; later replies by MaxReply*.
		if err := c.StartTLS(e.tlsConfig()); err != nil {
			return e.fail(ctx, ss, "starttls with smtp", err, retryTLS)
		}
		ss.bound(c.Text)
	}
	if e.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return false, fmt.Errorf("smtp %s does not offer AUTH (over this connection): %w", e.addr, ErrAuthMechanism)
		}
		a := &auth{mech: e.cfg.Auth, user: e.cfg.Username, pass: e.cfg.Password, host: e.cfg.Host}
		if err := c.Auth(a); err != nil {
			if ss.exceeded() == nil && (errors.Is(err, ErrAuthMechanism) || errors.Is(err, smtp.ErrUnencrypted)) {
				return false, fmt.Errorf("authenticate to smtp %s as %q: %w", e.addr, e.cfg.Username, err)
			}
			return e.fail(ctx, ss, fmt.Sprintf("authenticate as %q to smtp", e.cfg.Username), err, replyOr(true))
		}
	}

	// go-mail runs the transaction and reports it as *gomail.SendError.
	timeout := e.cfg.SendTimeout
	if dl, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(dl), 0) + backstop
	}
	gc, err := gomail.NewClient(e.cfg.Host, gomail.WithPort(e.cfg.Port), gomail.WithTimeout(timeout),
		gomail.WithHELO(e.cfg.Hostname), gomail.WithoutNoop())
	if err != nil {
		return false, fmt.Errorf("set up smtp client: %w", err)
	}
	err = gc.SendWithSMTPClient(c, msg)
	if err != nil && !msg.IsDelivered() {
		return e.fail(ctx, ss, "send mail via smtp", err, retrySend)
	}
	// Delivered (a failing RSET after DATA does not matter). QUIT politely.
	_ = c.Quit()
	return false, nil
}

// backstop is how long after ctx's deadline the connection's own I/O
// deadline falls.
const backstop = time.Second

// ErrNoStartTLS is wrapped by Notify's error when tls = "starttls" and the
// server does not offer STARTTLS. Notify reports it as retryable.
var ErrNoStartTLS = errors.New("STARTTLS not offered")

// ErrAuthMechanism is wrapped by Notify's error when the server offers no
// AUTH mechanism medic can use under the configured auth.
var ErrAuthMechanism = errors.New("no usable AUTH mechanism")

func (e *Email) tlsConfig() *tls.Config {
	return &tls.Config{ServerName: e.cfg.Host, RootCAs: e.cfg.RootCAs, MinVersion: tls.VersionTLS12}
}

// fail returns the outcome of a step that failed with err: retryable with
// the *ReplyTooLargeError when the server went past one of the session's
// bounds (go-mail's error around it, such as its HELO fallback's, says
// nothing more), else as classify says.
func (e *Email) fail(ctx context.Context, ss *session, step string, err error,
	classify func(context.Context, error) bool) (retry bool, _ error) {
	if big := ss.exceeded(); big != nil {
		return true, e.stepErr(ctx, step, big)
	}
	return classify(ctx, err), e.stepErr(ctx, step, err)
}

// replyOr is retryReply with the default def.
func replyOr(def bool) func(context.Context, error) bool {
	return func(ctx context.Context, err error) bool { return retryReply(ctx, err, def) }
}

// stepErr names the failed step and the server; when ctx ended it adds
// context.Cause(ctx), which says why the connection was cut.
func (e *Email) stepErr(ctx context.Context, step string, err error) error {
	if ctx.Err() != nil {
		return fmt.Errorf("%s %s: %w: %w", step, e.addr, context.Cause(ctx), err)
	}
	return fmt.Errorf("%s %s: %w", step, e.addr, err)
}

// retryTLS classifies a TLS handshake error: a certificate that does not
// verify, or a peer that does not speak TLS, stays so (false); a broken or
// timed-out connection may heal (true).
func retryTLS(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	var (
		verr  *tls.CertificateVerificationError
		uerr  x509.UnknownAuthorityError
		herr  x509.HostnameError
		cerr  x509.CertificateInvalidError
		rherr tls.RecordHeaderError
		aerr  tls.AlertError
		tperr *textproto.Error
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &herr), errors.As(err, &cerr),
		errors.As(err, &rherr), errors.As(err, &aerr):
		return false
	case errors.As(err, &tperr):
		return tperr.Code/100 == 4
	}
	return transient(err)
}

// retryReply classifies an SMTP exchange error: a 4xx reply is temporary, a
// 5xx reply permanent, a network error temporary; other errors give def.
func retryReply(ctx context.Context, err error, def bool) bool {
	if ctx.Err() != nil {
		return true
	}
	var tperr *textproto.Error
	if errors.As(err, &tperr) {
		return tperr.Code/100 == 4
	}
	if transient(err) {
		return true
	}
	return def
}

// retrySend classifies go-mail's transaction errors: by the SMTP reply code
// when there is one (SendError.IsTemp), as temporary when the connection
// broke mid-transaction.
func retrySend(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return true
	}
	var se *gomail.SendError
	if errors.As(err, &se) {
		if code := se.ErrorCode(); code >= 400 && code < 600 {
			return se.IsTemp()
		}
		switch se.Reason {
		case gomail.ErrConnCheck, gomail.ErrSMTPMailFrom, gomail.ErrSMTPRcptTo, gomail.ErrSMTPData,
			gomail.ErrWriteContent, gomail.ErrSMTPDataClose:
			return true // no reply code: the connection failed
		}
		return se.IsTemp()
	}
	return retryReply(ctx, err, false)
}

// transient reports whether err is a network failure that may heal.
func transient(err error) bool {
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout(),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.ECONNABORTED), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH),
		errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, net.ErrClosed):
		return true
	}
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &oe) || errors.As(err, &de) && (de.IsTemporary || de.IsTimeout || de.IsNotFound)
}

// redactError hides the password in an error's text while keeping the
// error chain for errors.Is and errors.As.
type redactError struct {
	err  error
	text string
}

func (r *redactError) Error() string { return r.text }
func (r *redactError) Unwrap() error { return r.err }

func redact(err error, password string) error {
	if password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redactError{err: err, text: strings.ReplaceAll(err.Error(), password, "<redacted>")}
}

// auth is an smtp.Auth that picks the SASL mechanism when the server's EHLO
// answer is known.
type auth struct {
	mech, user, pass, host string
	inner                  smtp.Auth
}

// autoOrder is the preference of "auto": challenge-response mechanisms
// first, then the ones that send the password (which go-mail refuses
// without TLS unless the server is on the loopback).
var autoOrder = []string{"SCRAM-SHA-256", "SCRAM-SHA-1", "CRAM-MD5", "PLAIN", "LOGIN"}

func (a *auth) Start(si *smtp.ServerInfo) (string, []byte, error) {
	offered := make([]string, 0, len(si.Auth))
	for _, m := range si.Auth {
		offered = append(offered, strings.ToUpper(m))
	}
	var mech string
	if a.mech == AuthAuto {
		for _, m := range autoOrder {
			sendsPassword := m == "PLAIN" || m == "LOGIN"
			if slices.Contains(offered, m) && (!sendsPassword || si.TLS || isLoopback(si.Name)) {
				mech = m
				break
			}
		}
		if mech == "" {
			return "", nil, fmt.Errorf("%w: server offers %q (tls: %v)", ErrAuthMechanism, strings.Join(offered, " "), si.TLS)
		}
	} else {
		mech = strings.ToUpper(a.mech)
		if !slices.Contains(offered, mech) {
			return "", nil, fmt.Errorf("%w: auth = %q but server offers %q", ErrAuthMechanism, a.mech, strings.Join(offered, " "))
		}
	}
	switch mech {
	case "SCRAM-SHA-256":
		a.inner = smtp.ScramSHA256Auth(a.user, a.pass)
	case "SCRAM-SHA-1":
		a.inner = smtp.ScramSHA1Auth(a.user, a.pass)
	case "CRAM-MD5":
		a.inner = smtp.CRAMMD5Auth(a.user, a.pass)
	case "PLAIN":
		a.inner = smtp.PlainAuth("", a.user, a.pass, a.host, false)
	case "LOGIN":
		a.inner = smtp.LoginAuth(a.user, a.pass, a.host, false)
	}
	return a.inner.Start(si)
}

func (a *auth) Next(fromServer []byte, more bool) ([]byte, error) {
	return a.inner.Next(fromServer, more)
}

// isLoopback is go-mail's notion of a local server, for which it lets
// PLAIN and LOGIN send the password without TLS.
func isLoopback(name string) bool {
	return name == "localhost" || name == "127.0.0.1" || name == "::1"
}
