package diagnose

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

// The causes of an HTTP probe that reached a server which answered wrong.
const (
	// WrongPath: the server answers, but not at the probe's path or not to
	// its method (404 Not Found, 405 Method Not Allowed, 410 Gone).
	WrongPath Cause = "wrong path or endpoint"
	// BackendError: the server answers with a 5xx, the backend itself
	// fails (or, for 502 and 504, a proxy in front of it cannot reach it).
	BackendError Cause = "backend error"
	// UnexpectedStatus: the server answers with another status the probe
	// does not expect (a redirect, 401, 403, 400, ...).
	UnexpectedStatus Cause = "unexpected HTTP status"
	// TLSToPlain: the probe speaks TLS (https://) to a port that speaks
	// plain HTTP.
	TLSToPlain Cause = "TLS to a plain-HTTP port"
	// PlainToTLS: the probe speaks plain HTTP (http://) to a port that
	// speaks TLS.
	PlainToTLS Cause = "plain HTTP to a TLS port"
)

// wireCheck is what a second look at an HTTP probe's port found: whether it
// completes a TLS handshake, or answers a plain HTTP request.
type wireCheck struct {
	// tried says that the check ran; tlsOK that a TLS handshake completed
	// (checked for an http:// probe); plainOK that a plain HTTP request got
	// an HTTP status line, kept in statusLine (checked for an https:// one).
	tried, tlsOK, plainOK bool
	statusLine            string
	err                   error
}

// wireCheckTimeout bounds the second look at the port.
const wireCheckTimeout = 2 * time.Second

// gatherHTTP looks at the port of a failed HTTP probe again when the
// failure may come from speaking the wrong protocol: an http:// probe that
// got a 400 or lost its connection is tried with a TLS handshake, an
// https:// probe whose handshake failed with a plain HTTP request.
func (d *run) gatherHTTP(ctx context.Context) {
	in, res := d.in, d.in.Result
	if in.Spec.Type != probe.TypeHTTP || res.OK || len(d.probed) == 0 {
		return
	}
	u, err := url.Parse(in.Spec.HTTP.URL)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, wireCheckTimeout)
	defer cancel()
	switch {
	case u.Scheme == "http" && suspectPlainToTLS(res):
		d.wire = tlsHandshake(ctx, d.probed[0], u.Hostname())
	case u.Scheme == "https" && (res.Class == probe.ClassTLS || res.Class == probe.ClassOther) && !certificateError(res.Err):
		d.wire = plainRequest(ctx, d.probed[0], u.Host)
	}
	if d.wire != nil && d.wire.err != nil && !d.wire.tlsOK && !d.wire.plainOK {
		// The second look found nothing: it is evidence, not a gap.
		d.wire.err = fmt.Errorf("second look at %s: %w", d.probed[0], d.wire.err)
	}
}

// suspectPlainToTLS reports whether an http:// probe's failure is what a
// TLS port answers to plain HTTP: nginx's and Go's 400, a TLS alert read as
// a malformed HTTP response, or a connection closed or reset after the
// request.
func suspectPlainToTLS(res probe.Result) bool {
	if se, ok := errors.AsType[*probe.StatusError](res.Err); ok {
		return se.Code == http.StatusBadRequest
	}
	return res.Class == probe.ClassOther
}

// tlsAlertAnswer reports whether err is net/http's reading of a TLS record
// (an alert, "\x15\x03", or a handshake, "\x16\x03") as an HTTP response.
func tlsAlertAnswer(err error) bool {
	if err == nil {
		return false
	}
	t := err.Error()
	return strings.Contains(t, "malformed HTTP") && (strings.Contains(t, `\x15\x03`) || strings.Contains(t, `\x16\x03`))
}

// plainAnswer reports whether err says that a TLS client read plain HTTP
// where a TLS record should be.
func plainAnswer(err error) bool {
	if errors.Is(err, http.ErrSchemeMismatch) {
		return true
	}
	if rh, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return rh.Conn != nil || strings.HasPrefix(string(rh.RecordHeader[:]), "HTTP/") ||
			strings.Contains(rh.Msg, "does not look like a TLS handshake")
	}
	return false
}

// certificateError reports whether err is a failed certificate check: the
// handshake itself worked, so the port does speak TLS.
func certificateError(err error) bool {
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return true
	}
	return false
}

func tlsHandshake(ctx context.Context, addr netip.AddrPort, host string) *wireCheck {
	w := &wireCheck{tried: true}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr.String())
	if err != nil {
		w.err = err
		return w
	}
	defer func() { _ = c.Close() }()
	cfg := &tls.Config{InsecureSkipVerify: true} //nolint:gosec // only asks whether the port speaks TLS
	if _, err := netip.ParseAddr(host); err != nil && host != "" {
		cfg.ServerName = host
	}
	if err := tls.Client(c, cfg).HandshakeContext(ctx); err != nil {
		w.err = err
		return w
	}
	w.tlsOK = true
	return w
}

