package email

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/mail"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/notify"
)

// hostileServer is an SMTP peer that misbehaves in ways no real server can
// be made to on demand (go-smtp, like every MTA, answers EHLO with a
// finite reply): a raw TCP listener on 127.0.0.1 that runs script on each
// connection. It stops when the test ends.
type hostileServer struct {
	ln   net.Listener
	cert tls.Certificate
	pool *x509.CertPool

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func startHostile(t *testing.T, script func(h *hostileServer, c net.Conn, r *bufio.Reader)) *hostileServer {
	t.Helper()
	cert, pool, err := smtptest.NewCertificate()
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &hostileServer{ln: ln, cert: cert, pool: pool}
	h.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.conns = append(h.conns, c)
			h.mu.Unlock()
			h.wg.Go(func() {
				defer c.Close()
				script(h, c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			_ = c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *hostileServer) port() int { return h.ln.Addr().(*net.TCPAddr).Port }

// startTLS answers STARTTLS with 220 and shakes hands as the server.
func (h *hostileServer) startTLS(c net.Conn, r *bufio.Reader) (*tls.Conn, *bufio.Reader, bool) {
	if !expect(r, "STARTTLS") || say(c, "220 go ahead\r\n") != nil {
		return nil, nil, false
	}
	tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{h.cert}, MinVersion: tls.VersionTLS12})
	if tc.Handshake() != nil {
		return nil, nil, false
	}
	return tc, bufio.NewReader(tc), true
}

// expect reads one command line and reports whether it starts with verb.
func expect(r *bufio.Reader, verb string) bool {
	l, err := r.ReadString('\n')
	return err == nil && strings.HasPrefix(strings.ToUpper(l), verb)
}

func say(w io.Writer, s string) error {
	_, err := io.WriteString(w, s)
	return err
}

// flood writes chunk to w again and again until the client goes away.
func flood(w io.Writer, chunk string) {
	b := []byte(strings.Repeat(chunk, max(1, 32<<10/len(chunk))))
	for {
		if _, err := w.Write(b); err != nil {
			return
		}
	}
}

// floodAfterEHLO greets, then answers EHLO with endless 250- lines.
func floodAfterEHLO(line string) func(*hostileServer, net.Conn, *bufio.Reader) {
	return func(_ *hostileServer, c net.Conn, r *bufio.Reader) {
		if say(c, "220 hostile ESMTP\r\n") != nil || !expect(r, "EHLO") {
			return
		}
		flood(c, line)
	}
}

// memDuring runs f and returns the bytes allocated while it ran and the
// peak growth of the live heap, sampled every 5 ms.
func memDuring(f func()) (alloc, peak uint64) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	done := make(chan struct{})
	sampled := make(chan uint64)
	go func() {
		var top uint64
		tick := time.NewTicker(5 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			top = max(top, ms.HeapAlloc)
			select {
			case <-done:
				sampled <- top
				return
			case <-tick.C:
			}
		}
	}()
	f()
	close(done)
	top := <-sampled
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	if top > before.HeapAlloc {
		peak = top - before.HeapAlloc
	}
	return after.TotalAlloc - before.TotalAlloc, peak
}

// TestOversizedReplies: a server that sends a reply past one of medic's
// bounds, before or after TLS, fails the delivery at once as retryable
// (the message stays in the outbox), with an error that says which bound,
// while memory stays flat. Before the bounds, endless 250- lines took
// medic to 8 GB in 40 s.
func TestOversizedReplies(t *testing.T) {
	long := "250-" + strings.Repeat("x", 60) + "\r\n"
	for _, tc := range []struct {
		name      string
		tls       string
		script    func(*hostileServer, net.Conn, *bufio.Reader)
		wantLimit int
		wantUnit  string
		wantStep  string
	}{
		{
			name: "endless EHLO reply, no TLS", tls: TLSNone,
			script:    floodAfterEHLO(long),
			wantLimit: MaxReplyLines, wantUnit: "lines in a reply", wantStep: "send EHLO to smtp",
		},
		{
			// EHLO comes before STARTTLS: anyone on the path can do this.
			name: "endless EHLO reply before STARTTLS", tls: TLSStartTLS,
			script:    floodAfterEHLO(long),
			wantLimit: MaxReplyLines, wantUnit: "lines in a reply", wantStep: "send EHLO to smtp",
		},
		{
			name: "endless line", tls: TLSStartTLS,
			script:    floodAfterEHLO("x"),
			wantLimit: MaxReplyLineBytes, wantUnit: "bytes in a line", wantStep: "send EHLO to smtp",
		},
		{
			name: "long lines past the reply's bytes", tls: TLSStartTLS,
			script:    floodAfterEHLO("250-" + strings.Repeat("y", MaxReplyLineBytes-6) + "\r\n"),
			wantLimit: MaxReplyBytes, wantUnit: "bytes in a reply", wantStep: "send EHLO to smtp",
		},
		{
			name: "endless greeting", tls: TLSStartTLS,
			script:    func(_ *hostileServer, c net.Conn, _ *bufio.Reader) { flood(c, "220-"+strings.Repeat("g", 60)+"\r\n") },
			wantLimit: MaxReplyLines, wantUnit: "lines in a reply", wantStep: "read greeting of smtp",
		},
		{
			// go-mail reads this reply inside StartTLS, with a reader medic
			// cannot frame: the session's byte budget holds it.
			name: "endless EHLO reply after STARTTLS", tls: TLSStartTLS,
			script: func(h *hostileServer, c net.Conn, r *bufio.Reader) {
				if say(c, "220 hostile ESMTP\r\n") != nil || !expect(r, "EHLO") ||
					say(c, "250-hostile\r\n250 STARTTLS\r\n") != nil {
					return
				}
				tc, tr, ok := h.startTLS(c, r)
				if !ok || !expect(tr, "EHLO") {
					return
				}
				flood(tc, long)
			},
			wantLimit: MaxSessionBytes, wantUnit: "bytes in a session", wantStep: "starttls with smtp",
		},
		{
			name: "endless MAIL reply after STARTTLS", tls: TLSStartTLS,
			script: func(h *hostileServer, c net.Conn, r *bufio.Reader) {
				if say(c, "220 hostile ESMTP\r\n") != nil || !expect(r, "EHLO") ||
					say(c, "250-hostile\r\n250 STARTTLS\r\n") != nil {
					return
				}
				tc, tr, ok := h.startTLS(c, r)
				if !ok || !expect(tr, "EHLO") || say(tc, "250 hostile\r\n") != nil || !expect(tr, "MAIL") {
					return
				}
				flood(tc, long)
			},
			wantLimit: MaxReplyLines, wantUnit: "lines in a reply", wantStep: "send mail via smtp",
		},
		{
			name: "endless greeting, implicit TLS", tls: TLSImplicit,
			script: func(h *hostileServer, c net.Conn, _ *bufio.Reader) {
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{h.cert}, MinVersion: tls.VersionTLS12})
				flood(tc, "220-"+strings.Repeat("g", 60)+"\r\n")
			},
			wantLimit: MaxSessionBytes, wantUnit: "bytes in a session", wantStep: "read greeting of smtp",
		},
		{
			name: "endless EHLO reply, implicit TLS", tls: TLSImplicit,
			script: func(h *hostileServer, c net.Conn, _ *bufio.Reader) {
				tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{h.cert}, MinVersion: tls.VersionTLS12})
				floodAfterEHLO(long)(h, tc, bufio.NewReader(tc))
			},
			wantLimit: MaxReplyLines, wantUnit: "lines in a reply", wantStep: "send EHLO to smtp",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := startHostile(t, tc.script)
			e, err := New(Config{
				Name: "ops-email", Host: "127.0.0.1", Port: h.port(), TLS: tc.tls,
				From: "medic@example.com", To: []string{"ops@example.com"}, Hostname: "web1.example.com",
				RootCAs: h.pool, ConnectTimeout: 2 * time.Second, SendTimeout: 10 * time.Second,
			})
			if err != nil {
				t.Fatal(err)
			}
			var (
				retry   bool
				sendErr error
				took    time.Duration
			)
			alloc, peak := memDuring(func() {
				start := time.Now()
				retry, sendErr = e.Notify(context.Background(), sample(notify.Firing, "i", "1"))
				took = time.Since(start)
			})
			t.Logf("took %s, allocated %d KiB, live heap grew by at most %d KiB: %v", took.Round(time.Millisecond), alloc>>10, peak>>10, sendErr)
			if sendErr == nil {
				t.Fatal("Notify succeeded against a server that never ends its reply")
			}
			if !retry {
				t.Errorf("retry = false, want true: the message must stay in the outbox")
			}
			var big *ReplyTooLargeError
			if !errors.As(sendErr, &big) || big.Limit != tc.wantLimit || big.Unit != tc.wantUnit {
				t.Errorf("error %v, want a *ReplyTooLargeError for more than %d %s", sendErr, tc.wantLimit, tc.wantUnit)
			}
			msg := sendErr.Error()
			if !strings.HasPrefix(msg, tc.wantStep+" 127.0.0.1:") || !strings.Contains(msg, "smtp server sent an oversized reply") {
				t.Errorf("error %q, want it to start %q and say the reply is oversized", msg, tc.wantStep)
			}
			if len(msg) > 300 || strings.Contains(msg, "xxxx") || strings.Contains(msg, "gggg") {
				t.Errorf("error of %d bytes carries the server's text: %.300q", len(msg), msg)
			}
			if took > 5*time.Second {
				t.Errorf("Notify took %s: it should fail as soon as the bound is passed, well within its timeout", took)
			}
			const maxGrowth = 50 << 20
			if alloc > maxGrowth || peak > maxGrowth {
				t.Errorf("Notify allocated %d MiB (live heap +%d MiB), want under %d MiB", alloc>>20, peak>>20, maxGrowth>>20)
			}
		})
	}
}

