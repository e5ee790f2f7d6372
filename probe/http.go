package probe

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/internal/redact"
)

// MaxBodyRead is how much of a response body, in bytes, an HTTP probe reads
// when it looks for ExpectBody: 64 KiB.
const MaxBodyRead = 64 << 10

// DefaultExpectStatus is the status range an HTTP probe accepts when
// HTTPOptions.ExpectStatus is empty: 200-299.
var DefaultExpectStatus = []StatusRange{{200, 299}}

// HTTP probes an HTTP or HTTPS endpoint with one request over a fresh
// connection (keep-alives are off, so every probe proves that the backend
// still accepts connections). Redirects are never followed. It passes when,
// within the timeout, the response status lies in ExpectStatus (200-299 when
// empty; a 3xx passes only when listed) and, when ExpectBody is set, the
// first 64 KiB of the body contain ExpectBody. It fails with
//
//   - ClassHTTPStatus when the status is not expected,
//   - ClassBodyMismatch when the body does not contain ExpectBody,
//   - ClassTLS when the TLS handshake or certificate verification fails
//     (unknown authority, wrong host name, expired certificate, a server
//     that does not speak TLS),
//   - ClassRefused, ClassTimeout, ClassDNS, ClassUnreachable or ClassOther as
//     Classify reads the transport error (a timeout covers connect, TLS
//     handshake, response headers and the body read).
//
// The environment's HTTP_PROXY and HTTPS_PROXY are ignored: a probe talks to
// its target directly. An HTTP is safe for concurrent use.
type HTTP struct {
	method string
	url    *url.URL
	target string
	host   string // the Host header, when HTTPOptions.Headers sets one
	header http.Header
	expect []StatusRange
	body   []byte
	addr   string      // host:port to dial: the URL's, with its scheme's port when it names none
	tls    *tls.Config // for https: ServerName filled in; nil for http
	dialer net.Dialer
}

var _ Prober = (*HTTP)(nil)

// NewHTTP returns an HTTP probe built from o. It fails when o.URL is not an
// absolute http:// or https:// URL with a host, when an ExpectStatus range
// lies outside 100-599, when a header name or value is invalid, or when
// o.CAFile cannot be read or holds no PEM certificate. When o.ServerName is
// empty and o.Headers sets a Host, TLS verifies against that Host (without
// its port) instead of the URL's host.
func NewHTTP(o HTTPOptions) (*HTTP, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		// url.Error's text holds the whole URL, secrets and all.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return nil, fmt.Errorf("new http probe: parse url: %w", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("new http probe: url %q: scheme must be http or https", redact.URLString(o.URL))
	}
	if u.Host == "" {
		return nil, fmt.Errorf("new http probe: url %q: no host", redact.URLString(o.URL))
	}
	p := &HTTP{
		method: o.Method,
		url:    u,
		target: redact.URL(u, false),
		header: make(http.Header),
		expect: slices.Clone(o.ExpectStatus),
		body:   []byte(o.ExpectBody),
	}
	if p.method == "" {
		p.method = http.MethodGet
	}
	if len(p.expect) == 0 {
		p.expect = slices.Clone(DefaultExpectStatus)
	}
	for _, r := range p.expect {
		if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
			return nil, fmt.Errorf("new http probe: expect_status %s: codes must lie in 100-599, low to high", r)
		}
	}
	for k, v := range o.Headers {
		if strings.EqualFold(k, "Host") {
			p.host = v
			continue
		}
		p.header.Set(k, v)
	}
	if p.header.Get("User-Agent") == "" {
		p.header.Set("User-Agent", "medic-probe")
	}
	// Check the method and headers once here, so a bad one is a
	// configuration error and not a failed probe at every interval.
	if _, err := p.newRequest(context.Background()); err != nil {
		return nil, fmt.Errorf("new http probe: %w", err)
	}

	tlsConfig := &tls.Config{
		InsecureSkipVerify: o.InsecureSkipVerify, //nolint:gosec // only when the user asks
		ServerName:         o.ServerName,
	}
	if tlsConfig.ServerName == "" && p.host != "" {
		if h, _, err := net.SplitHostPort(p.host); err == nil {
			tlsConfig.ServerName = h
		} else {
			tlsConfig.ServerName = p.host
		}
	}
	if o.CAFile != "" {
		pem, err := os.ReadFile(o.CAFile)
		if err != nil {
			return nil, fmt.Errorf("new http probe: read ca_file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("new http probe: ca_file %s: no PEM certificate found", o.CAFile)
		}
		tlsConfig.RootCAs = pool
	}
	p.dialer = noKeepAlive()
	_, p.addr = httpEndpoint(Spec{HTTP: HTTPOptions{URL: o.URL}})
	if u.Scheme == "https" {
		if tlsConfig.ServerName == "" {
			tlsConfig.ServerName = u.Hostname()
		}
		p.tls = tlsConfig
	}
	return p, nil
}

