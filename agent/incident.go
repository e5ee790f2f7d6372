package agent

import (
	"fmt"
	"slices"
	"time"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/agent/policy"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
)

// maxTimeline bounds an incident's timeline; a long flapping incident keeps
// its first entries and its latest ones.
const maxTimeline = 60

// tracker turns one check's transitions into incidents and the messages
// they produce: one firing message when an incident is escalated, at most
// one reminder per repeat_interval while it stays open, one resolved message
// at its end, and never a message per probe. It does no I/O and reads no
// clock: the runner feeds it and sends what it returns.
type tracker struct {
	check   config.Check
	host    string
	version string

	open *openIncident
	// fixes are the times restarts fixed the check, within the remedy
	// window: more than flap_threshold of them make the check flapping.
	fixes []time.Time
	// record, when set, is handed each incident that ends: when it
	// resolves, and when medic gives up on it (again, under the same ID,
	// if it resolves later). It runs on the runner's goroutine.
	record func(history.Record)
}

type openIncident struct {
	notify.Incident
	escalated bool
	seq       int
	lastSent  time.Time // last firing or reminder message
	flapping  bool
	lastFix   time.Time // flapping: the last recovery
	// recovering is set after a restart fixed the check without
	// escalation: the incident stays open until the check was stable for
	// stablePeriod, so that a unit that dies again soon after (a crash
	// loop) continues this incident instead of starting a new one.
	recovering bool
}

// transition records t, which happened while lastFailure was the check's
// latest failed probe, and returns the messages to send.
func (k *tracker) transition(t policy.Transition, lastFailure probe.Result) []*notify.Message {
	switch {
	case t.To == policy.Failing && t.From == policy.Healthy:
		return k.failing(t, lastFailure)
	case t.To == policy.Failing: // gave_up → failing: budget renewed
		k.add(t.At, "budget renewed", t.Reason)
	case t.To == policy.Restarting && t.Refused:
		// The timeline has the refusal already (see refused).
		return k.escalate(t.At, notify.RestartRefused)
	case t.To == policy.Restarting && t.Escalate:
		ev := notify.RestartFailed
		what := "restart failed"
		if t.From == policy.Verifying {
			ev, what = notify.VerifyFailed, "verify failed"
		}
		k.add(t.At, what, t.Reason)
		return k.escalate(t.At, ev)
	case t.To == policy.GaveUp:
		ev := notify.GaveUp
		if t.From == policy.Verifying {
			k.add(t.At, "verify failed", t.Reason)
		}
		k.add(t.At, "gave up", t.Reason)
		msgs := k.escalate(t.At, ev)
		k.keep(history.GaveUp, t.At)
		return msgs
	case t.To == policy.Healthy:
		return k.healthy(t)
	}
	return nil
}

func (k *tracker) failing(t policy.Transition, lastFailure probe.Result) []*notify.Message {
	since := t.At.Add(-t.Elapsed)
	if k.open != nil && (k.open.flapping || k.open.recovering) {
		k.open.recovering = false
		k.add(since, "failed again", lastFailure.Problem())
		return nil
	}
	k.open = &openIncident{Incident: notify.Incident{
		ID:      fmt.Sprintf("%s-%s", k.check.Name, since.UTC().Format("20060102T150405.000Z")),
		Check:   k.check.Name,
		Unit:    k.check.Unit,
		Host:    k.host,
		Target:  lastFailure.Target,
		Problem: lastFailure.Problem(),
		Since:   since,
	}}
	k.add(since, "first failed probe", lastFailure.Problem())
	k.add(t.At, "failing", t.Reason)
	if k.check.Remedy.Action == "none" {
		return k.escalate(t.At, notify.Unremediated)
	}
	return nil
}

