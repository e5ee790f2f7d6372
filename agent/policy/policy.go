// Package policy is the per-check state machine that decides when medic acts.
//
// A Machine is pure and deterministic: it takes events (a probe result, the
// result of a remedy, the passing of time) together with the time they
// happened, and returns the transitions they caused and the action to take.
// It starts no goroutines, reads no clock and does no I/O; the runner in
// package agent drives it. The model is Consul's StatusHandler
// (agent/checks/check.go), with counters that start at zero so that medic never
// acts on the first failure after it starts.
//
//	healthy ──(failures consecutive failed probes)──► failing ──► restarting ──► verifying ──► healthy
//	                                                     │            ▲              │
//	                                                     │            └── backoff ───┘ (job failed or verify timed out)
//	                                                     └──► gave_up (restart budget spent; keeps probing;
//	                                                                   budget renewed after retry_after)
package policy

import (
	"fmt"
	"time"
)

// State is the phase a check is in.
type State string

// The states of a check.
const (
	// Healthy: the probes pass, or fewer than Failures consecutive probes failed.
	Healthy State = "healthy"
	// Failing: Failures consecutive probes failed; an incident is open. With
	// remedy action "none" a check stays here until the probes pass again.
	Failing State = "failing"
	// Restarting: a restart job is in flight, or the next attempt waits for its
	// backoff delay to pass.
	Restarting State = "restarting"
	// Verifying: the job finished; the probes must pass Successes times
	// within VerifyTimeout.
	Verifying State = "verifying"
	// GaveUp: the restart budget is spent. medic keeps probing and resolves the
	// incident when the probes pass; after RetryAfter it renews the budget.
	GaveUp State = "gave_up"
)

// Params are the thresholds and timings of one check. Durations are
// wall-clock lengths measured with the monotonic clock of the times given to
// the Machine.
type Params struct {
	// Failures is the failure threshold: consecutive failed probes before acting (>= 1).
	Failures int
	// Successes is the success threshold: consecutive passing probes that
	// count as healthy again (>= 1).
	Successes int
	// Grace is the grace period after the Machine starts and after each
	// restart during which failed probes are not counted.
	Grace time.Duration
	// Remediate is false for remedy action "none": the Machine never asks
	// for a restart.
	Remediate bool
	// VerifyTimeout bounds the time from a finished restart job to the
	// probes passing.
	VerifyTimeout time.Duration
	// MaxRestarts restarts are allowed within Window (the restart budget).
	MaxRestarts int
	// Window is the sliding window of the restart budget.
	Window time.Duration
	// Backoff is the delay before the second attempt of an incident; it
	// doubles for each further attempt up to BackoffMax.
	Backoff, BackoffMax time.Duration
	// RetryAfter renews the budget this long after giving up; 0 means never.
	RetryAfter time.Duration
}

// Transition is one change of state, as logged and handed to escalation.
type Transition struct {
	From, To State
	// Reason says why, in words fit for a log line or an alert.
	Reason string
	// Attempt is the number of the restart within the current incident
	// (1 for the first); 0 before any restart.
	Attempt int
	// At is when the event that caused the transition happened.
	At time.Time
	// Elapsed is the time since the incident's first failed probe, or zero
	// when no incident is open.
	Elapsed time.Duration
	// Escalate is true when the transition reports that remediation did not
	// work: a restart job that was not "done" (or could not be queued), a
	// verification that timed out, or a spent restart budget.
	Escalate bool
	// Refused is true when the manager refused the restart for lack of
	// authorization (see JobRefused): no restart happened.
	Refused bool
}

// Decision is what the driver must do after an event.
type Decision struct {
	// Transitions lists the state changes the event caused, in order.
	Transitions []Transition
	// Restart asks the driver to run the remedy now and report its result
	// with JobDone.
	Restart bool
	// WakeAt, when not zero, is when the driver must call Tick at the
	// latest (a backoff, verify deadline or budget renewal falls due).
	WakeAt time.Time
}

