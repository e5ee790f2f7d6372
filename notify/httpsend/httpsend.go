// Package httpsend is the HTTP plumbing medic's HTTP notifiers (webhook,
// alertmanager) share: it sends one request, classifies the answer (whether
// a retry can help, and how long the receiver asks to wait), and makes
// errors that name the endpoint without its secrets.
package httpsend

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/medic-watchdog/medic/internal/redact"
	"github.com/medic-watchdog/medic/notify"
)

// Limits on what is read of an answer.
const (
	// ExcerptMax bounds StatusError.Body, in bytes.
	ExcerptMax = 200
	// readMax is how much of a failed answer's body is read for its
	// excerpt (more than ExcerptMax, so that a Request.Excerpt can parse a
	// short JSON document before the text is cut).
	readMax = 512
	// drainMax is how much more of an answer's body is read so that the
	// connection can be reused; a longer body closes the connection.
	drainMax = 64 << 10
)

// Request is one HTTP request of a notifier.
type Request struct {
	// Op names the operation in errors, e.g. "post webhook"; the error
	// text reads "<Op> <Redacted>: ...".
	Op string
	// Method is the HTTP method; "" means POST.
	Method string
	// URL is where the request goes. It may hold a user and password,
	// sent as basic authentication, and secrets in its query: errors show
	// Redacted instead.
	URL string
	// Redacted is URL as errors show it; "" means redact.URLString(URL).
	Redacted string
	// Header is sent with the request.
	Header http.Header
	// Body is the request body.
	Body []byte
	// Timeout bounds the attempt: connecting, sending and reading the
	// answer's status and headers. 0 leaves it to ctx.
	Timeout time.Duration
	// Excerpt makes the text of StatusError.Body from the first bytes of a
	// failed answer's body; nil means Line. Its result is cut to
	// ExcerptMax bytes.
	Excerpt func(body []byte) string
	// Now is the clock Retry-After dates are measured with; nil means
	// time.Now.
	Now func() time.Time
}

// Send sends r with client once and reports:
//
//   - (false, nil): the answer was 2xx.
//   - (true, err): a retry can help: the connection failed or was reset,
//     the attempt timed out (err is then the cause, "attempt timed out
//     after 10s: context deadline exceeded"), ctx ended, or the answer was
//     408, 429 or 5xx. When such an answer has a Retry-After header (RFC
//     9110 section 10.2.3, delay-seconds or HTTP-date) asking for a delay
//     of more than 0, err wraps a *notify.RetryAfterError with that delay,
//     at most notify.MaxRetryAfter.
//   - (false, err): a retry cannot help: the request could not be made, or
//     the answer was 1xx, 3xx or another 4xx.
//
// An error for an answer is a *StatusError. Error text never holds the
// URL's user information or query values (see Request.Redacted), nor the
// request's headers or body. The answer's body is read, up to a bound, so
// that the connection can be reused.
func Send(ctx context.Context, client *http.Client, r Request) (retry bool, err error) {
	redacted := r.Redacted
	if redacted == "" {
		redacted = redact.URLString(r.URL)
	}
	method := r.Method
	if method == "" {
		method = http.MethodPost
	}
	if r.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, r.Timeout,
			fmt.Errorf("attempt timed out after %s: %w", r.Timeout, context.DeadlineExceeded))
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, r.URL, bytes.NewReader(r.Body))
	if err != nil {
		return false, fmt.Errorf("%s %s: %w", r.Op, redacted, StripURL(err))
	}
	for k, v := range r.Header {
		req.Header[k] = append([]string(nil), v...)
	}
	resp, err := client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		} else {
			err = StripURL(err)
		}
		return true, fmt.Errorf("%s %s: %w", r.Op, redacted, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		drain(resp.Body)
		return false, nil
	}
	head, _ := io.ReadAll(io.LimitReader(resp.Body, readMax))
	drain(resp.Body)
	excerpt := r.Excerpt
	if excerpt == nil {
		excerpt = Line
	}
	serr := &StatusError{Op: r.Op, URL: redacted, StatusCode: resp.StatusCode, Body: cut(excerpt(head), ExcerptMax)}
	if !Retryable(resp.StatusCode) {
		return false, serr
	}
	now := time.Now
	if r.Now != nil {
		now = r.Now
	}
	if d, ok := notify.ParseRetryAfter(resp.Header, now()); ok && d > 0 {
		return true, &notify.RetryAfterError{After: d, Err: serr}
	}
	return true, serr
}

// Retryable says whether a retry can help after an answer with status
// code: true for 408 Request Timeout, 429 Too Many Requests and every
// 5xx; false for every other code.
func Retryable(code int) bool {
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests:
		return true
	case code >= 500 && code < 600:
		return true
	}
	return false
}

// StatusError is the error for an answer that is not 2xx.
type StatusError struct {
	// Op is the operation, e.g. "post webhook".
	Op string
	// URL is the endpoint, redacted (Request.Redacted).
	URL string
	// StatusCode is the answer's HTTP status code.
	StatusCode int
	// Body is the start of the answer's body on one line, at most
	// ExcerptMax bytes.
	Body string
}

// Error returns e.g. "post webhook https://host/path: 503 Service
// Unavailable: upstream down". A 3xx answer adds "(redirects are not
// followed)".
func (e *StatusError) Error() string {
	s := fmt.Sprintf("%s %s: %d %s", e.Op, e.URL, e.StatusCode, http.StatusText(e.StatusCode))
	if e.StatusCode >= 300 && e.StatusCode < 400 {
		s += " (redirects are not followed)"
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// Line makes the first ExcerptMax bytes of a body printable on one line:
// invalid UTF-8 dropped, control characters and runs of white space made
// one space.
func Line(b []byte) string {
	b = b[:min(len(b), ExcerptMax)]
	s := strings.ToValidUTF8(string(b), "")
	return strings.Join(strings.Fields(notify.OneLine(s)), " ")
}

// cut returns the longest prefix of s of at most n bytes that does not
// split a UTF-8 sequence.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// StripURL returns the error under a *url.Error, whose text would show the
// URL unredacted, or err itself when there is none.
func StripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// NoRedirects returns a copy of c that does not follow redirects: a 3xx
// answer is then the answer Send classifies. When c is nil it is a client
// like http.DefaultClient with a transport of its own that opens a new
// connection per request: a notifier sends rarely, and a kept-alive
// connection to a receiver that restarted meanwhile fails the next POST
// with EOF (net/http does not retry a POST on a reused connection).
func NoRedirects(c *http.Client) *http.Client {
	var nc http.Client
	if c != nil {
		nc = *c
	} else if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t = t.Clone()
		t.DisableKeepAlives = true
		nc.Transport = t
	}
	nc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &nc
}

// drain reads what is left of a body, up to drainMax, so that the
// connection can be reused.
func drain(r io.Reader) { _, _ = io.Copy(io.Discard, io.LimitReader(r, drainMax)) }
