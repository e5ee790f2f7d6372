package policy

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// step is one event fed to the Machine at t0+at.
type step struct {
	at    time.Duration
	event string // "ok", "fail", "done", "failed", "err", "tick"

	wantState   State
	wantRestart bool
	wantTo      []State // the To of each transition, in order; nil means none
	wantWakeIn  time.Duration
}

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)

func params() Params {
	return Params{
		Failures: 3, Successes: 2, Grace: 10 * time.Second, Remediate: true,
		VerifyTimeout: 30 * time.Second, MaxRestarts: 3, Window: 10 * time.Minute,
		Backoff: 5 * time.Second, BackoffMax: 12 * time.Second, RetryAfter: time.Hour,
	}
}

func run(t *testing.T, p Params, steps []step) {
	t.Helper()
	m := New(p, t0)
	for i, s := range steps {
		now := t0.Add(s.at)
		var d Decision
		switch s.event {
		case "ok":
			d = m.Probe(now, true, "")
		case "fail":
			d = m.Probe(now, false, "127.0.0.1:8080 connection refused")
		case "done", "failed", "canceled":
			d = m.JobDone(now, s.event, nil)
		case "err":
			d = m.JobDone(now, "", errors.New("bus down"))
		case "tick":
			d = m.Tick(now)
		case "died":
			d = m.UnitDied(now, "unit failed (Result=signal)")
		case "refused":
			d = m.JobRefused(now, "restart refused: Interactive authentication required")
		default:
			t.Fatalf("step %d: unknown event %q", i, s.event)
		}
		var to []State
		for _, tr := range d.Transitions {
			to = append(to, tr.To)
			if tr.Reason == "" {
				t.Errorf("step %d: transition %s→%s has no reason", i, tr.From, tr.To)
			}
		}
		if got := m.State(); got != s.wantState {
			t.Errorf("step %d (%s at %s): state = %s, want %s", i, s.event, s.at, got, s.wantState)
		}
		if d.Restart != s.wantRestart {
			t.Errorf("step %d (%s at %s): restart = %v, want %v", i, s.event, s.at, d.Restart, s.wantRestart)
		}
		if strings.Join(states(to), ",") != strings.Join(states(s.wantTo), ",") {
			t.Errorf("step %d (%s at %s): transitions to %v, want %v", i, s.event, s.at, to, s.wantTo)
		}
		var wake time.Duration
		if !d.WakeAt.IsZero() {
			wake = d.WakeAt.Sub(now)
		}
		if wake != s.wantWakeIn {
			t.Errorf("step %d (%s at %s): wake in %s, want %s", i, s.event, s.at, wake, s.wantWakeIn)
		}
	}
}

func states(s []State) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = string(v)
	}
	return out
}

