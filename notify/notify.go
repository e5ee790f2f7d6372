// Package notify delivers the escalation messages of incidents to people and
// systems. Each notifier kind lives in its own subpackage (email, webhook,
// alertmanager); they are built from the configuration by the kinds of
// package agent/config (one file per kind), so notify never imports agent
// or its config. Package notify/httpsend holds the HTTP plumbing the HTTP
// notifiers share; package notify/outbox makes delivery durable.
package notify

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/medic-watchdog/medic/diagnose"
)

// Kind is the kind of a message within an incident.
type Kind string

// The message kinds.
const (
	// Firing: the incident is escalated. One per incident.
	Firing Kind = "firing"
	// Reminder: the incident is still open, repeat_interval after the last
	// firing or reminder message.
	Reminder Kind = "reminder"
	// Resolved: an escalated incident is over: the check is healthy again.
	Resolved Kind = "resolved"
	// Recovered: a restart fixed the check without escalation; sent only
	// when the check sets notify_on_recovery.
	Recovered Kind = "recovered"
	// Test: sent by `medic notify test`; belongs to no real incident.
	Test Kind = "test"
	// Digest groups the messages that became pending for a notifier
	// within its digest window into one delivery (see Digester); its
	// members are in Message.Digest, oldest first. The outbox makes
	// digests at delivery; they are never stored or enqueued.
	Digest Kind = "digest"
)

// Event names what happened in the incident to cause a message.
type Event string

// The escalation events.
const (
	// RestartFailed: the restart job's result was not "done" (or the job
	// could not be queued).
	RestartFailed Event = "restart_failed"
	// RestartRefused: the manager refused medic's restart for lack of
	// authorization (polkit); no restart happened, medic keeps trying.
	RestartRefused Event = "restart_refused"
	// VerifyFailed: the restart job was done but the probes did not pass
	// within verify_timeout.
	VerifyFailed Event = "verify_failed"
	// GaveUp: the restart budget is spent; medic keeps probing.
	GaveUp Event = "gave_up"
	// Flapping: the check was restarted and recovered more than the
	// threshold number of times within the restart window.
	Flapping Event = "flapping"
	// Unremediated: the check fails and its remedy action is "none".
	Unremediated Event = "unremediated"
	// EventResolved: the check is healthy again.
	EventResolved Event = "resolved"
	// EventRecovered: a restart fixed the check on its own.
	EventRecovered Event = "recovered"
	// EventTest: a test message.
	EventTest Event = "test"
)

// UnitState is the systemd state of the check's unit when the message was
// made, as read over D-Bus (org.freedesktop.systemd1(5)).
type UnitState struct {
	// ActiveState is e.g. "active", "failed"; SubState e.g. "running", "dead".
	ActiveState string `json:"active_state"`
	SubState    string `json:"sub_state"`
	// Result is the unit's last result: "success", "exit-code", "signal",
	// "core-dump", "timeout", "oom-kill", "start-limit-hit", ...
	Result string `json:"result"`
	// ExecMainCode is the CLD_* code of the main process's end (1 exited,
	// 2 killed, 3 dumped); ExecMainStatus its exit status or signal number.
	ExecMainCode   int32 `json:"exec_main_code"`
	ExecMainStatus int32 `json:"exec_main_status"`
	// NRestarts counts restarts done by systemd's own Restart= setting.
	NRestarts uint32 `json:"n_restarts"`
	// MainPID is the main process, 0 when none runs.
	MainPID uint32 `json:"main_pid"`
	// Since is when the unit entered its current ActiveState.
	Since time.Time `json:"since,omitzero"`
}

// Entry is one line of an incident's timeline.
type Entry struct {
	At time.Time `json:"at"`
	// What is a short, fixed phrase: "first failed probe", "restart 1",
	// "verify failed", "gave up", "resolved", ...
	What string `json:"what"`
	// Detail gives the evidence: the probe error, the job result, ...
	Detail string `json:"detail,omitempty"`
}

// Incident is one outage of one check: from its first failed probe until it
// is healthy again.
type Incident struct {
	// ID is stable for the whole incident and unique per host: the check
	// name and the first failure's time, e.g. "my-app-20261121T080000.123Z".
	ID    string `json:"id"`
	Check string `json:"check"`
	Unit  string `json:"unit"`
	Host  string `json:"host"`
	// Target is what the failing probe probed: "127.0.0.1:8080",
	// "unix:/run/app.sock" or a URL.
	Target string `json:"target"`
	// Problem is one line saying how the probe failed, e.g.
	// "127.0.0.1:8080 connection refused".
	Problem string `json:"problem"`
	// Cause is the diagnosed cause, e.g. "backend crashed"; "" when not
	// diagnosed.
	Cause string `json:"cause,omitempty"`
	// Diagnosis is the evidence behind Cause: the primary finding with its
	// hint, secondary findings, and the checklist (backend running, port
	// listening, direct test, socket, firewall). Nil when not diagnosed.
	Diagnosis *diagnose.Diagnosis `json:"diagnosis,omitempty"`
	// Since is the time of the first failed probe.
	Since time.Time `json:"since"`
	// ResolvedAt is when the check was healthy again; zero while open.
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// Paused says that an operator paused remediation of the check, until
	// when and why; "" when not paused.
	Paused string `json:"paused,omitempty"`
	// Restarts is the number of restarts medic issued in the incident.
	Restarts int `json:"restarts"`
	// Timeline lists what happened, oldest first.
	Timeline []Entry `json:"timeline"`
	// UnitState is the unit's state when the message was made.
	UnitState UnitState `json:"unit_state"`
	// Journal holds the unit's last journal lines, oldest first, when
	// journal reading is enabled and the journal could be read.
	Journal []string `json:"journal,omitempty"`
}

