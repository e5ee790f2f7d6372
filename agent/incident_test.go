package agent

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/agent/policy"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

func newTracker(mod func(*config.Check)) *tracker {
	c := config.DefaultCheck
	c.Name, c.Unit = "my-app", "my-app.service"
	c.Escalate.RepeatInterval = config.Duration{Duration: time.Hour}
	if mod != nil {
		mod(&c)
	}
	return &tracker{check: c, host: "web1", version: "1.2.3"}
}

var refused = probe.Result{Class: probe.ClassRefused, Target: "127.0.0.1:8080", Err: errors.New("connect: connection refused")}

func tr(from, to policy.State, at time.Time, elapsed time.Duration, esc bool) policy.Transition {
	return policy.Transition{From: from, To: to, At: at, Elapsed: elapsed, Reason: fmt.Sprintf("%s→%s", from, to), Escalate: esc}
}

// summary renders messages as "kind/event#seq".
func summary(msgs []*notify.Message) string {
	var s []string
	for _, m := range msgs {
		s = append(s, fmt.Sprintf("%s/%s#%s", m.Kind, m.Event, m.ID[strings.LastIndex(m.ID, ".")+1:]))
	}
	return strings.Join(s, ",")
}

func TestTrackerEscalatesOnceRemindsAndResolves(t *testing.T) {
	k := newTracker(nil)
	var got []*notify.Message
	feed := func(m []*notify.Message) { got = append(got, m...) }
	feed(k.transition(tr(policy.Healthy, policy.Failing, at(2), 2*time.Second, false), refused))
	feed(k.transition(tr(policy.Failing, policy.Restarting, at(2), 2*time.Second, false), refused))
	k.job(at(3), 1, remedy.Outcome{JobResult: "done", After: unit.State{ActiveState: "active", SubState: "running", MainPID: 42}}, nil)
	feed(k.transition(tr(policy.Restarting, policy.Verifying, at(3), 0, false), refused))
	feed(k.tick(at(4), policy.Verifying))
	feed(k.transition(tr(policy.Verifying, policy.Restarting, at(33), 0, true), refused)) // verify failed: firing
	k.job(at(39), 2, remedy.Outcome{JobResult: "failed", After: unit.State{ActiveState: "failed", Result: "exit-code"}}, nil)
	feed(k.transition(tr(policy.Restarting, policy.GaveUp, at(39), 0, true), refused)) // no second firing
	feed(k.tick(at(100), policy.GaveUp))                                               // no reminder yet
	feed(k.tick(at(33+3600), policy.GaveUp))                                           // reminder
	feed(k.tick(at(34+3600), policy.GaveUp))                                           // not twice
	feed(k.transition(tr(policy.GaveUp, policy.Healthy, at(4000), 0, false), refused))

	if s := summary(got); s != "firing/verify_failed#1,reminder/gave_up#2,resolved/resolved#3" {
		t.Fatalf("messages = %s", s)
	}
	in := got[0].Incident
	if in.ID != "my-app-20261121T080000.000Z" || !in.Since.Equal(t0) || in.Problem != "127.0.0.1:8080 connection refused" || in.Host != "web1" {
		t.Errorf("firing incident = %+v", in)
	}
	for _, m := range got {
		if m.Incident.ID != in.ID || m.Version != "1.2.3" {
			t.Errorf("message %s: incident %s version %s", m.ID, m.Incident.ID, m.Version)
		}
	}
	var whats []string
	for _, e := range got[2].Incident.Timeline {
		whats = append(whats, e.What)
	}
	want := "first failed probe,failing,restart 1,verify failed,restart 2,gave up,recovered"
	if strings.Join(whats, ",") != want {
		t.Errorf("timeline = %v, want %s", whats, want)
	}
	if d := got[2].Incident.Timeline[2].Detail; !strings.Contains(d, "job done") || !strings.Contains(d, "main pid 42") {
		t.Errorf("restart entry detail = %q", d)
	}
	if got[2].Incident.Restarts != 2 || !got[2].Incident.ResolvedAt.Equal(at(4000)) {
		t.Errorf("resolved: restarts %d resolved_at %s", got[2].Incident.Restarts, got[2].Incident.ResolvedAt)
	}
	if len(got[0].Incident.Timeline) != 4 {
		t.Errorf("firing message timeline has %d entries, want the 4 known then", len(got[0].Incident.Timeline))
	}
}

