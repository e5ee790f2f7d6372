// Package smtptest runs a real SMTP server on a loopback port for tests:
// github.com/emersion/go-smtp with STARTTLS or implicit TLS under a
// certificate made at start, SMTP AUTH (PLAIN, LOGIN, CRAM-MD5) against one
// configured account, a record of every accepted message, and fault knobs
// (reject the next transactions, take the listener down and up again on the
// same port, stop answering after EHLO) that tests flip at run time.
//
// All methods of Server are safe for concurrent use.
package smtptest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// Mode is how the server uses TLS.
type Mode int

// The TLS modes.
const (
	// StartTLS listens in clear text and offers STARTTLS (RFC 3207). AUTH is
	// offered only after STARTTLS unless Options.AllowInsecureAuth is set.
	StartTLS Mode = iota
	// ImplicitTLS speaks TLS from the first byte, as on port 465 (RFC 8314).
	ImplicitTLS
	// NoTLS listens in clear text and does not offer STARTTLS.
	NoTLS
)

func (m Mode) String() string {
	switch m {
	case StartTLS:
		return "starttls"
	case ImplicitTLS:
		return "tls"
	case NoTLS:
		return "none"
	}
	return "Mode(" + strconv.Itoa(int(m)) + ")"
}

// The SASL mechanisms the server can offer.
const (
	Plain   = "PLAIN"
	Login   = "LOGIN"
	CramMD5 = "CRAM-MD5"
)

// Options configure a Server. The zero value is a STARTTLS server without
// authentication.
type Options struct {
	// Mode selects STARTTLS (the default), implicit TLS or no TLS.
	Mode Mode
	// Username and Password form the one account AUTH accepts. When Username
	// is set, MAIL FROM is refused with 530 until the client authenticated;
	// when it is empty, the server offers no AUTH and accepts anyone.
	Username, Password string
	// Mechanisms lists the SASL mechanisms to offer, in order; nil offers
	// PLAIN, LOGIN and CRAM-MD5.
	Mechanisms []string
	// AllowInsecureAuth offers AUTH on a connection without TLS.
	AllowInsecureAuth bool
	// Domain is the server's name in its greeting; "" is "localhost".
	Domain string
	// ErrorLog receives go-smtp's connection errors; nil discards them.
	ErrorLog *log.Logger
}

// Server is a running SMTP server on 127.0.0.1. Create it with New or Start.
type Server struct {
	opts   Options
	addr   string // fixed at New: Up listens on the same port again
	cert   tls.Certificate
	pem    []byte
	pool   *x509.CertPool
	logger *log.Logger

	mu        sync.Mutex
	srv       *smtp.Server // nil while down
	ln        net.Listener
	serveDone chan struct{}
	messages  []*Message
	conns     int
	auths     []AuthAttempt
	rejectN   int
	rejectErr *smtp.SMTPError
	hang      bool
	release   chan struct{} // closed to free sessions held by hang
	closed    bool
}

// AuthAttempt records one AUTH exchange that reached a verdict.
type AuthAttempt struct {
	Mechanism string
	Username  string
	OK        bool
}

// Start is New for tests: it fails tb when the server cannot start and closes
// the server when the test ends.
func Start(tb testing.TB, opts Options) *Server {
	tb.Helper()
	s, err := New(opts)
	if err != nil {
		tb.Fatalf("start smtp test server: %v", err)
	}
	tb.Cleanup(func() { _ = s.Close() })
	return s
}

// New starts a server on 127.0.0.1 on a free port with a fresh self-signed
// certificate for 127.0.0.1, ::1 and localhost. The caller must Close it.
func New(opts Options) (*Server, error) {
	if opts.Mechanisms == nil {
		opts.Mechanisms = []string{Plain, Login, CramMD5}
	}
	for _, m := range opts.Mechanisms {
		if m != Plain && m != Login && m != CramMD5 {
			return nil, fmt.Errorf("unsupported SASL mechanism %q", m)
		}
	}
	if opts.Domain == "" {
		opts.Domain = "localhost"
	}
	s := &Server{opts: opts, logger: opts.ErrorLog, release: make(chan struct{})}
	if s.logger == nil {
		s.logger = log.New(io.Discard, "", 0)
	}
	var err error
	if s.cert, s.pem, err = selfSigned(); err != nil {
		return nil, fmt.Errorf("make certificate: %w", err)
	}
	s.pool = x509.NewCertPool()
	s.pool.AppendCertsFromPEM(s.pem)

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	s.addr = l.Addr().String()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.serveLocked(l)
	return s, nil
}

// Addr is the server's address, "127.0.0.1:PORT". It stays the same across
// Down and Up.
func (s *Server) Addr() string { return s.addr }

// Host is "127.0.0.1".
func (s *Server) Host() string {
	h, _, _ := net.SplitHostPort(s.addr)
	return h
}

// Port is the server's TCP port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.addr)
	n, _ := strconv.Atoi(p)
	return n
}

