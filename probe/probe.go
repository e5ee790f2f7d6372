// Package probe checks whether a backend answers: a TCP port, a Unix socket
// or an HTTP(S) health endpoint. A probe knows nothing of systemd or policy.
//
// A target that is down is a Result with OK false and a Class that says how it
// failed; probes never return a Go error for a down target.
package probe

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Class names how a probe failed. The zero value means the probe passed.
type Class string

// The failure classes, derived from the error the probe met.
const (
	ClassNone         Class = ""              // the probe passed
	ClassRefused      Class = "refused"       // ECONNREFUSED, or ENOENT for a Unix socket: nothing listens on the port or socket
	ClassTimeout      Class = "timeout"       // the deadline passed (handshake, request or body), or the accept queue is full
	ClassDNS          Class = "dns"           // the host name did not resolve
	ClassUnreachable  Class = "unreachable"   // EHOSTUNREACH / ENETUNREACH
	ClassPermission   Class = "permission"    // EACCES / EPERM, e.g. on a Unix socket
	ClassTLS          Class = "tls"           // TLS handshake or certificate verification failed
	ClassHTTPStatus   Class = "http_status"   // the HTTP status code was not expected
	ClassBodyMismatch Class = "body_mismatch" // the body did not contain expect_body
	ClassOther        Class = "other"         // any other failure
)

// Result is the outcome of one probe.
type Result struct {
	// OK is true when the target answered as expected.
	OK bool
	// Class says how the probe failed; ClassNone when OK.
	Class Class
	// Duration is the wall time the probe took.
	Duration time.Duration
	// Err describes the failure; nil when OK.
	Err error
	// Target is what was probed, e.g. "127.0.0.1:8080", "unix:/run/app.sock"
	// or "http://127.0.0.1:8080/health".
	Target string
}

// Prober probes one target. Probe must return by the earlier of ctx's
// deadline and timeout, and must be safe to call from several goroutines.
type Prober interface {
	Probe(ctx context.Context, timeout time.Duration) Result
}

// Spec describes one probe as configured. Type selects the Prober from Kinds;
// the other fields are read by that kind only.
type Spec struct {
	// Type is "tcp", "unix" or "http" (which also covers https URLs).
	Type string
	// Address is host:port for tcp; the host may be a name, resolved at each probe.
	Address string
	// Path is the Unix socket path for unix.
	Path string
	// ClientUser, for unix, is the user that connects to the socket in
	// production (the proxy's, e.g. "www-data"): the probe passes only when
	// it could connect too, by the rules of path_resolution(7) and unix(7)
	// (see NewUnixAs). Empty checks medic's own access only.
	ClientUser string
	// HTTP holds the options of the http kind.
	HTTP HTTPOptions
}

// HTTPOptions configures an HTTP(S) probe.
type HTTPOptions struct {
	// URL is the absolute http:// or https:// URL to request.
	URL string
	// Method is the request method; empty means GET.
	Method string
	// Headers are added to the request; a "Host" entry sets the Host header.
	Headers map[string]string
	// ExpectStatus lists the accepted status codes; empty means 200-299.
	// Redirects are never followed, so a 3xx passes only when listed here.
	ExpectStatus []StatusRange
	// ExpectBody, when not empty, must occur in the first 64 KiB of the body.
	ExpectBody string
	// InsecureSkipVerify turns TLS certificate verification off. It is off
	// (verification on) by default.
	InsecureSkipVerify bool
	// CAFile is a PEM bundle of extra roots for verifying the server.
	CAFile string
	// ServerName overrides the name used for SNI and verification.
	ServerName string
}

// StatusRange is an inclusive range of HTTP status codes; Min == Max for one code.
type StatusRange struct {
	Min, Max int
}

// Contains reports whether code lies in the range.
func (r StatusRange) Contains(code int) bool { return code >= r.Min && code <= r.Max }

// String formats the range as "200" or "200-299".
func (r StatusRange) String() string {
	if r.Min == r.Max {
		return strconv.Itoa(r.Min)
	}
	return strconv.Itoa(r.Min) + "-" + strconv.Itoa(r.Max)
}

// ParseStatusRange parses "200", "200-299" or "2xx" (RFC 9110 section 15 status
// codes, 100-599). It returns an error naming the text when it is none of those.
func ParseStatusRange(s string) (StatusRange, error) {
	s = strings.TrimSpace(s)
	var r StatusRange
	switch {
	case len(s) == 3 && strings.HasSuffix(strings.ToLower(s), "xx") && s[0] >= '1' && s[0] <= '5':
		base := int(s[0]-'0') * 100
		r = StatusRange{base, base + 99}
	case strings.Contains(s, "-"):
		lo, hi, _ := strings.Cut(s, "-")
		a, err1 := strconv.Atoi(strings.TrimSpace(lo))
		b, err2 := strconv.Atoi(strings.TrimSpace(hi))
		if err1 != nil || err2 != nil {
			return r, fmt.Errorf("parse status range %q: want CODE, CODE-CODE or Nxx", s)
		}
		r = StatusRange{a, b}
	default:
		c, err := strconv.Atoi(s)
		if err != nil {
			return r, fmt.Errorf("parse status range %q: want CODE, CODE-CODE or Nxx", s)
		}
		r = StatusRange{c, c}
	}
	if r.Min < 100 || r.Max > 599 || r.Min > r.Max {
		return r, fmt.Errorf("parse status range %q: codes must lie in 100-599, low to high", s)
	}
	return r, nil
}

// Kinds maps a Spec.Type to the constructor of its Prober. Each kind's file
// registers itself here in an init function.
var Kinds = map[string]func(Spec) (Prober, error){}

// New builds the Prober for s. It fails when s.Type is unknown or the kind
// rejects the spec (for example an unreadable CAFile).
func New(s Spec) (Prober, error) {
	mk, ok := Kinds[s.Type]
	if !ok {
		return nil, fmt.Errorf("new probe: unknown type %q", s.Type)
	}
	return mk(s)
}