// TestTrackerCrashLoopIsOneIncident: a unit that dies again soon after a
// quiet fix continues the same incident, and escalation gives one firing.
func TestTrackerCrashLoopIsOneIncident(t *testing.T) {
	k := newTracker(func(c *config.Check) { c.Escalate.FlapThreshold = 0 })
	var got []*notify.Message
	got = append(got, heal(k, 0)...)
	id := k.open.ID
	got = append(got, heal(k, 10)...)
	if k.open == nil || k.open.ID != id || k.open.Restarts != 2 {
		t.Fatalf("second crash opened another incident or lost the count: %+v", k.open)
	}
	got = append(got, k.transition(tr(policy.Healthy, policy.Failing, at(21), time.Second, false), refused)...)
	got = append(got, k.transition(tr(policy.Failing, policy.GaveUp, at(21), 0, true), refused)...)
	if s := summary(got); s != "firing/gave_up#1" {
		t.Errorf("messages = %s, want one firing", s)
	}
	if got[0].Incident.Restarts != 2 {
		t.Errorf("firing message says %d restarts, want 2", got[0].Incident.Restarts)
	}
}

func heal(k *tracker, start int) []*notify.Message {
	var out []*notify.Message
	out = append(out, k.transition(tr(policy.Healthy, policy.Failing, at(start+1), time.Second, false), refused)...)
	out = append(out, k.transition(tr(policy.Failing, policy.Restarting, at(start+1), time.Second, false), refused)...)
	k.job(at(start+2), 1, remedy.Outcome{JobResult: "done"}, nil)
	out = append(out, k.transition(tr(policy.Restarting, policy.Verifying, at(start+2), 0, false), refused)...)
	out = append(out, k.transition(tr(policy.Verifying, policy.Healthy, at(start+3), 0, false), refused)...)
	return out
}

func TestTrackerQuietFix(t *testing.T) {
	if s := summary(heal(newTracker(nil), 0)); s != "" {
		t.Errorf("a restart that worked at once sent %s, want nothing", s)
	}
	k := newTracker(func(c *config.Check) { c.Escalate.NotifyOnRecovery = true })
	if s := summary(heal(k, 0)); s != "recovered/recovered#1" {
		t.Errorf("with notify_on_recovery: %s, want one recovered message", s)
	}
	// The incident stays open (quietly) until the check was stable, so a
	// crash right after continues it instead of opening a new one.
	if k.open == nil || !k.open.recovering {
		t.Fatalf("incident closed at once after a quiet fix")
	}
	if s := summary(k.tick(at(3).Add(k.stablePeriod()-time.Second), policy.Healthy)); s != "" || k.open == nil {
		t.Errorf("closed before the stable period: %s", s)
	}
	if s := summary(k.tick(at(3).Add(k.stablePeriod()), policy.Healthy)); s != "" || k.open != nil {
		t.Errorf("after the stable period: messages %q, open %v; want closed quietly", s, k.open != nil)
	}
}

func TestTrackerFlappingOnce(t *testing.T) {
	k := newTracker(func(c *config.Check) {
		c.Escalate.FlapThreshold = 2
		c.Remedy.Window = config.Duration{Duration: 10 * time.Minute}
	})
	var got []*notify.Message
	for i := range 6 {
		got = append(got, heal(k, i*60)...) // a flap a minute
		got = append(got, k.tick(at(i*60+30), policy.Healthy)...)
	}
	if s := summary(got); s != "firing/flapping#1" {
		t.Fatalf("6 flaps sent %s, want one flapping firing", s)
	}
	if k.open == nil || !k.open.flapping {
		t.Fatal("flapping incident not open")
	}
	// Stable for a whole window after the last fix (at 5*60+3): resolved.
	if s := summary(k.tick(at(5*60+3+599), policy.Healthy)); s != "" {
		t.Errorf("resolved early: %s", s)
	}
	if s := summary(k.tick(at(5*60+3+600), policy.Healthy)); s != "resolved/resolved#2" {
		t.Errorf("after a stable window: %s, want resolved", s)
	}
}

func TestTrackerNoRemedyEscalatesAtOnce(t *testing.T) {
	k := newTracker(func(c *config.Check) { c.Remedy.Action = "none" })
	got := k.transition(tr(policy.Healthy, policy.Failing, at(3), 2*time.Second, false), refused)
	got = append(got, k.transition(tr(policy.Failing, policy.Healthy, at(9), 0, false), refused)...)
	if s := summary(got); s != "firing/unremediated#1,resolved/resolved#2" {
		t.Errorf("messages = %s", s)
	}
}