func TestMachine(t *testing.T) {
	sec := time.Second
	tests := []struct {
		name   string
		params func(*Params)
		steps  []step
	}{
		{
			name: "failures in the start grace period are not counted",
			steps: []step{
				{at: 1 * sec, event: "fail", wantState: Healthy},
				{at: 2 * sec, event: "fail", wantState: Healthy},
				{at: 3 * sec, event: "fail", wantState: Healthy},
				{at: 9 * sec, event: "fail", wantState: Healthy},
				{at: 10 * sec, event: "fail", wantState: Healthy},
				{at: 11 * sec, event: "fail", wantState: Healthy},
				{at: 12 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
			},
		},
		{
			name: "systemd's word: a unit that died is restarted at once, even in the grace period",
			steps: []step{
				{at: 1 * sec, event: "died", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 1100 * time.Millisecond, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 1200 * time.Millisecond, event: "ok", wantState: Verifying, wantWakeIn: 29900 * time.Millisecond},
				{at: 1300 * time.Millisecond, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
			},
		},
		{
			name: "a unit that dies again under verification backs off, and the budget still ends it",
			steps: []step{
				{at: 20 * sec, event: "died", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 21 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 22 * sec, event: "died", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 5 * sec},
				{at: 23 * sec, event: "died", wantState: Restarting, wantWakeIn: 4 * sec}, // waiting for the backoff
				{at: 27 * sec, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 28 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 29 * sec, event: "died", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 10 * sec},
				{at: 39 * sec, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 40 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 41 * sec, event: "died", wantState: GaveUp, wantTo: []State{GaveUp}, wantWakeIn: time.Hour},
				{at: 42 * sec, event: "died", wantState: GaveUp, wantWakeIn: time.Hour - sec},
			},
		},
		{
			name:   "a paused check that dies is failing, not restarted",
			params: func(p *Params) { p.Remediate = false },
			steps: []step{
				{at: 20 * sec, event: "died", wantState: Failing, wantTo: []State{Failing}},
				{at: 21 * sec, event: "ok", wantState: Failing},
				{at: 22 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
			},
		},
		{
			name: "refused restarts spend no budget and are retried without end",
			steps: []step{
				{at: 20 * sec, event: "died", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 20100 * time.Millisecond, event: "refused", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 5 * sec},
				{at: 25100 * time.Millisecond, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 25200 * time.Millisecond, event: "refused", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 10 * sec},
				{at: 35200 * time.Millisecond, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 35300 * time.Millisecond, event: "refused", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 12 * sec},
				{at: 47300 * time.Millisecond, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 47400 * time.Millisecond, event: "refused", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 12 * sec},
				{at: 59400 * time.Millisecond, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				// the rule is installed: the next restart works, with the whole budget left
				{at: 59500 * time.Millisecond, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 60 * sec, event: "ok", wantState: Verifying, wantWakeIn: 29500 * time.Millisecond},
				{at: 61 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
			},
		},
		{
			name: "a pass resets the failure count; no action on the first failure",
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "ok", wantState: Healthy},
				{at: 23 * sec, event: "fail", wantState: Healthy},
				{at: 24 * sec, event: "fail", wantState: Healthy},
			},
		},
		{
			name: "heal: failing, restart done, verified after the success threshold",
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 22500 * time.Millisecond, event: "fail", wantState: Restarting}, // job in flight: ignored
				{at: 23 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 24 * sec, event: "fail", wantState: Verifying, wantWakeIn: 29 * sec},
				{at: 25 * sec, event: "ok", wantState: Verifying, wantWakeIn: 28 * sec},
				{at: 26 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
				// the grace period after the restart hides the next failures
				{at: 27 * sec, event: "fail", wantState: Healthy},
				{at: 28 * sec, event: "fail", wantState: Healthy},
				{at: 29 * sec, event: "fail", wantState: Healthy},
			},
		},
		{
			name: "verify timeout retries with doubling backoff, then gives up on the budget",
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 23 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 52 * sec, event: "tick", wantState: Verifying, wantWakeIn: 1 * sec},
				{at: 53 * sec, event: "tick", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 5 * sec},
				{at: 55 * sec, event: "tick", wantState: Restarting, wantWakeIn: 3 * sec},
				{at: 58 * sec, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 59 * sec, event: "failed", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 10 * sec},
				{at: 69 * sec, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 70 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 100 * sec, event: "tick", wantState: GaveUp, wantTo: []State{GaveUp}, wantWakeIn: time.Hour},
				{at: 101 * sec, event: "fail", wantState: GaveUp, wantWakeIn: time.Hour - sec},
				{at: 102 * sec, event: "tick", wantState: GaveUp, wantWakeIn: time.Hour - 2*sec},
			},
		},
		{
			name:   "backoff is capped at backoff_max",
			params: func(p *Params) { p.MaxRestarts = 10 },
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 22 * sec, event: "failed", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 5 * sec},
				{at: 27 * sec, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 27 * sec, event: "failed", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 10 * sec},
				{at: 37 * sec, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Restarting}},
				{at: 37 * sec, event: "err", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 12 * sec},
			},
		},
		{
			name:   "gave up resolves when the probes pass, and the budget renews after retry_after",
			params: func(p *Params) { p.MaxRestarts = 1; p.RetryAfter = 20 * time.Minute },
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 23 * sec, event: "canceled", wantState: GaveUp, wantTo: []State{GaveUp}, wantWakeIn: 20 * time.Minute},
				{at: 23*sec + 20*time.Minute, event: "tick", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 24*sec + 20*time.Minute, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 54*sec + 20*time.Minute, event: "tick", wantState: GaveUp, wantTo: []State{GaveUp}, wantWakeIn: 20 * time.Minute},
				{at: 55*sec + 20*time.Minute, event: "ok", wantState: GaveUp, wantWakeIn: 20*time.Minute - sec},
				{at: 56*sec + 20*time.Minute, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
			},
		},
		{
			name:   "retry_after 0 never renews the budget",
			params: func(p *Params) { p.MaxRestarts = 1; p.RetryAfter = 0 },
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 23 * sec, event: "failed", wantState: GaveUp, wantTo: []State{GaveUp}},
				{at: 100 * time.Hour, event: "tick", wantState: GaveUp},
			},
		},
		{
			name:   "the budget slides: a new incident inside the window finds it spent",
			params: func(p *Params) { p.MaxRestarts = 1; p.Successes = 1 },
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 23 * sec, event: "done", wantState: Verifying, wantTo: []State{Verifying}, wantWakeIn: 30 * sec},
				{at: 24 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
				{at: 40 * sec, event: "fail", wantState: Healthy},
				{at: 41 * sec, event: "fail", wantState: Healthy},
				{at: 42 * sec, event: "fail", wantState: GaveUp, wantTo: []State{Failing, GaveUp}, wantWakeIn: time.Hour},
				{at: 43 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
				// 10 minutes after the first restart the window has room again
				{at: 22*sec + 10*time.Minute, event: "fail", wantState: Healthy},
				{at: 23*sec + 10*time.Minute, event: "fail", wantState: Healthy},
				{at: 24*sec + 10*time.Minute, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
			},
		},
		{
			name:   "action none: failing until the probes pass, never a restart",
			params: func(p *Params) { p.Remediate = false; p.Successes = 1 },
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Failing, wantTo: []State{Failing}},
				{at: 23 * sec, event: "fail", wantState: Failing},
				{at: 24 * sec, event: "tick", wantState: Failing},
				{at: 25 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
			},
		},
		{
			name:   "recovery on its own during a backoff ends the incident",
			params: func(p *Params) { p.Successes = 1 },
			steps: []step{
				{at: 20 * sec, event: "fail", wantState: Healthy},
				{at: 21 * sec, event: "fail", wantState: Healthy},
				{at: 22 * sec, event: "fail", wantState: Restarting, wantRestart: true, wantTo: []State{Failing, Restarting}},
				{at: 23 * sec, event: "failed", wantState: Restarting, wantTo: []State{Restarting}, wantWakeIn: 5 * sec},
				{at: 24 * sec, event: "ok", wantState: Healthy, wantTo: []State{Healthy}},
				{at: 28 * sec, event: "tick", wantState: Healthy},
			},
		},
		{
			name: "a stray job result outside restarting changes nothing",
			steps: []step{
				{at: 20 * sec, event: "done", wantState: Healthy},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := params()
			if tt.params != nil {
				tt.params(&p)
			}
			run(t, p, tt.steps)
		})
	}
}

