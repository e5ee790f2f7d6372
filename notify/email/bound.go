package email

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/textproto"
)

// Bounds on what medic reads from an SMTP server in one session (one
// Notify). A server past any of them fails the delivery as retryable with a
// *ReplyTooLargeError, and medic's memory stays flat: nothing past the
// bound is buffered.
const (
	// MaxReplyLineBytes caps one reply line, its CRLF included. RFC 5321
	// section 4.5.3.1.5 sets 512 octets; medic allows four times that for
	// servers that write long texts.
	MaxReplyLineBytes = 2048
	// MaxReplyLines caps the lines of one multi-line reply (RFC 5321
	// section 4.2.1). The longest real EHLO replies list a few dozen
	// extensions.
	MaxReplyLines = 256
	// MaxReplyBytes caps one reply, all its lines and their CRLFs, in
	// bytes.
	MaxReplyBytes = 64 << 10
	// MaxSessionBytes caps all the bytes the server sends in one session,
	// counted on the wire: TLS records and the TLS handshake (with the
	// server's certificate chain) included. Under TLS it is the bound that
	// holds the replies medic cannot frame itself: the greeting of an
	// implicit-TLS server and the EHLO reply right after STARTTLS, which
	// go-mail reads before medic sees the encrypted connection.
	MaxSessionBytes = 1 << 20
)

// ReplyTooLargeError reports that an SMTP server's reply, or all it sent in
// the session, went past one of medic's bounds (MaxReplyLineBytes,
// MaxReplyLines, MaxReplyBytes, MaxSessionBytes). Notify wraps it and
// reports it as retryable: the message stays in the outbox, and the error,
// which holds no text from the server, says why.
type ReplyTooLargeError struct {
	// Limit is the bound that was exceeded, e.g. MaxReplyLines.
	Limit int
	// Unit says what Limit counts: "bytes in a line", "lines in a reply",
	// "bytes in a reply" or "bytes in a session".
	Unit string
}

func (e *ReplyTooLargeError) Error() string {
	return fmt.Sprintf("smtp server sent an oversized reply: more than %d %s", e.Limit, e.Unit)
}

// session holds the bounds of one SMTP session: the first bound exceeded
// stays, and every later read fails with it.
type session struct {
	limits replyLimits
	err    *ReplyTooLargeError
}

// replyLimits are the bounds of a replyReader: MaxReplyLineBytes,
// MaxReplyLines and MaxReplyBytes in medic, smaller ones in the fuzz test.
type replyLimits struct {
	line, lines, reply int
}

var defaultLimits = replyLimits{line: MaxReplyLineBytes, lines: MaxReplyLines, reply: MaxReplyBytes}

// exceeded returns the bound the server went past, or nil.
func (s *session) exceeded() *ReplyTooLargeError { return s.err }

// conn wraps the TCP connection to the server (below TLS, if any). It
// fails every read once the server sent more than MaxSessionBytes. Until
// medic first writes, it also frames the plain-text greeting with a
// replyReader when frame is true (STARTTLS and no TLS), since go-mail
// reads the greeting before medic can bound its reader.
func (s *session) conn(c net.Conn, frame bool) net.Conn {
	sc := &sessionConn{Conn: c, s: s}
	if frame {
		sc.greeting = &replyReader{s: s}
	}
	return sc
}

// bound makes c's reader (net/textproto, which go-mail reads replies with)
// frame every reply from now on with a replyReader. Call it after every
// point where go-mail makes a new reader: smtp.NewClient and StartTLS.
// Bytes already buffered start a new reply, as they do for textproto.
func (s *session) bound(t *textproto.Conn) {
	t.R = bufio.NewReader(&replyReader{s: s, r: t.R})
}

// fail records e as the session's error unless one is already recorded, and
// returns the recorded one.
func (s *session) fail(e *ReplyTooLargeError) error {
	if s.err == nil {
		s.err = e
	}
	return s.err
}