// TestRepliesWithinBoundsPass: the largest replies the bounds allow, long
// EHLO lists and multi-line replies with lines of the wrong code among
// them, go through a whole session to a delivered mail.
func TestRepliesWithinBoundsPass(t *testing.T) {
	var ehlo strings.Builder
	for range MaxReplyLines - 2 {
		ehlo.WriteString("250-X-FILLER " + strings.Repeat("f", 100) + "\r\n")
	}
	ehlo.WriteString("250-" + strings.Repeat("l", MaxReplyLineBytes-6) + "\r\n")
	ehlo.WriteString("250 8BITMIME\r\n")
	if ehlo.Len() > MaxReplyBytes {
		t.Fatalf("test reply has %d bytes, more than MaxReplyBytes", ehlo.Len())
	}
	delivered := make(chan string, 1)
	h := startHostile(t, func(_ *hostileServer, c net.Conn, r *bufio.Reader) {
		steps := []struct{ verb, reply string }{
			{"EHLO", ehlo.String()},
			{"MAIL", "250-ok\r\n999-not this code\r\n25 short\r\n250 ok\r\n"},
			{"RCPT", "250 ok\r\n"},
			{"DATA", "354 go on\r\n"},
		}
		if say(c, "220-hostile\r\n220 ESMTP\r\n") != nil {
			return
		}
		for _, s := range steps {
			if !expect(r, s.verb) || say(c, s.reply) != nil {
				return
			}
		}
		var data strings.Builder
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				return
			}
			if l == ".\r\n" {
				break
			}
			data.WriteString(l)
		}
		delivered <- data.String()
		if say(c, "250 queued\r\n") == nil && expect(r, "QUIT") {
			_ = say(c, "221 bye\r\n")
		}
	})
	e, err := New(Config{
		Name: "ops-email", Host: "127.0.0.1", Port: h.port(), TLS: TLSNone,
		From: "medic@example.com", To: []string{"ops@example.com"}, Hostname: "web1.example.com",
		ConnectTimeout: 2 * time.Second, SendTimeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	m := sample(notify.Firing, "i", "1")
	if retry, err := e.Notify(context.Background(), m); err != nil {
		t.Fatalf("Notify: retry=%v err=%v", retry, err)
	}
	select {
	case d := <-delivered:
		got, err := mail.ReadMessage(strings.NewReader(d))
		if err != nil {
			t.Fatalf("parse delivered mail: %v", err)
		}
		if s := got.Header.Get("Subject"); s != m.Subject() {
			t.Errorf("delivered mail has Subject %q, want %q", s, m.Subject())
		}
	default:
		t.Fatal("the server got no mail")
	}
}

// TestReplyReaderFraming checks where replyReader ends a reply against
// net/textproto, which go-mail reads replies with.
func TestReplyReaderFraming(t *testing.T) {
	small := replyLimits{line: 40, lines: 3, reply: 100}
	for _, tc := range []struct {
		name, in string
		wantErr  bool
	}{
		{"three lines", "250-a\r\n250-b\r\n250 c\r\n", false},
		{"four lines", "250-a\r\n250-b\r\n250-c\r\n250 d\r\n", true},
		{"many short replies", strings.Repeat("250 ok\r\n", 100), false},
		{"other codes continue the reply", "250-a\r\n251 b\r\n250 c\r\n", false},
		{"other codes count", "250-a\r\n251 b\r\n252 c\r\n250 d\r\n", true},
		{"short lines continue the reply", "250-a\r\n250\r\n250 c\r\n", false},
		{"a bad first code never ends", "+25-a\r\n+25 b\r\n+25 c\r\n+25 d\r\n", true},
		{"a first line without - ends", "25\r\n2\r\n\r\n250 ok\r\n", false},
		{"bare LF", "250-a\n250-b\n250 c\n250-a\n250-b\n250 c\n", false},
		{"line at the bound", "250 " + strings.Repeat("x", 34) + "\r\n", false},
		{"line past the bound", "250 " + strings.Repeat("x", 35) + "\r\n", true},
		{"reply past its bytes", "250-" + strings.Repeat("x", 34) + "\r\n250-" + strings.Repeat("x", 34) + "\r\n250 " + strings.Repeat("x", 20) + "\r\n", true},
		{"no newline at all", strings.Repeat("x", 41), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := readReplies(t, []byte(tc.in), small)
			var big *ReplyTooLargeError
			if gotErr := errors.As(err, &big); gotErr != tc.wantErr {
				t.Errorf("error %v, want a bound exceeded: %v", err, tc.wantErr)
			}
		})
	}
}

// readReplies reads data as go-mail does, reply by reply with textproto,
// through a replyReader with limits, and checks that every reply textproto
// returns is within them. It returns the error that ended the reading.
func readReplies(t testing.TB, data []byte, limits replyLimits) error {
	ss := &session{limits: limits}
	r := textproto.NewReader(bufio.NewReader(&replyReader{s: ss, r: bytes.NewReader(data)}))
	for {
		_, msg, err := r.ReadResponse(0)
		var (
			tpErr *textproto.Error
			pErr  textproto.ProtocolError
		)
		if err != nil && !errors.As(err, &tpErr) && !errors.As(err, &pErr) {
			if big := ss.exceeded(); big != nil && !errors.Is(err, error(big)) {
				t.Errorf("read ended with %v, want the session's %v", err, big)
			}
			return err
		}
		lines := strings.Split(msg, "\n")
		if len(lines) > limits.lines || len(msg) > limits.reply {
			t.Fatalf("textproto read a reply of %d lines, %d bytes, past the limits %+v: %q", len(lines), len(msg), limits, msg)
		}
		for _, l := range lines {
			if len(l) > limits.line {
				t.Fatalf("textproto read a line of %d bytes, past the limit %d: %q", len(l), limits.line, l)
			}
		}
	}
}