func TestTransitionDetails(t *testing.T) {
	m := New(params(), t0)
	for i := range 2 {
		m.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused")
	}
	d := m.Probe(t0.Add(22*time.Second), false, "127.0.0.1:8080 connection refused")
	if len(d.Transitions) != 2 {
		t.Fatalf("got %d transitions, want 2", len(d.Transitions))
	}
	f, r := d.Transitions[0], d.Transitions[1]
	if f.From != Healthy || f.To != Failing || !strings.Contains(f.Reason, "3 consecutive failed probes: 127.0.0.1:8080 connection refused") {
		t.Errorf("first transition = %+v", f)
	}
	if r.Attempt != 1 || r.Elapsed != 2*time.Second {
		t.Errorf("restart transition attempt=%d elapsed=%s, want 1 and 2s", r.Attempt, r.Elapsed)
	}
	if got := m.FailingSince(); !got.Equal(t0.Add(20 * time.Second)) {
		t.Errorf("FailingSince = %s, want t0+20s", got)
	}
	m.JobDone(t0.Add(23*time.Second), "done", nil)
	m.Probe(t0.Add(24*time.Second), true, "")
	d = m.Probe(t0.Add(25*time.Second), true, "")
	if len(d.Transitions) != 1 || d.Transitions[0].Elapsed != 5*time.Second {
		t.Fatalf("recovery transitions = %+v, want one with elapsed 5s", d.Transitions)
	}
	if !m.FailingSince().IsZero() || m.Attempt() != 0 {
		t.Errorf("after recovery FailingSince=%s Attempt=%d, want zero", m.FailingSince(), m.Attempt())
	}
}