// Message is one message of an incident, the unit of delivery: the outbox
// stores Messages, and every notifier renders one in its own format.
type Message struct {
	// ID is unique per message and stable across retries and restarts of
	// medic: "<incident id>.<seq>". Notifiers derive the email Message-ID
	// and the webhook-id from it, so receivers can drop duplicates.
	ID    string `json:"id"`
	Kind  Kind   `json:"kind"`
	Event Event  `json:"event"`
	// At is when medic made the message.
	At time.Time `json:"at"`
	// Version is medic's version.
	Version  string   `json:"version"`
	Incident Incident `json:"incident"`
	// Digest holds the grouped messages, oldest first, of a message of
	// Kind Digest (see NewDigest); nil for every other kind.
	Digest []*Message `json:"digest,omitempty"`
}

// MaxSubjectRunes caps Message.Subject, in characters (runes), the marker
// included: a longer subject, e.g. one made from an HTTP reason phrase of
// any length, is cut and ends in SubjectMarker. RFC 5322 section 2.1.1
// allows 998 characters per header line (78 recommended); 200 leaves room
// for "Subject: " and for the encodings mail clients and webhooks add.
const MaxSubjectRunes = 200

// SubjectMarker ends a subject cut to MaxSubjectRunes.
const SubjectMarker = "…"

// Subject is the one-line summary of m used as the email subject, the
// alert summary and the log message, e.g. "[medic] FIRING my-app.service
// on web1: 127.0.0.1:8080 connection refused, restart did not help"; for a
// digest "[medic] DIGEST 20 incidents on web1: 18 firing, 2 resolved". CR
// and LF never appear in it, and it has at most MaxSubjectRunes
// characters: a longer one is cut and ends in SubjectMarker.
func (m *Message) Subject() string {
	if m.Kind == Digest {
		return capSubject(m.digestSubject())
	}
	in := &m.Incident
	what := in.Unit
	if what == "" {
		what = in.Check
	}
	// Only the problem's first MaxSubjectRunes characters can show; the
	// rest (megabytes, from a hostile backend) is never copied.
	problem, _ := prefix(in.Problem, MaxSubjectRunes)
	s := fmt.Sprintf("[medic] %s %s on %s: %s", strings.ToUpper(string(m.headKind())), what, in.Host, problem)
	if tail := m.outcome(); tail != "" {
		s += ", " + tail
	}
	return capSubject(OneLine(s))
}

// capSubject cuts s to MaxSubjectRunes characters, the last one
// SubjectMarker, when it is longer.
func capSubject(s string) string {
	if p, cut := prefix(s, MaxSubjectRunes); cut {
		p, _ = prefix(p, MaxSubjectRunes-utf8.RuneCountInString(SubjectMarker))
		return p + SubjectMarker
	}
	return s
}

// prefix returns the first n runes of s, and whether s is longer.
func prefix(s string, n int) (string, bool) {
	for i := range s {
		if n == 0 {
			return s[:i], true
		}
		n--
	}
	return s, false
}

// headKind is the word in front of the subject: reminders are FIRING too.
func (m *Message) headKind() Kind {
	if m.Kind == Reminder {
		return Firing
	}
	return m.Kind
}

// outcome says in a few words what medic's remedy achieved.
func (m *Message) outcome() string {
	n := m.Incident.Restarts
	switch m.Event {
	case RestartFailed:
		return "restart failed"
	case RestartRefused:
		return "medic is not allowed to restart " + m.Incident.Unit
	case VerifyFailed:
		return "restart did not help"
	case GaveUp:
		return fmt.Sprintf("gave up after %d restart%s", n, plural(n))
	case Flapping:
		return fmt.Sprintf("flapping: %d restarts", n)
	case Unremediated:
		return "no remedy configured"
	case EventResolved:
		return fmt.Sprintf("resolved after %s", m.Incident.ResolvedAt.Sub(m.Incident.Since).Round(time.Second))
	case EventRecovered:
		return fmt.Sprintf("fixed by restart after %s", m.Incident.ResolvedAt.Sub(m.Incident.Since).Round(time.Second))
	case EventTest:
		return "test message"
	}
	return ""
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// OneLine replaces CR, LF and other control characters in s by spaces, so
// that text from the network (probe errors, HTTP bodies, journal lines) can
// never start a new header line.
func OneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' {
			return ' '
		}
		return r
	}, s)
}

// Notifier delivers messages to one destination.
//
// Notify returns nil when the destination accepted m. On failure, retry says
// whether trying again later can help (a connection error, a timeout, an
// SMTP 4xx, an HTTP 5xx or 429: true; a rejected configuration, an SMTP 5xx,
// an HTTP 4xx: false), following Alertmanager's notify.Notifier contract.
// An error may wrap *RetryAfterError to ask for a minimum delay. Notify must
// send the same m identically each time (same Message-ID / webhook-id), so
// that a retry after a lost answer is a duplicate the receiver can drop.
type Notifier interface {
	// Name is the notifier's name from the configuration.
	Name() string
	Notify(ctx context.Context, m *Message) (retry bool, err error)
}

// RetryAfterError asks the sender to wait at least After before the next
// attempt, e.g. from an HTTP Retry-After header (RFC 9110 section 10.2.3).
type RetryAfterError struct {
	After time.Duration
	Err   error
}

func (e *RetryAfterError) Error() string {
	return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
}

func (e *RetryAfterError) Unwrap() error { return e.Err }

// RetryAfter returns the delay err asks for, or 0.
func RetryAfter(err error) time.Duration {
	var ra *RetryAfterError
	if errors.As(err, &ra) {
		return ra.After
	}
	return 0
}
