package probe

import (
	"errors"
	"fmt"
	"strings"

	"github.com/medic-watchdog/medic/internal/sockperm"
)

// Problem describes a failed Result in a few words for a person, starting
// with the target: "127.0.0.1:8080 connection refused", "http://…/health
// returned 503 Service Unavailable", "db.internal:5432 name does not
// resolve". It returns "" for a passing Result. The text may contain what a
// server sent (a status line), bounded by MaxPeerText; it is at most
// MaxErrText bytes (and a marker where it was cut), without control
// characters.
func (r Result) Problem() string {
	if r.OK {
		return ""
	}
	var what string
	switch r.Class {
	case ClassRefused:
		what = "connection refused"
	case ClassTimeout:
		what = "timed out"
	case ClassDNS:
		what = "name does not resolve"
	case ClassUnreachable:
		what = "unreachable"
	case ClassPermission:
		what = "permission denied"
		if de, ok := errors.AsType[*sockperm.DeniedError](r.Err); ok {
			what += " for " + de.User + ": " + de.Lacks()
		}
	case ClassTLS:
		what = "TLS handshake failed"
	case ClassHTTPStatus:
		var se *StatusError
		if errors.As(r.Err, &se) {
			what = "returned " + se.Status
		} else {
			what = "returned an unexpected status"
		}
	case ClassBodyMismatch:
		var be *BodyMismatchError
		if errors.As(r.Err, &be) {
			what = fmt.Sprintf("body lacks %q", be.Want)
		} else {
			what = "body mismatch"
		}
	default:
		what = "failed"
		if r.Err != nil {
			what += ": " + r.Err.Error()
		}
	}
	if r.Target != "" {
		what = r.Target + " " + what
	}
	return bound(what, MaxErrText)
}

// ShortProblem turns a check's last probe error as the agent records it,
// "TARGET: CLASS: DETAIL" (e.g. "127.0.0.1:8080: refused: dial tcp
// 127.0.0.1:8080: connect: connection refused"), into a phrase that names
// the target once: "127.0.0.1:8080 connection refused". A text of another
// shape is returned as it is.
func ShortProblem(s string) string {
	target, rest, ok := strings.Cut(s, ": ")
	if !ok {
		return s
	}
	class, detail, _ := strings.Cut(rest, ": ")
	var what string
	switch Class(class) {
	case ClassRefused:
		what = "connection refused"
	case ClassTimeout:
		what = "timed out"
	case ClassDNS:
		what = "name does not resolve"
	case ClassUnreachable:
		what = "unreachable"
	case ClassPermission:
		what = "permission denied"
	case ClassTLS:
		what = "TLS handshake failed"
	case ClassHTTPStatus:
		// "GET URL: status 503 Service Unavailable, want 200-299"
		what = "returned an unexpected status"
		if _, st, ok := strings.Cut(detail, ": status "); ok {
			st, _, _ = strings.Cut(st, ", want ")
			what = "returned " + st
		}
	case ClassBodyMismatch:
		what = "body mismatch"
		if detail != "" {
			what = detail
		}
	case ClassOther:
		if strings.Contains(detail, target) {
			return detail
		}
		what = detail
	default:
		return s
	}
	return target + " " + what
}