// CertPool holds the server's certificate, for a client's tls.Config.RootCAs.
func (s *Server) CertPool() *x509.CertPool { return s.pool }

// CertPEM is the server's self-signed certificate in PEM form.
func (s *Server) CertPEM() []byte { return append([]byte(nil), s.pem...) }

// TLSConfig is a client configuration that trusts the server's certificate,
// for ServerName "127.0.0.1".
func (s *Server) TLSConfig() *tls.Config {
	return &tls.Config{RootCAs: s.pool, ServerName: s.Host(), MinVersion: tls.VersionTLS12}
}

// Messages returns the messages the server accepted so far, oldest first.
func (s *Server) Messages() []*Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*Message(nil), s.messages...)
}

// Connections counts the connections the server accepted and greeted.
func (s *Server) Connections() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conns
}

// AuthAttempts returns the AUTH exchanges so far, oldest first.
func (s *Server) AuthAttempts() []AuthAttempt {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]AuthAttempt(nil), s.auths...)
}

// Reset forgets the recorded messages and AUTH attempts and clears the
// reject and hang knobs.
func (s *Server) Reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.messages, s.auths, s.conns = nil, nil, 0
	s.rejectN, s.rejectErr = 0, nil
	s.setHangLocked(false)
}

// RejectNext answers the next n MAIL FROM commands with code (4xx: a
// temporary failure; 5xx: a permanent one) and message, and then accepts
// again. n <= 0 stops rejecting.
func (s *Server) RejectNext(n, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rejectN = n
	e := smtp.EnhancedCode{code / 100, 0, 0}
	s.rejectErr = &smtp.SMTPError{Code: code, EnhancedCode: e, Message: message}
}

// HangAfterEHLO, when on, makes the server stop answering on each new
// connection once the client sent its first EHLO (or HELO): the greeting
// comes, the EHLO reply never does. Turning it off, Down and Close free the
// held connections.
func (s *Server) HangAfterEHLO(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.setHangLocked(on)
}

func (s *Server) setHangLocked(on bool) {
	if s.hang && !on {
		close(s.release)
		s.release = make(chan struct{})
	}
	s.hang = on
}

// Down closes the listener and every open connection, so that connecting to
// Addr is refused until Up. Down on a server that is down does nothing.
func (s *Server) Down() error {
	s.mu.Lock()
	srv, ln, done := s.srv, s.ln, s.serveDone
	s.srv, s.ln = nil, nil
	// Free sessions held by HangAfterEHLO, and keep holding new ones.
	close(s.release)
	s.release = make(chan struct{})
	s.mu.Unlock()
	if srv == nil {
		return nil
	}
	// Close the listener ourselves too: Serve may not have registered it
	// with srv yet.
	_ = ln.Close()
	err := srv.Close()
	<-done
	if errors.Is(err, net.ErrClosed) {
		err = nil
	}
	return err
}

// Up listens on Addr again after Down. Up on a server that is up does
// nothing.
func (s *Server) Up() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("smtptest: server is closed")
	}
	if s.srv != nil {
		return nil
	}
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		return fmt.Errorf("listen on %s again: %w", s.addr, err)
	}
	s.serveLocked(l)
	return nil
}

// Close stops the server for good.
func (s *Server) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return s.Down()
}

func (s *Server) serveLocked(l net.Listener) {
	srv := smtp.NewServer(&backend{s: s})
	srv.Domain = s.opts.Domain
	srv.AllowInsecureAuth = s.opts.AllowInsecureAuth
	srv.ErrorLog = s.logger
	srv.ReadTimeout = time.Minute
	srv.WriteTimeout = time.Minute
	srv.MaxMessageBytes = 10 << 20
	tlsConf := &tls.Config{Certificates: []tls.Certificate{s.cert}, MinVersion: tls.VersionTLS12}
	switch s.opts.Mode {
	case StartTLS:
		srv.TLSConfig = tlsConf
	case ImplicitTLS:
		l = tls.NewListener(l, tlsConf)
	}
	done := make(chan struct{})
	s.srv, s.ln, s.serveDone = srv, l, done
	go func() {
		defer close(done)
		_ = srv.Serve(l)
	}()
}

// NewCertificate makes a self-signed certificate as New does, for a test's
// own server that speaks TLS (one that misbehaves in ways Server cannot);
// pool trusts it.
func NewCertificate() (cert tls.Certificate, pool *x509.CertPool, err error) {
	cert, p, err := selfSigned()
	if err != nil {
		return tls.Certificate{}, nil, fmt.Errorf("make certificate: %w", err)
	}
	pool = x509.NewCertPool()
	pool.AppendCertsFromPEM(p)
	return cert, pool, nil
}

// selfSigned makes an ECDSA P-256 certificate for 127.0.0.1, ::1 and
// localhost that is its own CA, valid for a day.
func selfSigned() (tls.Certificate, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "smtptest", Organization: []string{"medic tests"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	p := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, p, nil
}