func (k *tracker) healthy(t policy.Transition) []*notify.Message {
	in := k.open
	if in == nil {
		return nil
	}
	k.add(t.At, "recovered", t.Reason)
	fixed := in.Restarts > 0 && t.From == policy.Verifying
	if fixed && k.check.Escalate.FlapThreshold > 0 {
		k.fixes = append(k.fixes, t.At)
		cut := 0
		for cut < len(k.fixes) && !t.At.Before(k.fixes[cut].Add(k.check.Remedy.Window.Duration)) {
			cut++
		}
		k.fixes = k.fixes[cut:]
		if len(k.fixes) > k.check.Escalate.FlapThreshold || in.flapping {
			if !in.flapping {
				k.add(t.At, "flapping", fmt.Sprintf("restarted and recovered %d times within %s", len(k.fixes), k.check.Remedy.Window))
			}
			in.flapping = true
			in.lastFix = t.At
			return k.escalate(t.At, notify.Flapping)
		}
	}
	switch {
	case in.escalated && fixed:
		// A restart fixed an incident that was escalated: it resolves
		// once the check has passed for settlePeriod, so that a unit that
		// answers for a moment and dies again (a crash loop) continues
		// this incident instead of a RESOLVED and a new FIRING.
		in.recovering = true
		in.lastFix = t.At
		return nil
	case in.escalated:
		return k.close(t.At, notify.Resolved, notify.EventResolved)
	case fixed:
		// Quiet: logged and counted; the incident stays open until the
		// check has been stable, so a crash loop stays one incident.
		in.recovering = true
		in.lastFix = t.At
		if k.check.Escalate.NotifyOnRecovery {
			return []*notify.Message{k.message(t.At, notify.Recovered, notify.EventRecovered)}
		}
		return nil
	default:
		k.close(t.At, "", "")
		return nil
	}
}

// stablePeriod is how long a check must pass after a quiet fix before its
// incident is closed: the remedy window, at most two minutes.
func (k *tracker) stablePeriod() time.Duration {
	return min(k.check.Remedy.Window.Duration, 2*time.Minute)
}

// settlePeriod is how long a check must pass after a restart fixed an
// escalated incident before the incident resolves: two intervals, at least
// a second, at most the stable period.
func (k *tracker) settlePeriod() time.Duration {
	return min(max(2*k.check.Interval.Duration, time.Second), k.stablePeriod())
}

// tick is called after every probe round: it sends a reminder when one is
// due and resolves a flapping incident once the check was stable for a whole
// remedy window.
func (k *tracker) tick(now time.Time, state policy.State) []*notify.Message {
	in := k.open
	if in == nil {
		return nil
	}
	if in.flapping && state == policy.Healthy && !now.Before(in.lastFix.Add(k.check.Remedy.Window.Duration)) {
		k.add(now, "stable", fmt.Sprintf("no failure for %s", k.check.Remedy.Window))
		return k.close(now, notify.Resolved, notify.EventResolved)
	}
	if in.recovering && in.escalated && state == policy.Healthy && !now.Before(in.lastFix.Add(k.settlePeriod())) {
		k.add(now, "stable", fmt.Sprintf("no failure for %s after the restart", k.settlePeriod()))
		return k.close(now, notify.Resolved, notify.EventResolved)
	}
	if in.recovering && !in.escalated && state == policy.Healthy && !now.Before(in.lastFix.Add(k.stablePeriod())) {
		k.close(now, "", "")
		return nil
	}
	if in.escalated && k.check.Escalate.RepeatInterval.Duration > 0 && !now.Before(in.lastSent.Add(k.check.Escalate.RepeatInterval.Duration)) {
		in.lastSent = now
		return []*notify.Message{k.message(now, notify.Reminder, k.lastEvent())}
	}
	return nil
}

// diagnosed records the latest diagnosis on the open incident, so that its
// later messages (resolved too) carry it.
func (k *tracker) diagnosed(dg *diagnose.Diagnosis) {
	if k.open == nil || dg == nil {
		return
	}
	k.open.Diagnosis = dg
	k.open.Cause = string(dg.Primary.Cause)
}

// job records the outcome of restart number attempt.
func (k *tracker) job(now time.Time, attempt int, out remedy.Outcome, err error) {
	if k.open == nil {
		return
	}
	k.open.Restarts++
	what := fmt.Sprintf("restart %d", attempt)
	if err != nil {
		k.add(now, what, "not carried out: "+err.Error())
		return
	}
	detail := fmt.Sprintf("job %s in %s; unit %s/%s", out.JobResult, out.Duration.Round(time.Millisecond), out.After.ActiveState, out.After.SubState)
	if out.After.MainPID != 0 {
		detail += fmt.Sprintf(", main pid %d", out.After.MainPID)
	}
	if out.After.Result != "" && out.After.Result != "success" {
		detail += ", result " + out.After.Result
	}
	if out.WaitedForJob {
		detail += " (waited for a job already queued)"
	}
	if out.ResetFailed {
		detail += " (start limit hit: reset-failed and retried once)"
	}
	k.add(now, what, detail)
}

