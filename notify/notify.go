// Package notify delivers escalation events of incidents to people and
// systems. Each notifier kind lives in its own file; they are built from the
// configuration by package agent, so notify never imports agent.
package notify

import (
	"context"
	"time"
)

// Kind is the kind of an escalation event within an incident.
type Kind string

// The escalation events.
const (
	// Firing: the incident is escalated (a restart failed, verification
	// failed, or the restart budget is spent).
	Firing Kind = "firing"
	// Resolved: the check is healthy again after an escalated incident.
	Resolved Kind = "resolved"
	// Recovered: a restart fixed the check without escalation; sent only to
	// notifiers that ask for it.
	Recovered Kind = "recovered"
)

// Event is one escalation event of an incident.
type Event struct {
	// Kind is firing, resolved or recovered.
	Kind Kind
	// IncidentID identifies the incident: the check name and the time of its
	// first failed probe, stable across every event of the incident.
	IncidentID string
	// Check and Unit name what failed; Host is this machine's host name.
	Check, Unit, Host string
	// State is the check's policy state when the event was raised, e.g.
	// "gave_up"; Reason says why in one line.
	State, Reason string
	// Since is the time of the incident's first failed probe; At is when
	// the event was raised.
	Since, At time.Time
	// Attempts is the number of restarts medic issued in the incident.
	Attempts int
}

// Notifier delivers events to one destination.
//
// Notify returns nil when the event was delivered. On failure, retry says
// whether trying again later can help (a connection error or timeout: true;
// a rejected configuration or a permanent refusal: false), following
// Alertmanager's notify.Notifier contract.
type Notifier interface {
	// Name is the notifier's name from the configuration.
	Name() string
	Notify(ctx context.Context, ev Event) (retry bool, err error)
}