// TestEscalate checks which transitions say that remediation did not work.
func TestEscalate(t *testing.T) {
	p := params()
	p.MaxRestarts = 2
	m := New(p, t0)
	var all []Transition
	feed := func(d Decision) { all = append(all, d.Transitions...) }
	for i := range 3 {
		feed(m.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused"))
	}
	feed(m.JobDone(t0.Add(23*time.Second), "failed", nil)) // restart job failed
	feed(m.Tick(t0.Add(28 * time.Second)))                 // attempt 2 after backoff
	feed(m.JobDone(t0.Add(29*time.Second), "done", nil))   // verifying
	feed(m.Tick(t0.Add(59 * time.Second)))                 // verify failed: gave up
	feed(m.Probe(t0.Add(60*time.Second), true, ""))        // one pass
	feed(m.Probe(t0.Add(61*time.Second), true, ""))        // resolved
	want := []struct {
		to       State
		escalate bool
	}{
		{Failing, false}, {Restarting, false}, {Restarting, true}, {Restarting, false},
		{Verifying, false}, {GaveUp, true}, {Healthy, false},
	}
	if len(all) != len(want) {
		t.Fatalf("got %d transitions %+v, want %d", len(all), all, len(want))
	}
	for i, w := range want {
		if all[i].To != w.to || all[i].Escalate != w.escalate {
			t.Errorf("transition %d: to %s escalate %v, want to %s escalate %v (%s)", i, all[i].To, all[i].Escalate, w.to, w.escalate, all[i].Reason)
		}
	}
}

// TestChargeRestart: a restart the remedy repeated after start-limit-hit
// uses two restarts of the budget.
func TestChargeRestart(t *testing.T) {
	p := params()
	p.MaxRestarts = 2
	m := New(p, t0)
	for i := range 3 {
		m.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused")
	}
	m.ChargeRestart(t0.Add(23 * time.Second))
	if got := m.RestartsInWindow(t0.Add(23 * time.Second)); got != 2 {
		t.Fatalf("RestartsInWindow = %d, want 2", got)
	}
	m.JobDone(t0.Add(23*time.Second), "done", nil)
	d := m.Tick(t0.Add(53 * time.Second))
	if m.State() != GaveUp || d.Restart {
		t.Errorf("after a failed verify with the budget spent: state %s restart %v, want gave_up, no restart", m.State(), d.Restart)
	}
}

// TestPause: a paused check becomes failing but is not restarted until the
// pause ends; then it is restarted at once.
func TestPause(t *testing.T) {
	m := New(params(), t0)
	until := t0.Add(30 * time.Minute)
	if d := m.Pause(t0.Add(15*time.Second), until); !d.WakeAt.IsZero() {
		t.Errorf("pause of a healthy check asks to wake at %s", d.WakeAt)
	}
	var d Decision
	for i := range 3 {
		d = m.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused")
	}
	if m.State() != Failing || d.Restart || !d.WakeAt.Equal(until) {
		t.Fatalf("paused: state %s restart %v wake %s; want failing, no restart, wake at the pause's end", m.State(), d.Restart, d.WakeAt)
	}
	if len(d.Transitions) != 1 || d.Transitions[0].Escalate {
		t.Errorf("paused transitions = %+v, want one that does not escalate", d.Transitions)
	}
	if d := m.Tick(until.Add(-time.Second)); d.Restart {
		t.Error("restarted before the pause ended")
	}
	if d := m.Tick(until); !d.Restart || m.State() != Restarting {
		t.Errorf("at the pause's end: restart %v state %s, want a restart", d.Restart, m.State())
	}

	m2 := New(params(), t0)
	m2.Pause(t0, t0.Add(time.Hour))
	for i := range 3 {
		m2.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused")
	}
	if d := m2.Resume(t0.Add(time.Minute)); !d.Restart || m2.Paused(t0.Add(time.Minute)) {
		t.Errorf("resume of a failing check: restart %v, want a restart at once", d.Restart)
	}
}

// TestSnapshotRestore: a Machine killed while verifying continues from its
// snapshot: still verifying (with a fresh verify window), the same attempt,
// and the restart budget in use is not renewed.
func TestSnapshotRestore(t *testing.T) {
	p := params()
	p.MaxRestarts = 2
	m := New(p, t0)
	for i := range 3 {
		m.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused")
	}
	m.JobDone(t0.Add(23*time.Second), "done", nil)
	snap := m.Snapshot()
	if snap.State != Verifying || len(snap.Restarts) != 1 || snap.Attempt != 1 {
		t.Fatalf("snapshot = %+v", snap)
	}

	later := t0.Add(40 * time.Second)
	r := Restore(p, snap, later)
	if r.State() != Verifying || r.Attempt() != 1 || r.RestartsInWindow(later) != 1 || !r.FailingSince().Equal(t0.Add(20*time.Second)) {
		t.Fatalf("restored: state %s attempt %d budget used %d since %s", r.State(), r.Attempt(), r.RestartsInWindow(later), r.FailingSince())
	}
	// The verify window restarts at the restore: nothing fails at once.
	if d := r.Tick(later.Add(p.VerifyTimeout - time.Second)); len(d.Transitions) != 0 {
		t.Errorf("verify failed before a fresh verify_timeout: %+v", d.Transitions)
	}
	// A failed verification now spends the rest of the budget, not a new one.
	r.Tick(later.Add(p.VerifyTimeout))
	d := r.Tick(later.Add(p.VerifyTimeout + p.Backoff))
	if !d.Restart {
		t.Fatalf("no second attempt after backoff: %+v", d)
	}
	r.JobDone(later.Add(p.VerifyTimeout+p.Backoff), "failed", nil)
	if r.State() != GaveUp {
		t.Errorf("state after spending the carried-over budget = %s, want gave_up", r.State())
	}

	// A restart in flight when medic died is verified, not repeated.
	m2 := New(p, t0)
	for i := range 3 {
		m2.Probe(t0.Add(time.Duration(20+i)*time.Second), false, "refused")
	}
	r2 := Restore(p, m2.Snapshot(), later)
	if r2.State() != Verifying || r2.JobInFlight() || r2.RestartsInWindow(later) != 1 {
		t.Errorf("in-flight restart restored as %s (in flight %v, budget %d), want verifying", r2.State(), r2.JobInFlight(), r2.RestartsInWindow(later))
	}
	r2.Probe(later.Add(time.Second), true, "")
	if d := r2.Probe(later.Add(2*time.Second), true, ""); len(d.Transitions) != 1 || d.Transitions[0].To != Healthy {
		t.Errorf("a passing probe after restore = %+v, want healthy", d.Transitions)
	}
}

// TestRefusedRestartsAreNotCharged wants restarts that polkit refused to
// leave the restart budget and the attempt count as they were, in the
// Machine and in its Snapshot, so that "gave up after 3 restarts" can never
// count restarts that did not happen.
func TestRefusedRestartsAreNotCharged(t *testing.T) {
	p := params()
	m := New(p, t0)
	now := t0.Add(20 * time.Second)
	d := m.UnitDied(now, "unit failed (Result=signal)")
	for i := 0; i < 10; i++ {
		if !d.Restart {
			t.Fatalf("round %d: no restart asked", i)
		}
		d = m.JobRefused(now, "restart refused")
		last := d.Transitions[len(d.Transitions)-1]
		if !last.Refused || !last.Escalate {
			t.Fatalf("round %d: transition %+v, want Refused and Escalate", i, last)
		}
		if got := m.RestartsInWindow(now); got != 0 {
			t.Fatalf("round %d: %d restarts charged to the budget, want 0", i, got)
		}
		if got := m.Snapshot(); len(got.Restarts) != 0 || got.Attempt != 0 {
			t.Fatalf("round %d: snapshot keeps %d restarts, attempt %d; want none", i, len(got.Restarts), got.Attempt)
		}
		now = d.WakeAt
		if wait := d.WakeAt.Sub(d.Transitions[0].At); wait > RefusedRetryMax {
			t.Fatalf("round %d: next attempt in %s, more than %s", i, wait, RefusedRetryMax)
		}
		d = m.Tick(now)
	}
	if m.State() == GaveUp {
		t.Fatal("gave up after refused restarts")
	}
	d = m.JobDone(now, "done", nil)
	if m.State() != Verifying || m.Attempt() != 1 || m.RestartsInWindow(now) != 1 {
		t.Fatalf("after the first restart that ran: state %s, attempt %d, budget used %d; want verifying, 1, 1",
			m.State(), m.Attempt(), m.RestartsInWindow(now))
	}
}