// Machine is the state machine of one check. The zero value is not usable;
// call New. A Machine is not safe for concurrent use.
type Machine struct {
	p Params

	state     State
	fails     int // consecutive failed probes
	successes int // consecutive passing probes
	lastErr   string

	graceUntil   time.Time
	failingSince time.Time   // first failed probe of the open incident; zero if none
	attempt      int         // restarts in this incident
	restarts     []time.Time // restarts inside the sliding window
	jobInFlight  bool
	nextAttempt  time.Time // restart falls due at this time (Restarting, not in flight)
	verifyUntil  time.Time // deadline of Verifying
	gaveUpAt     time.Time
	pausedUntil  time.Time // remediation paused (maintenance) until then
	refusals     int       // restarts refused in a row for lack of authorization
}

// New returns a Machine in state Healthy whose grace period starts at now.
func New(p Params, now time.Time) *Machine {
	return &Machine{p: p, state: Healthy, graceUntil: now.Add(p.Grace)}
}

// State returns the current state.
func (m *Machine) State() State { return m.state }

// FailingSince returns the time of the open incident's first failed probe,
// or the zero time when no incident is open.
func (m *Machine) FailingSince() time.Time { return m.failingSince }

// Attempt returns the number of restarts issued in the open incident.
func (m *Machine) Attempt() int { return m.attempt }

// RestartsInWindow returns how many restarts of the budget are used at now.
func (m *Machine) RestartsInWindow(now time.Time) int {
	m.prune(now)
	return len(m.restarts)
}

// Probe feeds the result of one probe round: ok is true when every probe of
// the check passed; reason describes the failure otherwise.
func (m *Machine) Probe(now time.Time, ok bool, reason string) Decision {
	var d Decision
	if ok {
		m.fails = 0
		m.successes++
	} else {
		m.successes = 0
		m.lastErr = reason
	}
	switch m.state {
	case Healthy:
		if ok {
			break
		}
		if now.Before(m.graceUntil) {
			break // in the grace period: not counted
		}
		if m.fails == 0 {
			m.failingSince = now
		}
		m.fails++
		if m.fails >= m.p.Failures {
			m.to(&d, now, Failing, fmt.Sprintf("%d consecutive failed probes: %s", m.fails, reason))
			m.act(&d, now)
		}
	case Failing:
		switch {
		case ok && m.successes >= m.p.Successes:
			m.recover(&d, now, "probes pass again without a restart")
		case !ok && !now.Before(m.graceUntil):
			m.act(&d, now) // a pause may have ended without a Tick
		}
	case GaveUp:
		if ok && m.successes >= m.p.Successes {
			m.recover(&d, now, "probes pass again without a restart")
		}
	case Restarting:
		if m.jobInFlight {
			break // the outcome of the job decides; see JobDone
		}
		if ok && m.successes >= m.p.Successes {
			m.recover(&d, now, "probes pass again while waiting for the next attempt")
		}
	case Verifying:
		if ok && m.successes >= m.p.Successes {
			m.recover(&d, now, fmt.Sprintf("verified: %d passing probe(s) after restart %d", m.successes, m.attempt))
		}
	}
	m.wake(&d)
	return d
}

// JobDone feeds the outcome of the restart that Decision.Restart asked for:
// result is the systemd job result ("done", "failed", "canceled", "timeout",
// "dependency", "skipped"), or "" with err set when the job could not be
// queued at all (bus down, unit refused).
func (m *Machine) JobDone(now time.Time, result string, err error) Decision {
	var d Decision
	if m.state != Restarting || !m.jobInFlight {
		return d
	}
	m.jobInFlight = false
	m.successes = 0
	m.refusals = 0
	if err == nil && result == "done" {
		m.graceUntil = now.Add(m.p.Grace)
		m.verifyUntil = now.Add(m.p.VerifyTimeout)
		m.to(&d, now, Verifying, fmt.Sprintf("restart job %s; probes must pass within %s", result, m.p.VerifyTimeout))
	} else {
		why := "restart job " + result
		if err != nil {
			why = "restart not possible: " + err.Error()
		}
		m.retry(&d, now, why)
	}
	m.wake(&d)
	return d
}

