// Package probe checks whether a backend answers: a TCP port, a Unix socket
// or an HTTP(S) health endpoint. A probe knows nothing of systemd or policy.
//
// A target that is down is a Result with OK false and a Class that says how it
// failed; probes never return a Go error for a down target.
//
// Each kind of probe is one file (tcp.go, unix.go, http.go) with its Prober,
// its constructor from a Spec and the endpoint it connects to; Kinds, the
// registry by Type, is where New and Spec.Endpoint look kinds up. The keys
// of a kind's [[check.probe]] table and their validation are in the config
// package, one file per kind too (agent/config/probe_<type>.go).
package probe

import (
	"context"
	"fmt"
	"maps"
	"slices"
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

// Type names a kind of probe; Kinds maps each to its kind. Its values are
// the documented type keys of a [[check.probe]] table.
type Type string

// The probe types.
const (
	TypeTCP  Type = "tcp"  // a TCP port (TCP)
	TypeUnix Type = "unix" // a Unix stream socket (Unix)
	TypeHTTP Type = "http" // an HTTP or HTTPS endpoint (HTTP)
)

// Spec describes one probe as configured. Type selects the kind from Kinds;
// the other fields are read by that kind only.
type Spec struct {
	// Type is TypeTCP, TypeUnix or TypeHTTP (which also covers https URLs).
	Type Type
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

// Kind is one kind of probe: how its Prober is built and what it connects
// to. Each kind lives in its own file (tcp.go, unix.go, http.go).
type Kind struct {
	// New builds the kind's Prober from a Spec of its type. It fails when
	// the spec is malformed for the kind (for example an unreadable CAFile).
	New func(Spec) (Prober, error)
	// Endpoint returns what a probe of the kind connects to, as Spec.Endpoint
	// documents it.
	Endpoint func(Spec) (network, address string)
}

// Kinds is the registry of probe kinds, by type. Adding a kind touches its
// file, its test and this map.
var Kinds = map[Type]Kind{
	TypeTCP:  tcpKind,
	TypeUnix: unixKind,
	TypeHTTP: httpKind,
}

// Types returns the known probe types, sorted.
func Types() []Type {
	return slices.Sorted(maps.Keys(Kinds))
}

// New builds the Prober for s. It fails when s.Type is unknown or the kind
// rejects the spec (for example an unreadable CAFile).
func New(s Spec) (Prober, error) {
	k, ok := Kinds[s.Type]
	if !ok {
		return nil, fmt.Errorf("new probe: unknown type %q", s.Type)
	}
	return k.New(s)
}

// Endpoint returns the socket a probe of s connects to: network "tcp" and
// the host:port (for http, the URL's host with its port, 80 or 443 when the
// URL names none), or network "unix" and the socket path. The host may be a
// name, as configured. It returns "", "" for an unknown type and an address
// of "" when s does not name one (an http URL that does not parse).
func (s Spec) Endpoint() (network, address string) {
	k, ok := Kinds[s.Type]
	if !ok {
		return "", ""
	}
	return k.Endpoint(s)
}
