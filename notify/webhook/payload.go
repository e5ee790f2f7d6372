package webhook

import (
	"strings"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/notify"
)

// SchemaVersion is the version of the JSON payload schema, the value of
// Payload.Version. It changes only when a field is removed or changes its
// meaning; new fields may be added within a version, so receivers must
// ignore fields they do not know.
const SchemaVersion = "1"

// The values of Payload.Type, after the Standard Webhooks recommendation of
// hierarchical, full-stop delimited event types.
const (
	TypeFiring    = "incident.firing"
	TypeReminder  = "incident.reminder"
	TypeResolved  = "incident.resolved"
	TypeRecovered = "incident.recovered"
	TypeTest      = "test"
	// TypeDigest is the type of a DigestPayload, which groups messages.
	TypeDigest = "digest"
)

// The values of Incident.State.
const (
	StateFiring   = "firing"
	StateResolved = "resolved"
)

// Payload is the body of a webhook with format "json", schema version 1. It
// is sent minified (no insignificant white space) as Content-Type
// application/json. Every field is always present; a time that is not known
// is null. All times are RFC 3339 in UTC with as many fractional-second
// digits as needed and none when zero (Go's time.RFC3339Nano), e.g.
// "2026-11-21T08:00:00.123Z".
//
// The body of one message is the same on every attempt: Timestamp is when
// medic made the message, not when it was sent (the attempt's time is in
// the webhook-timestamp header).
type Payload struct {
	// Version is SchemaVersion, "1".
	Version string `json:"version"`
	// Type is TypeFiring, TypeReminder, TypeResolved, TypeRecovered or
	// TypeTest, from the message's notify.Kind.
	Type string `json:"type"`
	// MessageID is the message's ID, equal to the webhook-id header: the
	// same on every retry of one message, also after a restart of medic,
	// so receivers can use it to drop duplicates.
	MessageID string `json:"message_id"`
	// Event is what caused the message, a notify.Event: "restart_failed",
	// "restart_refused",
	// "verify_failed", "gave_up", "flapping", "unremediated", "resolved",
	// "recovered" or "test".
	Event string `json:"event"`
	// Summary is the message's one-line subject without the "[medic] "
	// prefix, e.g. "FIRING my-app.service on web1: 127.0.0.1:8080
	// connection refused, restart did not help".
	Summary string `json:"summary"`
	// Incident is the incident the message belongs to.
	Incident Incident `json:"incident"`
	// Medic identifies the sender.
	Medic Medic `json:"medic"`
	// Timestamp is when medic made the message.
	Timestamp time.Time `json:"timestamp"`
}

// Incident is one outage of one check in a Payload: from its first failed
// probe until the check is healthy again.
type Incident struct {
	// ID is stable for the whole incident and unique per host, e.g.
	// "my-app-20261121T080000.123Z".
	ID string `json:"id"`
	// Check is the check's name from the configuration.
	Check string `json:"check"`
	// Unit is the systemd unit of the check, e.g. "my-app.service".
	Unit string `json:"unit"`
	// Host is the host name of the machine medic runs on.
	Host string `json:"host"`
	// State is StateFiring while the incident is open and StateResolved
	// when it is over.
	State string `json:"state"`
	// Target is what the failing probe probed: "127.0.0.1:8080",
	// "unix:/run/app.sock" or a URL.
	Target string `json:"target"`
	// Problem is one line saying how the probe failed.
	Problem string `json:"problem"`
	// Cause is the diagnosed cause, e.g. "backend crashed"; "" when not
	// diagnosed.
	Cause string `json:"cause"`
	// Since is the time of the first failed probe.
	Since time.Time `json:"since"`
	// ResolvedAt is when the check was healthy again; null while open.
	ResolvedAt *time.Time `json:"resolved_at"`
	// Restarts is the number of restarts medic issued in the incident.
	Restarts int `json:"restarts"`
	// Timeline lists what happened, oldest first; never null.
	Timeline []TimelineEntry `json:"timeline"`
	// UnitState is the unit's systemd state when the message was made.
	UnitState UnitState `json:"unit_state"`
	// Journal holds the unit's last journal lines, oldest first; empty
	// when journal reading is off or the journal could not be read; never
	// null.
	Journal []string `json:"journal"`
	// Diagnosis is the evidence behind Cause (package diagnose): primary
	// {cause, summary, hint, evidence}, secondary findings, the checklist
	// [{name, status: pass|fail|unknown|n/a, evidence}] and the evidence
	// that was unavailable; null when not diagnosed.
	Diagnosis *diagnose.Diagnosis `json:"diagnosis"`
}

// TimelineEntry is one line of an incident's timeline.
type TimelineEntry struct {
	// At is when it happened.
	At time.Time `json:"at"`
	// What is a short, fixed phrase: "first failed probe", "restart 1",
	// "verify failed", "gave up", "resolved", ...
	What string `json:"what"`
	// Detail gives the evidence (the probe error, the job result, ...);
	// may be "".
	Detail string `json:"detail"`
}