// UnitDied tells the Machine that systemd reported the unit dead at now,
// with no stop job of an operator behind it: the unit is failed, or inactive
// or waiting to restart itself with a result other than success (its main
// process exited non-zero, was killed or dumped core). systemd's word is
// evidence enough: a Healthy check fails at once, without waiting for the
// failure threshold or the grace period (a dead process never starts to
// answer), and is remedied; a check under verification counts the restart as
// failed. The restart budget, backoff and pauses still apply. In the other
// states only the reason is kept. reason says what systemd reported, e.g.
// "unit failed (Result=signal)".
func (m *Machine) UnitDied(now time.Time, reason string) Decision {
	var d Decision
	m.successes = 0
	m.lastErr = reason
	switch m.state {
	case Healthy:
		if m.fails == 0 {
			m.failingSince = now
		}
		m.fails = max(m.fails+1, m.p.Failures)
		m.to(&d, now, Failing, "systemd reports the unit dead: "+reason)
		m.act(&d, now)
	case Failing:
		m.act(&d, now)
	case Verifying:
		m.retry(&d, now, fmt.Sprintf("the unit died again after restart %d: %s", m.attempt, reason))
	}
	m.wake(&d)
	return d
}

// JobRefused feeds the outcome of the restart that Decision.Restart asked
// for when the manager refused it for lack of authorization (polkit said
// no, or asked for an interactive authentication medic cannot give). No
// restart happened, so none is charged to the restart budget and the
// incident's attempt count stays; the transition escalates at once, and the
// next attempt follows after the backoff (doubling per refusal, capped at
// RefusedRetryMax), with no end: the first attempt after the authorization
// is granted heals. why says what was refused.
func (m *Machine) JobRefused(now time.Time, why string) Decision {
	var d Decision
	if m.state != Restarting || !m.jobInFlight {
		return d
	}
	m.jobInFlight = false
	m.successes = 0
	if n := len(m.restarts); n > 0 {
		m.restarts = m.restarts[:n-1] // the charge act made for this attempt
	}
	m.attempt = max(0, m.attempt-1)
	m.refusals++
	delay := m.p.Backoff
	for i := 1; i < m.refusals && delay < RefusedRetryMax; i++ {
		delay *= 2
	}
	delay = min(delay, RefusedRetryMax, max(m.p.BackoffMax, m.p.Backoff))
	if delay <= 0 {
		delay = RefusedRetryMax
	}
	m.nextAttempt = now.Add(delay)
	m.to(&d, now, Restarting, fmt.Sprintf("%s; next attempt in %s", why, delay))
	d.Transitions[len(d.Transitions)-1].Escalate = true
	d.Transitions[len(d.Transitions)-1].Refused = true
	m.wake(&d)
	return d
}

// RefusedRetryMax caps the delay between attempts while the manager refuses
// medic's restarts for lack of authorization, so that a granted
// authorization heals within this long.
const RefusedRetryMax = time.Minute

// ChargeRestart counts one more restart against the budget at now, for a
// restart that the remedy itself repeated (systemd refused the first with
// start-limit-hit, so medic reset the unit's failed state and retried).
func (m *Machine) ChargeRestart(now time.Time) {
	m.restarts = append(m.restarts, now)
}

// Started tells the Machine that the unit was (re)started by someone else
// at now (an operator's `systemctl start`): failures are not counted, and
// do not lead to a restart, for the grace period.
func (m *Machine) Started(now time.Time) { m.graceUntil = now.Add(m.p.Grace) }

// AtThreshold reports whether one more failed probe at now would make a
// healthy check failing.
func (m *Machine) AtThreshold(now time.Time) bool {
	return m.state == Healthy && !now.Before(m.graceUntil) && m.fails+1 >= m.p.Failures
}

// InGrace reports whether now is inside the grace period, when failed
// probes of a healthy check are not counted.
func (m *Machine) InGrace(now time.Time) bool { return now.Before(m.graceUntil) }

// JobInFlight reports whether a restart the Machine asked for has not
// reported its result yet.
func (m *Machine) JobInFlight() bool { return m.jobInFlight }

// Pause stops remediation until until (maintenance): failed probes still
// count and the check still becomes failing, but no restart is issued and
// nothing escalates until the pause ends, when a still failing check is
// remedied as usual. A restart already in flight finishes.
func (m *Machine) Pause(now, until time.Time) Decision {
	m.pausedUntil = until
	var d Decision
	m.wake(&d)
	return d
}

// Resume ends a pause at now; a failing check is remedied at once.
func (m *Machine) Resume(now time.Time) Decision {
	m.pausedUntil = time.Time{}
	return m.Tick(now)
}