func (p *HTTP) newRequest(ctx context.Context) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, p.method, p.url.String(), nil)
	if err != nil {
		return nil, err
	}
	for k, vs := range p.header {
		req.Header[k] = append([]string(nil), vs...)
	}
	if p.host != "" {
		req.Host = p.host
	}
	// As net/http's Client: credentials in the URL are sent as basic
	// authentication (RFC 7617) unless a header says otherwise.
	if u := p.url.User; u != nil && req.Header.Get("Authorization") == "" {
		pw, _ := u.Password()
		req.SetBasicAuth(u.Username(), pw)
	}
	req.Close = true // "Connection: close": one request per connection
	return req, nil
}

// roundTrip sends req over a new connection and reads the response's
// status line and headers, on this goroutine: what net/http's Transport
// does for a request without keep-alive, without its connection pool and
// the two goroutines it starts per connection. ctx bounds the dial, the TLS
// handshake and every read and write. The caller reads the body and then
// closes conn.
func (p *HTTP) roundTrip(ctx context.Context, req *http.Request) (resp *http.Response, conn net.Conn, err error) {
	conn, err = p.dialer.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, nil, err
	}
	defer func() {
		if err != nil {
			_ = conn.Close()
			if ctx.Err() != nil {
				err = ctx.Err() // as the Transport says it
			}
		}
	}()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	// A context cancelled (not timed out) interrupts the I/O too.
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if p.tls != nil {
		tc := tls.Client(conn, p.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			// As net/http's Client: a plain HTTP answer to a TLS
			// handshake (golang.org/issue/11111).
			if rh, ok := errors.AsType[tls.RecordHeaderError](err); ok && string(rh.RecordHeader[:]) == "HTTP/" {
				return nil, conn, http.ErrSchemeMismatch
			}
			return nil, conn, err
		}
		conn = tc
	}
	if err := req.Write(conn); err != nil {
		return nil, conn, err
	}
	// Headers past MaxHeaderRead fail the probe; the body is read up to
	// MaxBodyRead by the caller.
	lr := &io.LimitedReader{R: conn, N: MaxHeaderRead}
	br := bufio.NewReader(lr)
	for {
		resp, err = http.ReadResponse(br, req)
		if err != nil {
			if lr.N <= 0 {
				err = fmt.Errorf("net/http: server response headers exceeded %d bytes; aborted", MaxHeaderRead)
			}
			return nil, conn, err
		}
		// 1xx answers come before the final one (RFC 9110 section 15.2).
		if resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	lr.N = 2*MaxBodyRead + int64(br.Size())
	return resp, conn, nil
}

