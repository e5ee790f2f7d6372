package probe

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"syscall"
	"time"
)

// Classify maps the error a probe met to the Class that says how it failed.
// It reads err with errors.Is and errors.As, so wrapped errors (url.Error,
// net.OpError, os.SyscallError) classify by what they wrap. The checks run in
// this order, the first match winning:
//
//   - nil: ClassNone.
//   - context.Canceled: ClassOther; the probe was stopped, the target did
//     not fail.
//   - a *net.DNSError: ClassTimeout when the lookup timed out, else ClassDNS
//     (for example "no such host", or a DNS server that refused the query:
//     the target's name did not resolve, the target itself refused nothing).
//   - ECONNREFUSED: ClassRefused. ENOENT also maps to ClassRefused: a Unix
//     socket path that does not exist means nothing listens there (servers
//     unlink their socket when they stop); Err keeps the errno text, so a
//     reader can still tell the two apart.
//   - EHOSTUNREACH, ENETUNREACH: ClassUnreachable.
//   - EACCES, EPERM: ClassPermission.
//   - context.DeadlineExceeded (and so a *TimeoutError),
//     os.ErrDeadlineExceeded, or any net.Error whose Timeout() is true:
//     ClassTimeout. EAGAIN maps to ClassTimeout too: it is what connect
//     returns at once on a Unix socket whose accept queue is full, where a
//     TCP probe of a full queue waits and times out, so a backend that is
//     alive but not accepting reads the same on both kinds.
//   - a TLS or certificate error (*tls.CertificateVerificationError,
//     tls.RecordHeaderError, tls.AlertError, x509.UnknownAuthorityError,
//     x509.HostnameError, x509.CertificateInvalidError, the other
//     crypto/tls and crypto/x509 error types, and http.ErrSchemeMismatch, an
//     HTTP answer to a TLS handshake): ClassTLS.
//   - anything else: ClassOther.
//
// Classify never returns ClassHTTPStatus or ClassBodyMismatch; the HTTP probe
// sets those itself.
func Classify(err error) Class {
	if err == nil {
		return ClassNone
	}
	if errors.Is(err, context.Canceled) {
		return ClassOther
	}
	if _, ok := errors.AsType[*net.DNSError](err); ok {
		if isTimeout(err) {
			return ClassTimeout
		}
		return ClassDNS
	}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ENOENT):
		return ClassRefused
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return ClassUnreachable
	case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
		return ClassPermission
	case isTimeout(err), errors.Is(err, syscall.EAGAIN):
		return ClassTimeout
	case isTLS(err):
		return ClassTLS
	}
	return ClassOther
}

func isTimeout(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded) {
		return true
	}
	if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
		return true
	}
	return false
}

func isTLS(err error) bool {
	if errors.Is(err, http.ErrSchemeMismatch) {
		return true // a tls.RecordHeaderError that net/http turned into text
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return true
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return true
	}
	if _, ok := errors.AsType[*tls.ECHRejectionError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.CertificateInvalidError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.SystemRootsError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.ConstraintViolationError](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.UnhandledCriticalExtension](err); ok {
		return true
	}
	if _, ok := errors.AsType[x509.InsecureAlgorithmError](err); ok {
		return true
	}
	return false
}

// withDeadline derives the context one probe started at start runs under:
// ctx bounded by timeout, whose expiry carries the cause "probe timed out
// after <timeout>". It makes no new context, and returns a cancel that does
// nothing, when ctx alone already bounds the probe as tightly: a timeout of
// zero or less (ctx's own deadline is the only bound, and nothing of the
// probe outlives it), or a ctx whose deadline comes no later than
// start+timeout (ctx ends first, so a derived context would only report
// ctx's cause anyway). That saves a context, a timer and its cancel per
// probe when the caller hands a round's deadline down.
func withDeadline(ctx context.Context, start time.Time, timeout time.Duration) (context.Context, context.CancelFunc) {
	if timeout <= 0 {
		return ctx, noCancel
	}
	if dl, ok := ctx.Deadline(); ok && !dl.After(start.Add(timeout)) {
		return ctx, noCancel
	}
	return context.WithDeadlineCause(ctx, start.Add(timeout), &TimeoutError{After: timeout})
}

// noCancel is the cancel of a probe that made no context of its own.
func noCancel() {}

// noKeepAlive configures a dialer of probe connections: they are closed at
// once (or after one HTTP exchange), so TCP keep-alive would only cost four
// setsockopt calls per probe (SO_KEEPALIVE, TCP_KEEPIDLE, TCP_KEEPINTVL,
// TCP_KEEPCNT).
func noKeepAlive() net.Dialer {
	return net.Dialer{KeepAlive: -1, KeepAliveConfig: net.KeepAliveConfig{Enable: false}}
}

// TimeoutError is the cause of a probe's context when the probe's own timeout
// passed. It reads "probe timed out after 1s", is a net.Error whose Timeout
// is true, and matches context.DeadlineExceeded with errors.Is, so it
// classifies as ClassTimeout wherever it appears in an error chain.
type TimeoutError struct {
	// After is the probe timeout that passed.
	After time.Duration
}

var _ net.Error = (*TimeoutError)(nil)

// Error reads "probe timed out after <After>".
func (e *TimeoutError) Error() string { return fmt.Sprintf("probe timed out after %s", e.After) }

// Timeout reports true: the error is a timeout.
func (e *TimeoutError) Timeout() bool { return true }

// Temporary reports true, as the net.Error interface asks; it is deprecated there.
func (e *TimeoutError) Temporary() bool { return true }

// Is reports whether target is context.DeadlineExceeded.
func (e *TimeoutError) Is(target error) bool { return target == context.DeadlineExceeded }

// fail builds the Result of a failed probe from err. When the probe's context
// ended (its deadline passed or its parent was canceled) and err does not
// already say why, the context's cause is put in front of err, so the text
// reads "probe timed out after 1s: dial tcp 127.0.0.1:8080: i/o timeout".
// A non-empty class overrides the one Classify would give. The Result's Err
// text is at most MaxErrText bytes without control characters (the
// error it stands for stays reachable with errors.Is and errors.As).
func fail(ctx context.Context, target string, start time.Time, class Class, err error) Result {
	if isTimeout(err) {
		// The net package sets the socket's deadline to ctx's, so the I/O
		// can time out a moment before ctx's own timer fires and records
		// the cause. Once the deadline has passed that timer is due: wait.
		if dl, ok := ctx.Deadline(); ok && !time.Now().Before(dl) {
			<-ctx.Done()
		}
	}
	if ctx.Err() != nil && (isTimeout(err) || errors.Is(err, context.Canceled)) {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			err = fmt.Errorf("%w: %w", cause, err)
		}
	}
	if class == ClassNone {
		class = Classify(err)
	}
	return Result{OK: false, Class: class, Duration: elapsed(start), Err: boundErr(err), Target: target}
}

// pass builds the Result of a probe that passed.
func pass(target string, start time.Time) Result {
	return Result{OK: true, Class: ClassNone, Duration: elapsed(start), Target: target}
}

// elapsed is the time since start, never zero, so that a Result always shows
// that a probe ran even on a clock with coarse resolution.
func elapsed(start time.Time) time.Duration {
	d := time.Since(start)
	if d <= 0 {
		d = 1
	}
	return d
}