// UnitState is the systemd state of a unit, as read over D-Bus
// (org.freedesktop.systemd1(5)).
type UnitState struct {
	// ActiveState is e.g. "active", "failed".
	ActiveState string `json:"active_state"`
	// SubState is e.g. "running", "dead".
	SubState string `json:"sub_state"`
	// Result is the unit's last result: "success", "exit-code", "signal",
	// "core-dump", "timeout", "oom-kill", "start-limit-hit", ...
	Result string `json:"result"`
	// ExecMainCode is the CLD_* code of the main process's end (1 exited,
	// 2 killed, 3 dumped).
	ExecMainCode int32 `json:"exec_main_code"`
	// ExecMainStatus is the main process's exit status or signal number.
	ExecMainStatus int32 `json:"exec_main_status"`
	// NRestarts counts restarts done by systemd's own Restart= setting.
	NRestarts uint32 `json:"n_restarts"`
	// MainPID is the main process, 0 when none runs.
	MainPID uint32 `json:"main_pid"`
	// Since is when the unit entered its current ActiveState; null when
	// not known.
	Since *time.Time `json:"since"`
}

// Medic identifies the medic agent that sent a Payload.
type Medic struct {
	// Version is medic's version.
	Version string `json:"version"`
	// Host is the host name of the machine medic runs on.
	Host string `json:"host"`
}

// NewPayload returns the Payload that a webhook with format "json" sends for
// m.
func NewPayload(m *notify.Message) *Payload {
	in := &m.Incident
	p := &Payload{
		Version:   SchemaVersion,
		Type:      payloadType(m.Kind),
		MessageID: m.ID,
		Event:     string(m.Event),
		Summary:   strings.TrimPrefix(m.Subject(), "[medic] "),
		Incident: Incident{
			ID:         in.ID,
			Check:      in.Check,
			Unit:       in.Unit,
			Host:       in.Host,
			State:      incidentState(m),
			Target:     in.Target,
			Problem:    in.Problem,
			Cause:      in.Cause,
			Since:      utc(in.Since),
			ResolvedAt: utcPtr(in.ResolvedAt),
			Restarts:   in.Restarts,
			Timeline:   make([]TimelineEntry, 0, len(in.Timeline)),
			UnitState: UnitState{
				ActiveState:    in.UnitState.ActiveState,
				SubState:       in.UnitState.SubState,
				Result:         in.UnitState.Result,
				ExecMainCode:   in.UnitState.ExecMainCode,
				ExecMainStatus: in.UnitState.ExecMainStatus,
				NRestarts:      in.UnitState.NRestarts,
				MainPID:        in.UnitState.MainPID,
				Since:          utcPtr(in.UnitState.Since),
			},
			Journal:   append(make([]string, 0, len(in.Journal)), in.Journal...),
			Diagnosis: in.Diagnosis,
		},
		Medic:     Medic{Version: m.Version, Host: in.Host},
		Timestamp: utc(m.At),
	}
	for _, e := range in.Timeline {
		p.Incident.Timeline = append(p.Incident.Timeline, TimelineEntry{At: utc(e.At), What: e.What, Detail: e.Detail})
	}
	return p
}

func payloadType(k notify.Kind) string {
	switch k {
	case notify.Firing:
		return TypeFiring
	case notify.Reminder:
		return TypeReminder
	case notify.Resolved:
		return TypeResolved
	case notify.Recovered:
		return TypeRecovered
	case notify.Test:
		return TypeTest
	}
	return "incident." + string(k)
}

// incidentState is "resolved" for resolved and recovered messages and for
// any incident with a ResolvedAt, else "firing".
func incidentState(m *notify.Message) string {
	if m.Kind == notify.Resolved || m.Kind == notify.Recovered || !m.Incident.ResolvedAt.IsZero() {
		return StateResolved
	}
	return StateFiring
}

// DigestPayload is the body of a webhook with format "json" for a digest:
// the messages that became pending within the notifier's digest window,
// sent in one request (see notify.Digester). Each of Messages is the
// Payload its message would have on its own, with its own message_id.
// Receivers tell the two bodies apart by Type.
type DigestPayload struct {
	// Version is SchemaVersion, "1".
	Version string `json:"version"`
	// Type is TypeDigest, "digest".
	Type string `json:"type"`
	// MessageID is the digest's ID, equal to the webhook-id header:
	// derived from the IDs of the members, so the same on every retry of
	// the same digest, e.g. "digest-my-app-20261121T080000.123Z.1+3-0a1b2c3d4e5f".
	MessageID string `json:"message_id"`
	// Summary is the digest's subject without the "[medic] " prefix, e.g.
	// "DIGEST 20 incidents on web1: 18 firing, 2 resolved".
	Summary string `json:"summary"`
	// Messages are the grouped messages, oldest first; never empty.
	Messages []*Payload `json:"messages"`
	// Medic identifies the sender.
	Medic Medic `json:"medic"`
	// Timestamp is when medic made the newest member.
	Timestamp time.Time `json:"timestamp"`
}

// NewDigestPayload returns the DigestPayload that a webhook with format
// "json" sends for m, a message of kind notify.Digest.
func NewDigestPayload(m *notify.Message) *DigestPayload {
	p := &DigestPayload{
		Version:   SchemaVersion,
		Type:      TypeDigest,
		MessageID: m.ID,
		Summary:   strings.TrimPrefix(m.Subject(), "[medic] "),
		Messages:  make([]*Payload, 0, len(m.Digest)),
		Medic:     Medic{Version: m.Version, Host: m.Incident.Host},
		Timestamp: utc(m.At),
	}
	for _, d := range m.Digest {
		p.Messages = append(p.Messages, NewPayload(d))
	}
	return p
}

// utc drops the location and the monotonic clock reading of t, so that it
// marshals in UTC ("Z").
func utc(t time.Time) time.Time { return t.UTC() }

func utcPtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