// Probe sends one request under ctx bounded by timeout (a timeout of zero or
// less leaves ctx alone as the bound). The Result's Target, and every URL in
// its Err, is the URL with its userinfo and query values redacted
// ("http://xxxxx@host/health?token=xxxxx"); what the server sent (status
// line, Location, the text of a malformed answer) is bounded by
// MaxPeerText and has its control characters replaced.
func (p *HTTP) Probe(ctx context.Context, timeout time.Duration) Result {
	start := time.Now()
	ctx, cancel := withDeadline(ctx, start, timeout)
	defer cancel()
	req, err := p.newRequest(ctx)
	if err != nil {
		return fail(ctx, p.target, start, ClassOther, fmt.Errorf("build request: %w", err))
	}
	resp, conn, err := p.roundTrip(ctx, req)
	if err != nil {
		// Worded as net/http's Client words it: `Get "URL": ...`, with
		// the URL redacted.
		return fail(ctx, p.target, start, ClassNone, &url.Error{Op: urlErrorOp(p.method), URL: p.target, Err: err})
	}
	defer func() { _ = conn.Close() }()

	if !statusExpected(p.expect, resp.StatusCode) {
		return fail(ctx, p.target, start, ClassHTTPStatus, &StatusError{
			Method: p.method, URL: p.target, Status: PeerText(resp.Status), Code: resp.StatusCode,
			Location: PeerText(redact.URLString(resp.Header.Get("Location"))), Want: p.expect,
		})
	}
	if len(p.body) == 0 {
		return pass(p.target, start)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBodyRead))
	if err != nil {
		return fail(ctx, p.target, start, ClassNone, fmt.Errorf("%s %s: read body: %w", p.method, p.target, err))
	}
	if !bytes.Contains(body, p.body) {
		return fail(ctx, p.target, start, ClassBodyMismatch,
			fmt.Errorf("%s %s: %w", p.method, p.target, &BodyMismatchError{Want: string(p.body), Read: len(body)}))
	}
	return pass(p.target, start)
}

// urlErrorOp is the Op of the url.Error net/http's Client returns for
// method: "Get" for GET.
func urlErrorOp(method string) string {
	if method == "" {
		return "Get"
	}
	return method[:1] + strings.ToLower(method[1:])
}

func statusExpected(want []StatusRange, code int) bool {
	for _, r := range want {
		if r.Contains(code) {
			return true
		}
	}
	return false
}

// StatusError is the Err of an HTTP probe that failed with ClassHTTPStatus.
// It reads `GET http://127.0.0.1:8080/health: status 503 Service Unavailable,
// want 200-299`, and for a redirect adds `(Location: /login)` after the status.
type StatusError struct {
	// Method and URL are the request's; URL has any password redacted.
	Method, URL string
	// Status is the response's status line text, e.g. "503 Service
	// Unavailable", as PeerText leaves it: at most MaxPeerText bytes,
	// control characters replaced.
	Status string
	// Code is the response's status code.
	Code int
	// Location is the response's Location header, often set on a 3xx,
	// with userinfo and query values redacted and bounded like Status.
	Location string
	// Want lists the expected status ranges.
	Want []StatusRange
}

// Error reads "METHOD URL: status STATUS, want RANGES".
func (e *StatusError) Error() string {
	want := make([]string, len(e.Want))
	for i, r := range e.Want {
		want[i] = r.String()
	}
	status := e.Status
	if e.Location != "" {
		status += " (Location: " + e.Location + ")"
	}
	return fmt.Sprintf("%s %s: status %s, want %s", e.Method, e.URL, status, strings.Join(want, ", "))
}

// BodyMismatchError is wrapped in the Err of an HTTP probe that failed with
// ClassBodyMismatch. It reads `body does not contain "ok" (read 12 bytes)`.
type BodyMismatchError struct {
	// Want is the expected substring.
	Want string
	// Read is how many bytes of the body were searched, at most MaxBodyRead.
	Read int
}

// Error reads `body does not contain "WANT" (read N bytes)`.
func (e *BodyMismatchError) Error() string {
	return fmt.Sprintf("body does not contain %q (read %d bytes)", e.Want, e.Read)
}

func newHTTPSpec(s Spec) (Prober, error) {
	p, err := NewHTTP(s.HTTP)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// httpKind connects to the host and port of Spec.HTTP.URL.
var httpKind = Kind{New: newHTTPSpec, Endpoint: httpEndpoint}

// httpEndpoint returns "tcp" and the host:port of s's URL, with the port of
// its scheme (80 for http, 443 for https) when the URL names none; the
// address is "" when the URL does not parse or names no host.
func httpEndpoint(s Spec) (network, address string) {
	u, err := url.Parse(s.HTTP.URL)
	if err != nil || u.Hostname() == "" {
		return "tcp", ""
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[strings.ToLower(u.Scheme)]
	}
	return "tcp", net.JoinHostPort(u.Hostname(), port)
}
