package agent

import (
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/agent/policy"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// TestTrackerRecordsIncidents: the tracker hands the history one record
// when medic gives up and one, same ID, when the incident resolves; a quiet
// fix is recorded when the incident closes, with its recovery time, not
// the end of the stable period.
func TestTrackerRecordsIncidents(t *testing.T) {
	var got []history.Record
	k := newTracker(nil)
	k.record = func(r history.Record) { got = append(got, r) }
	done := remedy.Outcome{JobResult: "done", After: unit.State{ActiveState: "active", SubState: "running"}}

	k.transition(tr(policy.Healthy, policy.Failing, at(2), 2*time.Second, false), refused)
	k.transition(tr(policy.Failing, policy.Restarting, at(2), 0, false), refused)
	k.job(at(3), 1, done, nil)
	k.transition(tr(policy.Restarting, policy.GaveUp, at(40), 0, true), refused)
	if len(got) != 1 || got[0].Outcome != history.GaveUp || !got[0].Escalated || got[0].Restarts != 1 || !got[0].GaveUpAt.Equal(at(40)) || !got[0].ResolvedAt.IsZero() {
		t.Fatalf("after giving up: %+v", got)
	}
	k.transition(tr(policy.GaveUp, policy.Healthy, at(100), 0, false), refused)
	if len(got) != 2 || got[1].ID != got[0].ID || got[1].Outcome != history.Resolved || got[1].TimeToRecovery() != 100*time.Second || !got[1].GaveUpAt.Equal(at(40)) {
		t.Fatalf("after resolving: %+v", got[1:])
	}

	// A quiet fix: open until stable, resolved at the recovery.
	got = nil
	k = newTracker(func(c *config.Check) { c.Remedy.Window = config.Duration{Duration: time.Minute} })
	k.record = func(r history.Record) { got = append(got, r) }
	k.transition(tr(policy.Healthy, policy.Failing, at(1), time.Second, false), refused)
	k.transition(tr(policy.Failing, policy.Restarting, at(1), 0, false), refused)
	k.job(at(2), 1, done, nil)
	k.transition(tr(policy.Restarting, policy.Verifying, at(2), 0, false), refused)
	k.transition(tr(policy.Verifying, policy.Healthy, at(3), 0, false), refused)
	k.tick(at(30), policy.Healthy)
	if len(got) != 0 {
		t.Fatalf("recorded before the stable period ended: %+v", got)
	}
	k.tick(at(63), policy.Healthy)
	if len(got) != 1 || got[0].Escalated || got[0].Outcome != history.Resolved || got[0].TimeToRecovery() != 3*time.Second || got[0].Restarts != 1 {
		t.Fatalf("quiet fix: %+v", got)
	}
	if err := history.CheckID(got[0].ID); err != nil {
		t.Error(err)
	}
}