// Paused reports whether remediation is paused at now.
func (m *Machine) Paused(now time.Time) bool { return now.Before(m.pausedUntil) }

// Tick tells the Machine that time has passed; it fires due backoffs,
// verify deadlines and budget renewals.
func (m *Machine) Tick(now time.Time) Decision {
	var d Decision
	switch m.state {
	case Failing:
		if m.p.Remediate && !m.Paused(now) {
			m.act(&d, now)
		}
	case Restarting:
		if !m.jobInFlight && !now.Before(m.nextAttempt) {
			m.act(&d, now)
		}
	case Verifying:
		if !now.Before(m.verifyUntil) {
			m.retry(&d, now, fmt.Sprintf("verify failed: probes did not pass within %s after restart %d (last: %s)", m.p.VerifyTimeout, m.attempt, m.lastErr))
		}
	case GaveUp:
		if m.p.RetryAfter > 0 && !now.Before(m.gaveUpAt.Add(m.p.RetryAfter)) {
			m.restarts = nil
			m.attempt = 0
			m.to(&d, now, Failing, fmt.Sprintf("restart budget renewed after %s", m.p.RetryAfter))
			m.act(&d, now)
		}
	}
	m.wake(&d)
	return d
}

// act restarts now if the remedy is enabled and the budget allows, and gives
// up otherwise. The Machine is in Failing or Restarting.
func (m *Machine) act(d *Decision, now time.Time) {
	if !m.p.Remediate {
		return
	}
	if m.Paused(now) {
		if m.state != Failing {
			m.to(d, now, Failing, fmt.Sprintf("remediation paused until %s", m.pausedUntil.UTC().Format(time.RFC3339)))
		}
		return
	}
	if used := m.RestartsInWindow(now); used >= m.p.MaxRestarts {
		m.gaveUpAt = now
		m.to(d, now, GaveUp, fmt.Sprintf("restart budget spent: %d restarts within %s", used, m.p.Window))
		d.Transitions[len(d.Transitions)-1].Escalate = true
		return
	}
	m.attempt++
	m.restarts = append(m.restarts, now)
	m.jobInFlight = true
	reason := "restart attempt " + fmt.Sprint(m.attempt)
	if m.state == Restarting {
		// A backoff ended; the state stays, the log says why we act.
		d.Transitions = append(d.Transitions, Transition{From: Restarting, To: Restarting, Reason: reason + " after backoff", Attempt: m.attempt, At: now, Elapsed: m.elapsed(now)})
	} else {
		m.to(d, now, Restarting, reason)
	}
	d.Restart = true
}

// retry schedules the next attempt after its backoff, or gives up. Either
// transition escalates: the remedy did not work.
func (m *Machine) retry(d *Decision, now time.Time, why string) {
	if used := m.RestartsInWindow(now); used >= m.p.MaxRestarts {
		m.gaveUpAt = now
		m.to(d, now, GaveUp, fmt.Sprintf("%s; restart budget spent: %d restarts within %s", why, used, m.p.Window))
	} else {
		delay := m.backoff()
		m.nextAttempt = now.Add(delay)
		m.to(d, now, Restarting, fmt.Sprintf("%s; next attempt in %s", why, delay))
	}
	d.Transitions[len(d.Transitions)-1].Escalate = true
}

// backoff returns the delay before attempt m.attempt+1: Backoff doubled for
// each attempt after the second, capped at BackoffMax.
func (m *Machine) backoff() time.Duration {
	b := m.p.Backoff
	for i := 1; i < m.attempt && b < m.p.BackoffMax; i++ {
		b *= 2
	}
	return min(b, m.p.BackoffMax)
}

func (m *Machine) recover(d *Decision, now time.Time, why string) {
	m.to(d, now, Healthy, why)
	m.fails = 0
	m.failingSince = time.Time{}
	m.attempt = 0
	m.jobInFlight = false
}

func (m *Machine) to(d *Decision, now time.Time, s State, reason string) {
	d.Transitions = append(d.Transitions, Transition{From: m.state, To: s, Reason: reason, Attempt: m.attempt, At: now, Elapsed: m.elapsed(now)})
	m.state = s
}

func (m *Machine) elapsed(now time.Time) time.Duration {
	if m.failingSince.IsZero() {
		return 0
	}
	return now.Sub(m.failingSince)
}

