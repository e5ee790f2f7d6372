package smtptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"net/mail"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

type backend struct{ s *Server }

// NewSession runs when the client sends its first EHLO or HELO (and again
// after STARTTLS).
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	s := b.s
	s.mu.Lock()
	_, isTLS := c.TLSConnectionState()
	if !isTLS || s.opts.Mode == ImplicitTLS {
		s.conns++ // count each connection once, not again after STARTTLS
	}
	hang, release := s.hang, s.release
	s.mu.Unlock()
	if hang {
		<-release
		return nil, &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Going away"}
	}
	return &session{s: s, conn: c, helo: c.Hostname()}, nil
}

type session struct {
	s    *Server
	conn *smtp.Conn
	helo string

	mech, user string // set once AUTH succeeded
	from       string
	to         []string
}

var _ smtp.AuthSession = (*session)(nil)

func (se *session) AuthMechanisms() []string {
	if se.s.opts.Username == "" {
		return nil
	}
	return slices.Clone(se.s.opts.Mechanisms)
}

func (se *session) Auth(mech string) (sasl.Server, error) {
	if !slices.Contains(se.AuthMechanisms(), mech) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	check := func(user, pass string) error {
		opts := se.s.opts
		ok := subtle.ConstantTimeCompare([]byte(user), []byte(opts.Username)) == 1 &&
			subtle.ConstantTimeCompare([]byte(pass), []byte(opts.Password)) == 1
		return se.verdict(mech, user, ok)
	}
	switch mech {
	case Plain:
		return sasl.NewPlainServer(func(identity, user, pass string) error {
			if identity != "" && identity != user {
				return se.verdict(mech, user, false)
			}
			return check(user, pass)
		}), nil
	case Login:
		return &loginServer{check: check}, nil
	case CramMD5:
		return &cramMD5Server{s: se, domain: se.s.opts.Domain}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// verdict records an AUTH attempt and answers 535 when it failed.
func (se *session) verdict(mech, user string, ok bool) error {
	se.s.mu.Lock()
	se.s.auths = append(se.s.auths, AuthAttempt{Mechanism: mech, Username: user, OK: ok})
	se.s.mu.Unlock()
	if !ok {
		return smtp.ErrAuthFailed
	}
	se.mech, se.user = mech, user
	return nil
}

func (se *session) Mail(from string, _ *smtp.MailOptions) error {
	if se.s.opts.Username != "" && se.user == "" {
		return &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}
	}
	se.s.mu.Lock()
	defer se.s.mu.Unlock()
	if se.s.rejectN > 0 {
		se.s.rejectN--
		return se.s.rejectErr
	}
	se.from = from
	return nil
}

func (se *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	se.to = append(se.to, to)
	return nil
}

func (se *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg := &Message{
		From:      se.from,
		To:        slices.Clone(se.to),
		Data:      data,
		Helo:      se.helo,
		Mechanism: se.mech,
		Username:  se.user,
	}
	_, msg.TLS = se.conn.TLSConnectionState()
	if m, err := mail.ReadMessage(bytes.NewReader(data)); err == nil {
		msg.Header = m.Header
		msg.body, _ = io.ReadAll(m.Body)
	} else {
		msg.parseErr = err
	}
	se.s.mu.Lock()
	se.s.messages = append(se.s.messages, msg)
	se.s.mu.Unlock()
	return nil
}

func (se *session) Reset() {
	se.from, se.to = "", nil
}

func (se *session) Logout() error { return nil }

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login-00), which go-sasl does not provide.
type loginServer struct {
	check func(user, pass string) error
	user  string
	step  int
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		l.step++
		if len(response) > 0 { // initial response carries the username
			l.user = string(response)
			l.step++
			return []byte("Password:"), false, nil
		}
		return []byte("Username:"), false, nil
	case 1:
		l.user = string(response)
		l.step++
		return []byte("Password:"), false, nil
	case 2:
		l.step++
		return nil, true, l.check(l.user, string(response))
	}
	return nil, false, sasl.ErrUnexpectedClientResponse
}

// cramMD5Server is the server side of CRAM-MD5 (RFC 2195).
type cramMD5Server struct {
	s         *session
	domain    string
	challenge []byte
}

func (c *cramMD5Server) Next(response []byte) (challenge []byte, done bool, err error) {
	if c.challenge == nil {
		var nonce [12]byte
		if _, err := rand.Read(nonce[:]); err != nil {
			return nil, false, err
		}
		c.challenge = fmt.Appendf(nil, "<%s@%s>", hex.EncodeToString(nonce[:]), c.domain)
		return c.challenge, false, nil
	}
	user, digest, ok := strings.Cut(string(response), " ")
	if !ok {
		return nil, false, c.s.verdict(CramMD5, "", false)
	}
	mac := hmac.New(md5.New, []byte(c.s.s.opts.Password))
	mac.Write(c.challenge)
	want := hex.EncodeToString(mac.Sum(nil))
	good := hmac.Equal([]byte(digest), []byte(want)) &&
		subtle.ConstantTimeCompare([]byte(user), []byte(c.s.s.opts.Username)) == 1
	return nil, true, c.s.verdict(CramMD5, user, good)
}