func plainRequest(ctx context.Context, addr netip.AddrPort, host string) *wireCheck {
	w := &wireCheck{tried: true}
	c, err := (&net.Dialer{}).DialContext(ctx, "tcp", addr.String())
	if err != nil {
		w.err = err
		return w
	}
	defer func() { _ = c.Close() }()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "HEAD / HTTP/1.0\r\nHost: %s\r\nUser-Agent: medic-probe\r\n\r\n", host); err != nil {
		w.err = err
		return w
	}
	line, err := bufio.NewReaderSize(c, 256).ReadString('\n')
	if strings.HasPrefix(line, "HTTP/") {
		w.plainOK = true
		w.statusLine = probe.PeerText(strings.TrimSpace(line))
		return w
	}
	w.err = err
	return w
}

// httpFinding names the cause of a failed HTTP probe whose server answered
// wrong, or returns nil when the failure is not of that kind (refused,
// timed out, unresolved: the other findings cover those).
func (d *run) httpFinding() *Finding {
	in, res := d.in, d.in.Result
	if in.Spec.Type != probe.TypeHTTP || res.OK {
		return nil
	}
	u, err := url.Parse(in.Spec.HTTP.URL)
	if err != nil {
		return nil
	}
	addr := u.Host
	if len(d.probed) > 0 {
		addr = d.probed[0].String()
	}
	w := d.wire
	if w == nil {
		w = &wireCheck{}
	}
	se, _ := errors.AsType[*probe.StatusError](res.Err)
	ev := map[string]any{"url": res.Target, "address": addr}
	if se != nil {
		ev["method"], ev["status_code"], ev["status"] = se.Method, se.Code, se.Status
		if se.Location != "" {
			ev["location"] = se.Location
		}
	}
	if w.tried {
		if u.Scheme == "http" {
			ev["tls_handshake"] = w.tlsOK
		} else {
			ev["plain_http"] = w.plainOK
		}
		if w.statusLine != "" {
			ev["plain_http_answer"] = w.statusLine
		}
		if w.err != nil {
			ev["second_look"] = w.err.Error()
		}
	}

	switch {
	case u.Scheme == "http" && (w.tlsOK || tlsAlertAnswer(res.Err)):
		how := "a TLS handshake with it completes"
		if !w.tlsOK {
			how = "it answered with a TLS alert"
		}
		return &Finding{Cause: PlainToTLS, Evidence: ev,
			Summary: fmt.Sprintf("%s speaks TLS, the probe sent plain HTTP (%s): %s", addr, how, res.Problem()),
			Hint:    "the server speaks TLS: use https:// (" + withScheme(u, "https") + ")"}
	case u.Scheme == "https" && (plainAnswer(res.Err) || w.plainOK):
		return &Finding{Cause: TLSToPlain, Evidence: ev,
			Summary: fmt.Sprintf("%s speaks plain HTTP, the probe started a TLS handshake: %s", addr, res.Problem()),
			Hint:    "the server speaks plain HTTP: use http:// (" + withScheme(u, "http") + ")"}
	case se == nil:
		return nil
	}
	return statusFinding(se, ev, d.in.Unit)
}

// statusFinding names the cause of an unexpected HTTP status.
func statusFinding(se *probe.StatusError, ev map[string]any, unit *unit.State) *Finding {
	answered := fmt.Sprintf("%s %s answered %s", se.Method, se.URL, se.Status)
	f := &Finding{Cause: UnexpectedStatus, Evidence: ev, Summary: answered}
	switch c := se.Code; {
	case c == http.StatusNotFound || c == http.StatusGone:
		f.Cause, f.Hint = WrongPath, "check the health endpoint's path (the probe's url)"
	case c == http.StatusMethodNotAllowed || c == http.StatusNotImplemented:
		f.Cause, f.Hint = WrongPath, fmt.Sprintf("the endpoint does not take %s: check the probe's method and url", se.Method)
	case c >= 500:
		f.Cause = BackendError
		f.Summary = fmt.Sprintf("backend error: %d: %s", c, answered)
		if c == http.StatusBadGateway || c == http.StatusGatewayTimeout {
			f.Summary += " (a proxy in front of the backend could not reach it)"
		}
		f.Hint = "the backend runs but fails: read its log"
		if unit != nil {
			f.Hint += " (journalctl -u " + unit.Name + ")"
		}
	case c >= 300 && c < 400:
		f.Hint = "the endpoint redirects"
		if se.Location != "" {
			f.Hint += " to " + se.Location
		}
		f.Hint += ": probe the final URL, or list the code in expect_status"
	case c == http.StatusUnauthorized || c == http.StatusForbidden:
		f.Hint = "the endpoint refuses the probe: give the probe the credentials it needs (headers), or allow medic's address"
	case c == http.StatusBadRequest:
		f.Hint = "the server rejects the request: check the probe's Host header and method"
	default:
		f.Hint = "fix the endpoint, or list the code in expect_status if it means healthy"
	}
	return f
}

// withScheme returns u with another scheme and its credentials redacted.
func withScheme(u *url.URL, scheme string) string {
	v := *u
	v.Scheme = scheme
	v.User = nil
	v.RawQuery = ""
	return v.String()
}