func (m *Machine) prune(now time.Time) {
	cut := 0
	for cut < len(m.restarts) && !now.Before(m.restarts[cut].Add(m.p.Window)) {
		cut++
	}
	m.restarts = m.restarts[cut:]
}

// wake sets d.WakeAt to the next time Tick has work.
func (m *Machine) wake(d *Decision) {
	if !m.pausedUntil.IsZero() && m.state == Failing && m.p.Remediate {
		d.WakeAt = m.pausedUntil
		return
	}
	switch m.state {
	case Restarting:
		if !m.jobInFlight {
			d.WakeAt = m.nextAttempt
		}
	case Verifying:
		d.WakeAt = m.verifyUntil
	case GaveUp:
		if m.p.RetryAfter > 0 {
			d.WakeAt = m.gaveUpAt.Add(m.p.RetryAfter)
		}
	}
}

// Snapshot is what a Machine needs to continue after medic restarts: the
// state, the counters, the open incident's restart count and the restart
// budget in use. Times are wall-clock times.
type Snapshot struct {
	State        State       `json:"state"`
	Fails        int         `json:"fails"`
	Successes    int         `json:"successes"`
	LastErr      string      `json:"last_error,omitempty"`
	GraceUntil   time.Time   `json:"grace_until,omitzero"`
	FailingSince time.Time   `json:"failing_since,omitzero"`
	Attempt      int         `json:"attempt"`
	Restarts     []time.Time `json:"restarts,omitempty"`
	JobInFlight  bool        `json:"job_in_flight,omitempty"`
	NextAttempt  time.Time   `json:"next_attempt,omitzero"`
	VerifyUntil  time.Time   `json:"verify_until,omitzero"`
	GaveUpAt     time.Time   `json:"gave_up_at,omitzero"`
	PausedUntil  time.Time   `json:"paused_until,omitzero"`
	Refusals     int         `json:"refusals,omitempty"`
}

// Snapshot returns the Machine's persistent state.
func (m *Machine) Snapshot() Snapshot {
	strip := func(t time.Time) time.Time { return t.Round(0) } // drop the monotonic reading
	s := Snapshot{
		State: m.state, Fails: m.fails, Successes: m.successes, LastErr: m.lastErr,
		GraceUntil: strip(m.graceUntil), FailingSince: strip(m.failingSince), Attempt: m.attempt,
		JobInFlight: m.jobInFlight, NextAttempt: strip(m.nextAttempt), VerifyUntil: strip(m.verifyUntil),
		GaveUpAt: strip(m.gaveUpAt), PausedUntil: strip(m.pausedUntil), Refusals: m.refusals,
	}
	for _, r := range m.restarts {
		s.Restarts = append(s.Restarts, strip(r))
	}
	return s
}

// Restore returns a Machine that continues from s at now, after medic
// restarted. The restart budget in use and the open incident's attempts
// carry over. A restart that was in flight when medic stopped has no known
// result: the Machine verifies it, with a fresh verify_timeout, since the
// job was queued and may well have worked. A verification under way gets
// a fresh verify_timeout too, so that the time medic was down does not
// count against the backend.
func Restore(p Params, s Snapshot, now time.Time) *Machine {
	m := &Machine{
		p: p, state: s.State, fails: s.Fails, successes: s.Successes, lastErr: s.LastErr,
		graceUntil: s.GraceUntil, failingSince: s.FailingSince, attempt: s.Attempt,
		restarts: append([]time.Time(nil), s.Restarts...), nextAttempt: s.NextAttempt,
		verifyUntil: s.VerifyUntil, gaveUpAt: s.GaveUpAt, pausedUntil: s.PausedUntil, refusals: s.Refusals,
	}
	switch m.state {
	case Healthy, Failing, Restarting, Verifying, GaveUp:
	default:
		m.state = Healthy
	}
	if m.state == Restarting && s.JobInFlight || m.state == Verifying {
		m.state = Verifying
		m.successes = 0
		m.verifyUntil = now.Add(p.VerifyTimeout)
	}
	if m.graceUntil.Before(now) && m.state == Healthy {
		m.graceUntil = now.Add(p.Grace) // medic (re)starting: its own grace period
	}
	m.prune(now)
	return m
}