// refused records a restart the manager refused for lack of
// authorization. It is not a restart: the incident's restart count stays.
func (k *tracker) refused(now time.Time, err *remedy.AuthorizationError) {
	if k.open == nil {
		return
	}
	k.add(now, "restart refused", err.Error())
}

// escalate sends the one firing message of the open incident.
func (k *tracker) escalate(now time.Time, ev notify.Event) []*notify.Message {
	in := k.open
	if in == nil || in.escalated {
		return nil
	}
	in.escalated = true
	in.lastSent = now
	return []*notify.Message{k.message(now, notify.Firing, ev)}
}

// close ends the open incident, returning its last message when kind is set.
func (k *tracker) close(now time.Time, kind notify.Kind, ev notify.Event) []*notify.Message {
	in := k.open
	in.ResolvedAt = now
	var out []*notify.Message
	if kind != "" {
		out = []*notify.Message{k.message(now, kind, ev)}
	}
	k.keep(history.Resolved, now)
	k.open = nil
	return out
}

// keep hands the open incident to record as ended with outcome at now.
// A resolved incident that medic kept open after a fix, to see the check
// stay healthy, resolved at its last recovery, not at now.
func (k *tracker) keep(outcome history.Outcome, now time.Time) {
	in := k.open
	if k.record == nil || in == nil {
		return
	}
	r := history.Record{
		ID: in.ID, Check: in.Check, Unit: in.Unit, Host: in.Host, Target: in.Target,
		Problem: in.Problem, Cause: in.Cause, Diagnosis: in.Diagnosis, Since: in.Since,
		Outcome: outcome, Restarts: in.Restarts, Escalated: in.escalated,
		Timeline: slices.Clone(in.Timeline),
	}
	for i := len(in.Timeline) - 1; i >= 0; i-- {
		if in.Timeline[i].What == "gave up" {
			r.GaveUpAt = in.Timeline[i].At
			break
		}
	}
	if outcome == history.Resolved {
		r.ResolvedAt = now
		if (in.recovering || in.flapping) && !in.lastFix.IsZero() {
			r.ResolvedAt = in.lastFix
		}
	}
	k.record(r)
}

// lastEvent is the event a reminder repeats: the incident's escalation.
func (k *tracker) lastEvent() notify.Event {
	in := k.open
	switch {
	case in.flapping:
		return notify.Flapping
	case k.check.Remedy.Action == "none":
		return notify.Unremediated
	}
	for i := len(in.Timeline) - 1; i >= 0; i-- {
		switch in.Timeline[i].What {
		case "restart refused":
			return notify.RestartRefused
		case "gave up":
			return notify.GaveUp
		case "verify failed":
			return notify.VerifyFailed
		case "restart failed":
			return notify.RestartFailed
		}
	}
	return notify.GaveUp
}

func (k *tracker) message(now time.Time, kind notify.Kind, ev notify.Event) *notify.Message {
	in := k.open
	in.seq++
	m := &notify.Message{
		ID:       fmt.Sprintf("%s.%d", in.ID, in.seq),
		Kind:     kind,
		Event:    ev,
		At:       now,
		Version:  k.version,
		Incident: in.Incident,
	}
	m.Incident.Timeline = append([]notify.Entry(nil), in.Timeline...)
	return m
}

func (k *tracker) add(at time.Time, what, detail string) {
	in := k.open
	if in == nil {
		return
	}
	in.Timeline = append(in.Timeline, notify.Entry{At: at, What: what, Detail: detail})
	if n := len(in.Timeline); n > maxTimeline {
		// Keep the first 10 entries (how it began) and the latest ones.
		in.Timeline = append(in.Timeline[:10], in.Timeline[n-maxTimeline+10:]...)
	}
}