func TestTrackerSelfRecoveryIsQuiet(t *testing.T) {
	k := newTracker(nil)
	got := k.transition(tr(policy.Healthy, policy.Failing, at(3), 2*time.Second, false), refused)
	got = append(got, k.transition(tr(policy.Failing, policy.Restarting, at(3), 2*time.Second, false), refused)...)
	k.job(at(4), 1, remedy.Outcome{}, errors.New("connect to systemd: bus down"))
	got = append(got, k.transition(tr(policy.Restarting, policy.Restarting, at(4), 0, true), refused)...)
	got = append(got, k.transition(tr(policy.Restarting, policy.Healthy, at(5), 0, false), refused)...)
	if s := summary(got); s != "firing/restart_failed#1,resolved/resolved#2" {
		t.Errorf("messages = %s", s)
	}
	if d := got[1].Incident.Timeline[2].Detail; !strings.Contains(d, "not carried out: connect to systemd") {
		t.Errorf("restart entry = %q", d)
	}
}

// TestTrackerEscalatedFixSettles: after a restart fixes an incident that
// was escalated (a first restart did not help), RESOLVED waits until the
// check has passed for the settle period; a death before that continues
// the incident without a second FIRING (a crash loop whose backend
// answered a probe in its short life).
func TestTrackerEscalatedFixSettles(t *testing.T) {
	k := newTracker(func(c *config.Check) {
		c.Escalate.FlapThreshold = 0
		c.Interval = config.Duration{Duration: 10 * time.Second}
	})
	var got []*notify.Message
	feed := func(m []*notify.Message) { got = append(got, m...) }
	feed(k.transition(tr(policy.Healthy, policy.Failing, at(1), time.Second, false), refused))
	feed(k.transition(tr(policy.Failing, policy.Restarting, at(1), 0, false), refused))
	k.job(at(2), 1, remedy.Outcome{JobResult: "done"}, nil)
	feed(k.transition(tr(policy.Restarting, policy.Verifying, at(2), 0, false), refused))
	feed(k.transition(tr(policy.Verifying, policy.Restarting, at(32), 0, true), refused)) // verify failed: firing
	k.job(at(33), 2, remedy.Outcome{JobResult: "done"}, nil)
	feed(k.transition(tr(policy.Restarting, policy.Verifying, at(33), 0, false), refused))
	feed(k.transition(tr(policy.Verifying, policy.Healthy, at(34), 0, false), refused)) // fixed: held
	id := k.open.ID
	feed(k.tick(at(40), policy.Healthy)) // within 2 intervals: still held
	if s := summary(got); s != "firing/verify_failed#1" {
		t.Fatalf("messages right after the fix = %s, want only the firing", s)
	}
	// Dies again before the settle period: the same incident, no new firing.
	feed(k.transition(tr(policy.Healthy, policy.Failing, at(45), time.Second, false), refused))
	if k.open == nil || k.open.ID != id {
		t.Fatalf("a death 11 s after the fix opened another incident: %+v", k.open)
	}
	feed(k.transition(tr(policy.Failing, policy.Restarting, at(45), 0, false), refused))
	k.job(at(46), 3, remedy.Outcome{JobResult: "done"}, nil)
	feed(k.transition(tr(policy.Restarting, policy.Verifying, at(46), 0, false), refused))
	feed(k.transition(tr(policy.Verifying, policy.Healthy, at(47), 0, false), refused))
	feed(k.tick(at(60), policy.Healthy))  // 13 s: not yet
	feed(k.tick(at(67), policy.Healthy))  // 20 s = 2 intervals: resolved
	feed(k.tick(at(100), policy.Healthy)) // once
	if s := summary(got); s != "firing/verify_failed#1,resolved/resolved#2" {
		t.Fatalf("messages = %s, want one firing and one resolved after the settle period", s)
	}
	if r := got[1].Incident; r.ID != id || !r.ResolvedAt.Equal(at(67)) || r.Restarts != 3 {
		t.Errorf("resolved incident %s at %s with %d restarts, want %s at %s with 3", r.ID, r.ResolvedAt, r.Restarts, id, at(67))
	}
	if k.open != nil {
		t.Errorf("incident still open after RESOLVED: %+v", k.open)
	}
}