type sessionConn struct {
	net.Conn
	s        *session
	n        int          // bytes read so far
	greeting *replyReader // nil once medic wrote, or when not framing
}

func (c *sessionConn) Read(b []byte) (int, error) {
	if c.s.err != nil {
		return 0, c.s.err
	}
	if c.n >= MaxSessionBytes {
		return 0, c.s.fail(&ReplyTooLargeError{Limit: MaxSessionBytes, Unit: "bytes in a session"})
	}
	b = b[:min(len(b), MaxSessionBytes-c.n)]
	n, err := c.Conn.Read(b)
	c.n += n
	if c.greeting != nil {
		if k, ferr := c.greeting.scan(b[:n]); ferr != nil {
			return k, ferr
		}
	}
	return n, err
}

func (c *sessionConn) Write(b []byte) (int, error) {
	c.greeting = nil
	return c.Conn.Write(b)
}

// replyReader passes SMTP replies through unchanged and fails, for the
// rest of the session, when one has a line longer than MaxReplyLineBytes,
// more than MaxReplyLines lines or more than MaxReplyBytes bytes (the
// session's limits).
//
// It ends a reply where net/textproto's Reader.ReadResponse stops reading
// one, so that every reply textproto reads is bounded: after the first line
// unless that line has a "-" as its fourth character; otherwise after the
// first later line "xyz text" whose code xyz (three digits, not starting
// with 0) is the first line's.
type replyReader struct {
	s *session
	r io.Reader // nil when fed through scan

	line  int     // bytes of the current line so far
	head  [4]byte // the current line's first bytes
	prev  byte    // the byte before the current one
	lines int     // complete lines of the current reply
	reply int     // bytes of the current reply so far
	code  [3]byte // the reply's code, from its first line
}

func (p *replyReader) Read(b []byte) (int, error) {
	if p.s.err != nil {
		return 0, p.s.err
	}
	n, err := p.r.Read(b)
	if k, ferr := p.scan(b[:n]); ferr != nil {
		return k, ferr
	}
	return n, err
}

// scan follows b through the replies. When b goes past a bound it returns
// how many of b's bytes are within it and the session's error.
func (p *replyReader) scan(b []byte) (int, error) {
	for i, c := range b {
		if p.line < len(p.head) {
			p.head[p.line] = c
		}
		p.line++
		p.reply++
		switch {
		case p.line > p.s.limits.line:
			return i, p.s.fail(&ReplyTooLargeError{Limit: p.s.limits.line, Unit: "bytes in a line"})
		case p.reply > p.s.limits.reply:
			return i, p.s.fail(&ReplyTooLargeError{Limit: p.s.limits.reply, Unit: "bytes in a reply"})
		}
		prev := p.prev
		p.prev = c
		if c != '\n' {
			continue
		}
		// A line ends; its text is what textproto's ReadLine returns,
		// without "\n" or "\r\n".
		text := p.line - 1
		if prev == '\r' && text > 0 {
			text--
		}
		p.line = 0
		p.lines++
		var ends bool
		if p.lines == 1 {
			ends = text < 4 || p.head[3] != '-'
			copy(p.code[:], p.head[:3])
		} else {
			ends = text >= 4 && p.head[3] == ' ' && validCode(p.head[:3]) && [3]byte(p.head[:3]) == p.code
		}
		if ends {
			p.lines, p.reply = 0, 0
			continue
		}
		if p.lines >= p.s.limits.lines {
			return i + 1, p.s.fail(&ReplyTooLargeError{Limit: p.s.limits.lines, Unit: "lines in a reply"})
		}
	}
	return len(b), nil
}

// validCode reports whether c is a reply code textproto accepts: three
// digits, at least 100.
func validCode(c []byte) bool {
	for _, d := range c {
		if d < '0' || d > '9' {
			return false
		}
	}
	return c[0] != '0'
}
