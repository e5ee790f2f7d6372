package smtptest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// Message is one message the server accepted.
type Message struct {
	// From is the envelope sender (MAIL FROM), To the envelope recipients
	// (RCPT TO), in the order given.
	From string
	To   []string
	// Data is the message as sent after DATA, headers and body.
	Data []byte
	// Header is Data's header parsed by net/mail; nil when it did not parse
	// (see HeaderErr).
	Header mail.Header
	// Helo is the name the client gave in EHLO or HELO.
	Helo string
	// Mechanism and Username tell how the client authenticated; both are ""
	// without AUTH.
	Mechanism, Username string
	// TLS is whether the message came over TLS (STARTTLS or implicit).
	TLS bool

	body     []byte
	parseErr error
}

// HeaderErr is the error parsing Data's header, or nil.
func (m *Message) HeaderErr() error { return m.parseErr }

// Body is Data after the header, still transfer-encoded.
func (m *Message) Body() []byte { return m.body }

// Text returns the decoded content of the first text/plain part, looking
// into nested multipart bodies; the message's own body counts when it is
// not multipart.
func (m *Message) Text() (string, error) { return m.Part("text/plain") }

// HTML returns the decoded content of the first text/html part.
func (m *Message) HTML() (string, error) { return m.Part("text/html") }

// Part returns the decoded content (quoted-printable or base64 undone;
// charset assumed UTF-8) of the first leaf part of the given media type, e.g.
// "text/plain", found depth first.
func (m *Message) Part(mediaType string) (string, error) {
	if m.Header == nil {
		return "", fmt.Errorf("parse message header: %w", m.parseErr)
	}
	s, ok, err := findPart(textproto.MIMEHeader(m.Header), m.body, mediaType)
	if err != nil {
		return "", err
	}
	if !ok {
		return "", fmt.Errorf("message has no %s part", mediaType)
	}
	return s, nil
}

func findPart(h textproto.MIMEHeader, body []byte, want string) (string, bool, error) {
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", false, fmt.Errorf("parse content type %q: %w", ct, err)
	}
	if strings.HasPrefix(mt, "multipart/") {
		r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
		for {
			p, err := r.NextRawPart()
			if errors.Is(err, io.EOF) {
				return "", false, nil
			}
			if err != nil {
				return "", false, fmt.Errorf("read %s part: %w", mt, err)
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return "", false, fmt.Errorf("read %s part: %w", mt, err)
			}
			if s, ok, err := findPart(p.Header, b, want); ok || err != nil {
				return s, ok, err
			}
		}
	}
	if mt != want {
		return "", false, nil
	}
	dec, err := decode(h.Get("Content-Transfer-Encoding"), body)
	if err != nil {
		return "", false, err
	}
	return string(dec), true, nil
}

func decode(cte string, b []byte) ([]byte, error) {
	switch strings.ToLower(strings.TrimSpace(cte)) {
	case "quoted-printable":
		d, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(b)))
		if err != nil {
			return nil, fmt.Errorf("decode quoted-printable: %w", err)
		}
		return d, nil
	case "base64":
		clean := strings.Map(func(r rune) rune {
			if r == '\r' || r == '\n' || r == ' ' || r == '\t' {
				return -1
			}
			return r
		}, string(b))
		d, err := base64.StdEncoding.DecodeString(clean)
		if err != nil {
			return nil, fmt.Errorf("decode base64: %w", err)
		}
		return d, nil
	}
	return b, nil
}
