package agent

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/agent/policy"
	"github.com/medic-watchdog/medic/agent/sched"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/logging"
	"github.com/medic-watchdog/medic/metrics"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// jobResult is the outcome of one remedy, handed from the remedy goroutine
// back to the runner.
type jobResult struct {
	outcome remedy.Outcome
	err     error
}

// runner decides for one check: it feeds the check's policy Machine with
// the check's events and carries out its decisions. It has no goroutine
// and no timer of its own. The agent's Scheduler (package sched) holds two
// entries per runner, the next probe round and the Machine's next wake-up;
// a probe round runs on a worker of the agent's Pool and hands its results
// back. Every event of a runner (probe results, unit events, triggers,
// operator control, wake-ups, remedy results) goes through its mailbox
// (deliver) and is handled serially, never two at once: the Machine and
// the fields below marked "serial" are never shared. Remedies, and events
// whose handling may wait on systemd or gather evidence, run on goroutines
// started when needed (the responders); a probe round that passed while
// the check is quiet is handled at once on its worker.
// The model is kubelet's prober worker (pkg/kubelet/prober/worker.go), with
// its timers folded into one heap.
type runner struct {
	check  config.Check
	probes []probe.Prober
	// probeNames are the probes' metric names, "INDEX-TYPE", made once.
	probeNames []string
	// obs records the probes' metrics (nil: none).
	obs   *metrics.CheckObserver
	agent *Agent
	// logp is the check's logger, made at its first line (logger): most
	// checks never log, and a zap logger with fields costs a kilobyte.
	logp atomic.Pointer[zap.Logger]

	m *policy.Machine // serial
	// stoppedByOperator is set while the unit stays stopped by a stop job
	// medic did not issue; remediation is paused meanwhile. Serial.
	stoppedByOperator bool
	// lastJobDone is when medic's last restart job finished: unit events
	// from before it belong to that restart. Serial.
	lastJobDone time.Time
	// operatorJob is set while a job medic did not queue (an operator's
	// start, restart or reload) changes the unit: failed probes are not
	// counted until the unit is active again and its grace period passed.
	// Serial.
	operatorJob bool
	// unitDown is set while systemd's latest word on the unit is that it
	// is down (downState) with no job: a probe that passes meanwhile
	// reaches another process (one holding the unit's port), so the round
	// fails if the unit is still down when read again.
	unitDown bool
	// lastDeath is the StateChangeTimestamp of the last death medic acted
	// on, so that one death is acted on once.
	lastDeath time.Time
	// deathState is the unit's state read when systemd reported it dead;
	// the incident's diagnosis starts from it. Serial.
	deathState *unit.State
	// refused is the latest restart the manager refused for lack of
	// authorization, until a restart is carried out again. Serial.
	refused *remedy.AuthorizationError
	// heartbeat is when the runner last made progress (a probe round
	// started, an event was handled; unix nanoseconds), for the watchdog.
	heartbeat atomic.Int64

	// ctx is the runner's own, from start until stop; cancel ends it.
	// Both are set by start, under box; read ctx with runContext.
	ctx    context.Context
	cancel context.CancelFunc
	// probeAt is the next probe round in the agent's Scheduler, wakeAt the
	// Machine's next wake-up (Decision.WakeAt).
	probeAt, wakeAt *sched.Entry
	// inFlight is set from the moment a probe round is handed to the Pool
	// until its results are handled: one round at a time.
	inFlight atomic.Bool
	// pending is a round asked for (a trigger, a unit event) while one was
	// in flight; it starts when that one ends. Serial.
	pending *round
	// quiet is set while the check is healthy, its last round passed and
	// no incident is open: a round that passes then changes nothing but
	// counters and is handled where its result arrives (a worker, the
	// Scheduler's goroutine or the connect poller's).
	quiet atomic.Bool
	// starter is the check's one probe when it can start without blocking
	// (probe.StarterOf): its rounds need no worker of the Pool.
	starter probe.Starter
	// slow is set while the last round failed after slowRound or longer
	// (a target that does not answer, waited for until the timeout): the
	// next round runs outside the Pool's slots.
	slow atomic.Bool
	// failLogAt is when the last "probe failed" line was written,
	// failLogQuiet how many were left out since (rate limit). Serial.
	failLogAt    time.Time
	failLogQuiet int
	// freshDiag is the diagnosis gathered for the transition being
	// applied: the firing message of the same event carries it instead of
	// gathering the evidence again. Serial.
	freshDiag *diagnose.Diagnosis

	// box guards the mailbox: queued events, whether one is being handled
	// (busy), whether the runner stopped, the unit events waiting and the
	// trigger waiting.
	box      sync.Mutex
	queue    []func()
	busy     bool
	stopped  bool
	units    []remedy.UnitEvent // the unit's state changes; at most maxUnitEvents
	trigger  string             // a trigger waiting to be handled; later ones merge into it
	active   sync.WaitGroup     // rounds, handlers and remedies in flight
	handling atomic.Int64       // unix nanoseconds the current handler started; 0 idle

	// lastOK is the result of the previous probe round; lastFailure the
	// latest failed probe. Serial.
	lastOK      bool
	lastFailure probe.Result
	lastSpec    probe.Spec // the probe that failed last
	// incidents turns transitions into incidents and messages. Serial.
	incidents tracker

	mu     sync.Mutex // guards status
	status Status
}

// round is a probe round asked for out of schedule.
type round struct {
	// scheduled is set for a round of the schedule, due when it should
	// have started: its lateness is observed.
	scheduled bool
	due       time.Time
	// unitDown makes the round fail even if every probe passes, with
	// unitState as the reason (a unit systemd reports failed or inactive).
	unitDown  bool
	unitState string
	// announce, when set, logs why the round runs now; called when it
	// starts.
	announce func()
}

// slowRound is how long a failed round may take before the check's next
// round runs outside the Pool's slots. A probe of a target that answers,
// or refuses, takes a millisecond or so; one that fails after this long
// most likely waited for its timeout. A round that passes, however slowly,
// stays in the Pool: a CPU-starved host must not lift the Pool's bound.
const slowRound = 20 * time.Millisecond

// maxUnitEvents bounds the unit events waiting for a runner; when it is
// behind, the oldest is dropped (the newest state is what counts).
const maxUnitEvents = 4

func newRunner(a *Agent, c config.Check, probes []probe.Prober) *runner {
	r := &runner{
		check:  c,
		probes: probes,
		agent:  a,
		lastOK: true,
		incidents: tracker{
			check:   c,
			host:    a.host,
			version: a.version,
			record:  a.recordIncident,
		},
	}
	for i := range probes {
		r.probeNames = append(r.probeNames, fmt.Sprintf("%d-%s", i, c.Probes[i].Type))
	}
	r.obs = a.observer.ForCheck(c.Name, r.probeNames)
	if len(probes) == 1 {
		r.starter = probe.StarterOf(probes[0])
	}
	r.probeAt = sched.NewEntry(r.scheduled)
	r.wakeAt = sched.NewEntry(func(time.Time) {
		r.deliver(func() { r.act(r.m.Tick(r.agent.now())) }, false)
	})
	params := policy.Params{
		Failures:      c.Failures,
		Successes:     c.Successes,
		Grace:         c.Grace.Duration,
		Remediate:     c.Remedy.Action != "none",
		VerifyTimeout: c.Remedy.VerifyTimeout.Duration,
		MaxRestarts:   c.Remedy.MaxRestarts,
		Window:        c.Remedy.Window.Duration,
		Backoff:       c.Remedy.Backoff.Duration,
		BackoffMax:    c.Remedy.BackoffMax.Duration,
		RetryAfter:    c.Remedy.RetryAfter.Duration,
	}
	now := a.now()
	r.m = policy.New(params, now)
	r.status = Status{Check: c.Name, Unit: c.Unit, State: string(policy.Healthy)}
	r.restore(params, now)
	r.quiet.Store(r.isQuiet())
	return r
}

// logger is the check's logger: the agent's with the check and unit
// fields, made on first use.
func (r *runner) logger() *zap.Logger {
	if l := r.logp.Load(); l != nil {
		return l
	}
	r.logp.CompareAndSwap(nil, r.agent.log.With(zap.String("check", r.check.Name), zap.String("unit", r.check.Unit)))
	return r.logp.Load()
}

// start makes the runner live under parent: its first probe round is
// scheduled within the start spread.
func (r *runner) start(parent context.Context) {
	ctx, cancel := context.WithCancel(parent)
	r.box.Lock()
	r.ctx, r.cancel = ctx, cancel
	r.box.Unlock()
	r.heartbeat.Store(r.agent.now().UnixNano())
	r.agent.sched.Schedule(r.probeAt, time.Now().Add(r.startDelay()))
}

// halt ends the runner: nothing is handled after it, its scheduled rounds
// and wake-ups are taken out, and what is in flight sees its context
// cancelled. wait waits for that to end.
func (r *runner) halt() {
	r.box.Lock()
	r.stopped = true
	r.queue, r.units, r.trigger = nil, nil, ""
	cancel := r.cancel
	r.box.Unlock()
	if cancel != nil {
		cancel()
	}
	r.agent.sched.Cancel(r.probeAt)
	r.agent.sched.Cancel(r.wakeAt)
}

// wait returns once the rounds, handlers and remedies of a halted runner
// have returned.
func (r *runner) wait() { r.active.Wait() }

// begin counts one more thing in flight for the runner; false once it
// stopped.
func (r *runner) begin() bool {
	r.box.Lock()
	defer r.box.Unlock()
	if r.stopped {
		return false
	}
	r.active.Add(1)
	return true
}

// deliver hands f to the runner's mailbox; every f runs alone, in the
// order delivered. When the runner is idle, f runs now on this goroutine
// if inline is set, else on a goroutine started for it (a responder),
// which handles what arrives meanwhile and ends. It reports false, and f
// never runs, once the runner stopped.
func (r *runner) deliver(f func(), inline bool) bool {
	r.box.Lock()
	if r.stopped {
		r.box.Unlock()
		return false
	}
	r.queue = append(r.queue, f)
	if r.busy {
		r.box.Unlock()
		return true
	}
	r.busy = true
	r.active.Add(1)
	r.box.Unlock()
	if inline {
		r.drain(true)
	} else {
		go r.drain(false)
	}
	return true
}

// drain handles the mailbox until it is empty. Inline (on a worker of the
// Pool), it handles one event and leaves the rest to a responder.
func (r *runner) drain(inline bool) {
	defer r.active.Done()
	for n := 0; ; n++ {
		r.box.Lock()
		if len(r.queue) == 0 || r.stopped {
			r.queue = nil
			r.busy = false
			r.box.Unlock()
			return
		}
		// Inline, only a quiet check's round is handled here: the check
		// may have stopped being quiet since the caller looked (a handler
		// ran meanwhile), and the handler of a check that is not quiet
		// may wait on systemd.
		if inline && (n > 0 || !r.quiet.Load()) {
			r.active.Add(1)
			r.box.Unlock()
			go r.drain(false)
			return
		}
		f := r.queue[0]
		r.queue[0] = nil
		r.queue = r.queue[1:]
		r.box.Unlock()
		now := r.agent.now().UnixNano()
		r.handling.Store(now)
		r.heartbeat.Store(now)
		f()
		r.handling.Store(0)
		r.quiet.Store(r.isQuiet())
	}
}

// isQuiet reports whether a passing probe round would change nothing but
// counters: the check is healthy, passed its last round, has no incident
// open and no operator's job or stop in the way. Serial.
func (r *runner) isQuiet() bool {
	return r.m.State() == policy.Healthy && r.lastOK && r.incidents.open == nil && !r.operatorJob && !r.stoppedByOperator && !r.unitDown
}

// Trigger asks the runner to probe now, e.g. because nginx logged an error
// for its upstream. It never blocks; triggers that arrive while one waits
// to be handled merge into it.
func (r *runner) Trigger(reason string) {
	r.box.Lock()
	if r.stopped || r.trigger != "" {
		r.box.Unlock()
		return
	}
	r.trigger = reason
	r.box.Unlock()
	r.deliver(func() {
		r.box.Lock()
		reason := r.trigger
		r.trigger = ""
		r.box.Unlock()
		if reason == "" {
			return
		}
		r.probeNow(round{announce: func() {
			r.logger().Info(fmt.Sprintf("%s: probing now: %s", r.check.Name, reason), zap.String(logging.EventField, "probing now"), zap.String("trigger", reason))
		}})
	}, false)
}

// scheduled runs on the Scheduler's goroutine when the round of the
// schedule is due: it hands the round to the Pool unless one is in flight.
func (r *runner) scheduled(due time.Time) {
	if !r.inFlight.CompareAndSwap(false, true) {
		return
	}
	rd := round{scheduled: true, due: due}
	if r.starter != nil {
		// Started with the rest of the batch (Agent.startBatch).
		if !r.begin() {
			r.inFlight.Store(false)
			return
		}
		r.agent.starts = append(r.agent.starts, pendingStart{r, rd})
		return
	}
	r.submit(rd)
}

// submit hands round rd to the Pool; inFlight is set.
func (r *runner) submit(rd round) {
	if !r.begin() {
		r.inFlight.Store(false)
		return
	}
	if r.starter != nil {
		r.startRound(rd)
		return
	}
	task := func() {
		defer r.active.Done()
		r.probeRound(rd)
	}
	// A check whose last round waited long (its target did not answer)
	// probes on a goroutine of its own: it would only hold a worker until
	// the Pool noticed it stalled, and delay the rounds queued behind it.
	var ok bool
	if r.slow.Load() {
		ok = r.agent.pool.Go(task)
	} else {
		ok = r.agent.pool.Submit(task)
	}
	if !ok { // the agent is stopping
		r.active.Done()
		r.inFlight.Store(false)
	}
}

// probeNow starts a round at once, or right after the round in flight.
// Serial.
func (r *runner) probeNow(rd round) {
	if r.inFlight.CompareAndSwap(false, true) {
		r.agent.sched.Cancel(r.probeAt)
		r.submit(rd)
		return
	}
	if r.pending == nil || rd.unitDown {
		r.pending = &rd
	}
}

// arm schedules the next round of the schedule in d, unless a round is in
// flight (its end arms the next). Serial.
func (r *runner) arm(d time.Duration) {
	if r.inFlight.Load() {
		return
	}
	r.agent.sched.Schedule(r.probeAt, time.Now().Add(d))
}

// probeRound runs on a worker of the Pool: it runs the check's probes, each
// with its timeout counted from now (a round that waited for a worker ran
// late, it did not fail), and hands the results to the runner.
func (r *runner) probeRound(rd round) {
	ctx := r.beginRound(rd)
	r.roundDone(rd, ctx, r.runProbes(ctx))
}

// startRound runs round rd of a check whose one probe is a Starter (a TCP
// connect to an IP address): the probe starts on this goroutine (the
// Scheduler's, or the runner's handler) without blocking it, and its
// result is handled where it arrives, as probeRound's are. No worker,
// goroutine or timer waits on the target meanwhile.
func (r *runner) startRound(rd round) {
	ctx := r.beginRound(rd)
	r.starter.Start(ctx, r.check.Timeout.Duration, func(res probe.Result) {
		defer r.active.Done()
		if ctx.Err() == nil {
			r.obs.ObserveProbe(0, res.OK, res.Duration)
		}
		r.roundDone(rd, ctx, []probe.Result{res})
	})
}

// beginRound notes that round rd starts now (its lateness, the runner's
// heartbeat, why it runs) and returns the context its probes run under.
func (r *runner) beginRound(rd round) context.Context {
	if rd.scheduled {
		r.agent.observer.ObserveLateness(max(0, time.Since(rd.due)))
	}
	r.heartbeat.Store(r.agent.now().UnixNano())
	if rd.announce != nil {
		rd.announce()
	}
	return r.runContext()
}

// roundDone hands the results of round rd, run under ctx, to the runner:
// on this goroutine when they change nothing but counters (a quiet check
// passed), else to a responder.
func (r *runner) roundDone(rd round, ctx context.Context, results []probe.Result) {
	inline := r.quiet.Load() && !rd.unitDown
	slow := false
	for _, res := range results {
		inline = inline && res.OK
		slow = slow || (!res.OK && res.Duration >= slowRound)
	}
	r.slow.Store(slow)
	handled := r.deliver(func() {
		r.inFlight.Store(false)
		if ctx.Err() != nil {
			return // stopping: a cancelled probe is no evidence
		}
		unitDown, unitState := rd.unitDown, rd.unitState
		// When the probes pass while systemd's latest word is that the
		// unit is down (events are tracked even while medic's own restart
		// runs: the unit may fail right after its start job), the unit is
		// read again, briefly: a unit still down fails the round, since
		// another process answers on its port. Not while verifying a
		// restart: a death then comes as systemd's signal, and the
		// restart's own state changes are not a verdict.
		if unitState == "" && r.check.Unit != "" && !r.stoppedByOperator && r.unitDown && r.m.State() != policy.Verifying {
			unitDown, unitState = true, "unit down"
		}
		r.act(r.decide(results, unitDown, unitState))
		if p := r.pending; p != nil {
			r.pending = nil
			r.probeNow(*p)
			return
		}
		r.arm(r.nextDelay())
	}, inline)
	if !handled {
		r.inFlight.Store(false)
	}
}

// act carries out the Machine's decision d: it starts the remedy, logs the
// transitions, updates the status, raises escalation events, saves the
// state and schedules the Machine's next wake-up. Serial.
func (r *runner) act(d policy.Decision) {
	// The unit's state is the diagnosis' first evidence: read it before
	// the restart changes it, then restart at once, then diagnose.
	var before *unit.State
	if opensIncident(d) {
		before = r.deathState
		if before == nil {
			before = r.unitNow()
		}
	}
	r.deathState = nil
	if d.Restart && r.begin() {
		ctx := r.runContext()
		go func() {
			defer r.active.Done()
			res := r.remedy(ctx)
			r.deliver(func() { r.jobDone(res) }, true)
		}()
	}
	r.apply(d, before)
	if len(d.Transitions) > 0 || d.Restart {
		r.persist()
	}
	r.agent.sched.Cancel(r.wakeAt)
	if !d.WakeAt.IsZero() {
		r.agent.sched.Schedule(r.wakeAt, time.Now().Add(max(0, d.WakeAt.Sub(r.agent.now()))))
	}
}

// jobDone handles the result of the remedy. Serial.
func (r *runner) jobDone(res jobResult) {
	r.logOutcome(res)
	now := r.agent.now()
	r.lastJobDone = now
	var refused *remedy.AuthorizationError
	if errors.As(res.err, &refused) {
		// Not a restart: nothing is charged, the incident escalates with
		// the cause, and medic tries again later.
		r.refused = refused
		r.incidents.refused(now, refused)
		r.act(r.m.JobRefused(now, "restart refused: "+refused.Error()))
		r.setBudget(now)
		r.persist()
		r.arm(r.nextDelay())
		return
	}
	r.refused = nil
	r.incidents.job(now, r.m.Attempt(), res.outcome, res.err)
	if res.outcome.ResetFailed {
		r.m.ChargeRestart(now)
	}
	r.act(r.m.JobDone(now, res.outcome.JobResult, res.err))
	r.setBudget(now)
	r.persist() // the restart count of the incident, even without a transition
	// Start verifying at once rather than an interval later.
	r.probeNow(round{})
}

// unitEvent hands ev to the runner without blocking; when the runner is
// behind, the oldest pending event is dropped (the newest state is what
// counts).
func (r *runner) unitEvent(ev remedy.UnitEvent) {
	r.box.Lock()
	if r.stopped {
		r.box.Unlock()
		return
	}
	if len(r.units) == maxUnitEvents {
		r.units = append(r.units[:0], r.units[1:]...)
	}
	r.units = append(r.units, ev)
	r.box.Unlock()
	r.deliver(r.nextUnitEvent, false)
}

// nextUnitEvent handles the oldest unit event waiting. Serial.
func (r *runner) nextUnitEvent() {
	r.box.Lock()
	if len(r.units) == 0 {
		r.box.Unlock()
		return
	}
	ev := r.units[0]
	r.units = append(r.units[:0], r.units[1:]...)
	r.box.Unlock()
	probeNow, d := r.handleUnit(ev)
	r.act(d)
	if probeNow {
		r.probeNow(r.roundAfterEvent(ev))
	}
}

// handleUnit reacts to a state change of the unit. It reports whether the
// check must probe now, with the decision the event led to.
//
// Never fight an operator: a stop job that medic did not issue (`systemctl
// stop`) pauses remediation until the unit is active again or `medic
// resume`, unless the check sets restart_stopped; a start, restart or
// reload job of an operator is not a failure: probes are not counted while
// it runs, nor for the grace period after the unit is active again.
// systemd's word is evidence: a unit that died on its own (failed, or
// inactive or restarting itself with a Result other than success) is
// remedied at once, without waiting for the failure threshold. A unit that
// exited cleanly is probed at once, and the probe round counts as failed.
func (r *runner) handleUnit(ev remedy.UnitEvent) (bool, policy.Decision) {
	now := r.agent.now()
	if ev.Job == "" && !ev.StopJob {
		r.unitDown = unit.IsDown(ev.ActiveState, ev.SubState) // whoever changed it: the latest state counts
	}
	if r.m.JobInFlight() || ev.At.Before(r.lastJobDone) {
		return false, policy.Decision{} // medic's own restart passing through
	}
	switch {
	case ev.StopJob && !r.check.RestartStopped:
		if !r.stoppedByOperator {
			r.stoppedByOperator = true
			r.logger().Warn(r.check.Name+": unit "+r.check.Unit+" stopped by an operator; medic leaves it alone until it is started again or medic resume",
				zap.String("active_state", ev.ActiveState))
			r.setStatus(func(s *Status) {
				s.Paused = &Pause{Until: now.Add(operatorStopHold), Reason: "stopped by the operator (systemctl stop)"}
			})
		}
		return false, r.m.Pause(now, now.Add(operatorStopHold))
	case ev.ActiveState == "active" && ev.Job == "" && r.stoppedByOperator:
		r.stoppedByOperator = false
		r.operatorJob = false
		r.logger().Info(r.check.Name + ": unit " + r.check.Unit + " started again after an operator's stop; remediation resumes")
		r.setStatus(func(s *Status) { s.Paused = nil })
		// Lift the pause without acting: the unit runs again, and the
		// probe that follows sees whether it answers.
		until := time.Time{}
		if p, ok := r.agent.pauses.get(r.check.Name, now); ok { // an explicit pause still holds
			until = p.Until
		}
		r.m.Started(now)
		return true, r.m.Pause(now, until)
	case ev.Job != "" && !ev.Resync:
		// An operator's start, restart or reload (medic's own jobs
		// returned above): the unit is between states on purpose.
		if !r.operatorJob {
			r.logger().Info(fmt.Sprintf("%s: %s job on %s by someone else; failed probes are not counted until it is active again", r.check.Name, ev.Job, r.check.Unit),
				zap.String("job", ev.Job), zap.String("active_state", ev.ActiveState), zap.String("sub_state", ev.SubState))
		}
		r.operatorJob = true
		r.m.Started(now)
		return false, policy.Decision{}
	case ev.ActiveState == "active" && r.operatorJob:
		r.operatorJob = false
		r.m.Started(now) // the grace period runs from the start, not the job
		return true, policy.Decision{}
	case r.stoppedByOperator:
		return false, policy.Decision{}
	case ev.Died() && !ev.Resync:
		r.operatorJob = false
		return r.unitDied(ev)
	case ev.Down():
		r.operatorJob = false
		return true, policy.Decision{}
	}
	return false, policy.Decision{}
}

// unitDied acts on systemd's report that the unit died. The event may be
// stale (the signals of a restart can arrive after it), so the unit is
// read again first; a unit that is no longer dead is only probed.
func (r *runner) unitDied(ev remedy.UnitEvent) (bool, policy.Decision) {
	s := r.unitWithin(time.Second)
	if s == nil {
		return true, policy.Decision{} // cannot confirm: let the probes judge
	}
	again := remedy.UnitEvent{ActiveState: s.ActiveState, SubState: s.SubState, Result: s.Result}
	if s.Job != 0 || !again.Died() {
		return s.Job == 0, policy.Decision{}
	}
	return false, r.died(s, time.Since(ev.At))
}

// died acts on a unit read as dead (s): the incident starts from s, and the
// Machine fails at once. reportedAfter is how long systemd's word took to
// arrive, for the log.
func (r *runner) died(s *unit.State, reportedAfter time.Duration) policy.Decision {
	now := r.agent.now()
	r.lastDeath = s.StateChangeTimestamp
	reason := fmt.Sprintf("unit %s/%s, result %s", s.ActiveState, s.SubState, s.Result)
	if exit := diagnose.MainExit(s.ExecMainCode, s.ExecMainStatus); exit != "" {
		reason = exit + " (" + reason + ")"
	}
	r.deathState = s
	r.lastOK = false
	r.lastFailure = probe.Result{Class: probe.ClassOther, Target: r.check.Unit, Err: errors.New(reason)}
	if len(r.check.Probes) > 0 {
		r.lastSpec = r.check.Probes[0].Spec()
	}
	r.logger().Info(fmt.Sprintf("%s: systemd reports %s dead: %s", r.check.Name, r.check.Unit, reason),
		zap.String(logging.EventField, "unit died"), zap.String("active_state", s.ActiveState), zap.String("sub_state", s.SubState), zap.String("result", s.Result),
		zap.Duration("reported_after", reportedAfter))
	d := r.m.UnitDied(now, reason)
	r.setStatus(func(st *Status) {
		st.LastProbe, st.LastOK, st.LastError = now, false, r.lastFailure.Problem()
		st.Failures++
	})
	return d
}

// operatorStopHold bounds how long an operator's stop pauses remediation
// when the unit is never started again: long enough for any maintenance.
const operatorStopHold = 100 * 365 * 24 * time.Hour

// roundAfterEvent is the round to probe now because of ev; a unit that is
// failed or inactive makes the round count as failed even if the port
// answers (then something else holds it).
func (r *runner) roundAfterEvent(ev remedy.UnitEvent) round {
	reason := fmt.Sprintf("unit %s/%s", ev.ActiveState, ev.SubState)
	if ev.Result != "" {
		reason += ", result " + ev.Result
	}
	return round{unitDown: ev.Down(), unitState: reason, announce: func() {
		r.logger().Info(fmt.Sprintf("%s: probing now: %s is %s", r.check.Name, r.check.Unit, reason), zap.String(logging.EventField, "probing now"),
			zap.String("trigger", "unit "+ev.ActiveState), zap.String("unit_state", reason))
	}}
}

// control runs f in the runner's turn, which owns the Machine, acts on its
// decision, and waits until it ran or ctx ends. It reports whether f ran.
func (r *runner) control(ctx context.Context, f func(now time.Time) policy.Decision) bool {
	done := make(chan struct{})
	if !r.deliver(func() {
		defer close(done)
		r.act(f(r.agent.now()))
	}, false) {
		return false
	}
	stopped := r.runContext().Done()
	select {
	case <-done:
		return true
	case <-ctx.Done():
		return false
	case <-stopped:
		return false
	}
}

// stale reports whether the runner has made no progress (no probe round
// started, no event handled) for longer than a probe round can take: the
// longest wait between probes plus the probe timeout, with room for
// jitter and scheduling; or whether one handler has run that long. A
// wedged Scheduler or Pool shows here first.
func (r *runner) stale(now time.Time) bool {
	limit := max(r.check.Interval.Duration, r.check.RetryInterval.Duration)*3/2 + r.check.Timeout.Duration + 5*time.Second
	if h := r.handling.Load(); h != 0 && now.Sub(time.Unix(0, h)) > limit {
		return true
	}
	last := time.Unix(0, r.heartbeat.Load())
	return now.Sub(last) > limit
}

// startDelay spreads the first probes of many checks over the interval
// (at most a second), so that ten thousand checks do not probe in the same
// millisecond, every interval, even with jitter 0: the schedule of each
// check stays exact, only its phase differs.
func (r *runner) startDelay() time.Duration {
	spread := min(r.check.Interval.Duration, maxStartSpread)
	if spread <= 0 {
		return 0
	}
	return rand.N(spread)
}

// maxStartSpread caps the start spread: a check with a long interval still
// probes within a second of medic's start.
const maxStartSpread = time.Second

// nextDelay is the retry interval after a failed probe while detection or
// verification is under way, and the interval with jitter otherwise.
func (r *runner) nextDelay() time.Duration {
	s := r.m.State()
	if !r.lastOK && (s == policy.Healthy || s == policy.Verifying || s == policy.Restarting) {
		return r.check.RetryInterval.Duration
	}
	if s == policy.Verifying {
		return r.check.RetryInterval.Duration
	}
	iv := r.check.Interval.Duration
	if j := r.agent.config().Agent.Jitter; j > 0 {
		span := time.Duration(float64(iv) * j)
		if span > 0 {
			iv += rand.N(span) - span/2
		}
	}
	return iv
}

// runProbes runs every probe of the check, each bounded by the check's
// timeout from the moment it starts; several probes run at once. A
// panicking probe counts as a failed probe.
func (r *runner) runProbes(ctx context.Context) []probe.Result {
	results := make([]probe.Result, len(r.probes))
	one := func(i int) {
		defer func() {
			if v := recover(); v != nil {
				results[i] = probe.Result{Class: probe.ClassOther, Err: fmt.Errorf("probe panicked: %v", v)}
			}
		}()
		results[i] = r.probes[i].Probe(ctx, r.check.Timeout.Duration)
	}
	if len(r.probes) == 1 {
		one(0)
	} else {
		var wg sync.WaitGroup
		for i := range r.probes {
			wg.Go(func() { one(i) })
		}
		wg.Wait()
	}
	if ctx.Err() == nil {
		for i, res := range results {
			r.obs.ObserveProbe(i, res.OK, res.Duration)
		}
	}
	return results
}

// failLogEvery is the least time between two "probe failed" lines of one
// check after the first of a run of failures: an overloaded host that
// fails probes must not spend what is left of it writing about them.
const failLogEvery = 10 * time.Second

// decide feeds the results of a probe round to the Machine: the check
// fails when any probe fails; when unitDown, the round fails even if
// every probe passed and the unit, read again, is still down, with
// unitState as the reason. Serial.
func (r *runner) decide(results []probe.Result, unitDown bool, unitState string) policy.Decision {
	now := r.agent.now()
	var latency time.Duration
	for _, res := range results {
		latency = max(latency, res.Duration)
	}
	ok, failed, spec := true, probe.Result{}, probe.Spec{}
	for i, res := range results {
		if !res.OK {
			ok, failed, spec = false, res, r.check.Probes[i].Spec()
			break
		}
	}
	if ok && unitDown && len(results) > 0 {
		// Bounded like the job question below: a manager that does not
		// answer must not hold the probes up.
		// A unit that cannot be read in time is taken at systemd's last
		// word, which said it is down. A unit on its way back up
		// (activating, a start job queued after auto-restart) is not up
		// yet either: what answers now is not proven to be it, and a
		// unit that crash-loops because another process holds its port
		// is in that state half of the time.
		if s := r.unitWithin(jobCheckTimeout); s == nil || (s.Down() && s.Job == 0) || !s.Serving() {
			if s != nil && s.Down() && s.Job == 0 && (remedy.UnitEvent{ActiveState: s.ActiveState, SubState: s.SubState, Result: s.Result}).Died() &&
				!r.m.JobInFlight() && !s.StateChangeTimestamp.Equal(r.lastDeath) {
				// A death whose signal medic missed (it came while
				// medic's own restart ran): acted on once, as the
				// signal would have been; later rounds fail.
				return r.died(s, 0)
			}
			if unitState == "unit down" && s != nil {
				unitState = fmt.Sprintf("unit %s/%s, result %s", s.ActiveState, s.SubState, s.Result)
			}
			ok, spec = false, r.check.Probes[0].Spec()
			failed = results[0]
			failed.OK, failed.Class, failed.Err = false, probe.ClassOther, fmt.Errorf("%s, yet %s answers", unitState, failed.Target)
		} else if s != nil {
			r.unitDown = false
		}
	}
	wasOK := r.lastOK
	r.lastOK = ok
	reason := ""
	if !ok {
		r.lastFailure, r.lastSpec = failed, spec
		reason = describe(failed)
		r.logFailure(now, failed, wasOK)
	}
	if !ok && r.check.Unit != "" && !r.m.JobInFlight() && (r.m.AtThreshold(now) || r.operatorJob) {
		// A failure that would open an incident: is the unit between
		// states because of someone else's job (an operator's start,
		// restart or reload, whose signals may not have arrived yet)?
		// Then the probe says only that, as long as systemd still shows
		// the job. The question is short: a manager that does not answer
		// must not hold the probes up.
		if s := r.unitWithin(jobCheckTimeout); s != nil && s.Between() {
			if !r.operatorJob {
				r.logger().Info(fmt.Sprintf("%s: %s is %s/%s with a job under way; failed probes are not counted until it is settled",
					r.check.Name, r.check.Unit, s.ActiveState, s.SubState), zap.String("target", failed.Target))
			}
			r.operatorJob = true
			r.setStatus(func(st *Status) { st.LastProbe, st.LastOK, st.LastError, st.LastLatency = now, false, reason, latency })
			return policy.Decision{}
		}
		r.operatorJob = false
	}
	d := r.m.Probe(now, ok, reason)
	r.setBudget(now)
	r.setStatus(func(s *Status) {
		s.LastProbe = now
		s.LastOK = ok
		s.LastError = reason
		s.LastLatency = latency
		if ok {
			s.Failures = 0
		} else {
			s.Failures++
		}
	})
	r.send(r.incidents.tick(now, r.m.State()))
	return d
}

// logFailure writes the "probe failed" line of a failed round: the first
// of a run of failures always, then at most one every failLogEvery, with
// the number left out. Serial.
func (r *runner) logFailure(now time.Time, failed probe.Result, first bool) {
	if !first && now.Sub(r.failLogAt) < failLogEvery {
		r.failLogQuiet++
		return
	}
	lvl := r.logger().Debug
	if r.m.State() == policy.Healthy && !r.m.InGrace(now) && !r.operatorJob {
		lvl = r.logger().Info
	}
	fields := []zap.Field{zap.String(logging.EventField, "probe failed"),
		zap.String("target", failed.Target), zap.String("class", string(failed.Class)),
		zap.Duration("duration", failed.Duration), zap.NamedError("cause", failed.Err)}
	if r.failLogQuiet > 0 {
		fields = append(fields, zap.Int("left_out", r.failLogQuiet))
	}
	r.failLogAt, r.failLogQuiet = now, 0
	lvl(fmt.Sprintf("%s: probe failed: %s", r.check.Name, failed.Problem()), fields...)
}

// describe renders a failed result as "127.0.0.1:8080: refused: dial tcp ...".
func describe(res probe.Result) string {
	msg := res.Target + ": " + string(res.Class)
	if res.Err != nil {
		msg += ": " + res.Err.Error()
	}
	return msg
}

// remedy runs the check's remedy action, bounded by the agent's limit on
// concurrent remedies. It returns when the job finished or ctx is done.
func (r *runner) remedy(ctx context.Context) jobResult {
	select {
	case r.agent.remedySlots <- struct{}{}:
		defer func() { <-r.agent.remedySlots }()
	case <-ctx.Done():
		return jobResult{err: context.Cause(ctx)}
	}
	out, err := r.agent.remedier.Remedy(ctx, r.check.Unit, remedy.Action(r.check.Remedy.Action), r.check.Remedy.JobTimeout.Duration)
	return jobResult{outcome: out, err: err}
}

func (r *runner) logOutcome(res jobResult) {
	if res.err != nil {
		lvl := r.logger().Error
		if errors.Is(res.err, context.Canceled) {
			lvl = r.logger().Info
		}
		lvl(fmt.Sprintf("%s: %s of %s not carried out: %v", r.check.Name, r.check.Remedy.Action, r.check.Unit, res.err),
			zap.String(logging.EventField, "remedy not carried out"), zap.String(logging.Field, logging.RestartFailed),
			zap.String("action", r.check.Remedy.Action), zap.Error(res.err))
		r.agent.observer.ObserveRemedy(r.check.Name, r.check.Unit, r.check.Remedy.Action, "error")
		if !errors.Is(res.err, context.Canceled) {
			r.setStatus(func(s *Status) { s.RemedyError = res.err.Error() })
		}
		return
	}
	o := res.outcome
	r.agent.observer.ObserveRemedy(r.check.Name, r.check.Unit, r.check.Remedy.Action, o.JobResult)
	msgID := logging.RestartPerformed
	if o.JobResult != "done" {
		msgID = logging.RestartFailed
	}
	if o.ResetFailed {
		r.logger().Warn(r.check.Name+": systemd refused the restart of "+r.check.Unit+" (start-limit-hit): reset the unit's failed state and retried once; both count against the restart budget",
			zap.Int("attempts", o.Attempts))
	}
	summary := fmt.Sprintf("%s: %s of %s: job %s in %s; unit now %s/%s", r.check.Name, r.check.Remedy.Action, r.check.Unit,
		o.JobResult, o.Duration.Round(time.Millisecond), o.After.ActiveState, o.After.SubState)
	if o.After.MainPID != 0 {
		summary += fmt.Sprintf(", main pid %d", o.After.MainPID)
	}
	if o.Before.MainPID != 0 && o.Before.MainPID != o.After.MainPID {
		summary += fmt.Sprintf(" (was %d)", o.Before.MainPID)
	}
	if o.After.Result != "" && o.After.Result != "success" {
		summary += ", result " + o.After.Result
	}
	r.logger().Info(summary,
		zap.String(logging.EventField, "remedy finished"),
		zap.String(logging.Field, msgID),
		zap.String("action", r.check.Remedy.Action),
		zap.String("job_result", o.JobResult),
		zap.Bool("waited_for_job", o.WaitedForJob),
		zap.Bool("job_result_inferred", o.JobResultInferred),
		zap.Bool("reset_failed", o.ResetFailed),
		zap.Int64("job_ms", o.Duration.Milliseconds()),
		zap.String("active_state", o.After.ActiveState),
		zap.String("sub_state", o.After.SubState),
		zap.String("result", o.After.Result),
		zap.Uint32("main_pid", o.After.MainPID),
		zap.Uint32("n_restarts", o.After.NRestarts),
		zap.Uint32("old_main_pid", o.Before.MainPID),
		zap.String("old_active_state", o.Before.ActiveState),
		zap.String("old_result", o.Before.Result),
		zap.Int32("old_exec_main_code", o.Before.ExecMainCode),
		zap.Int32("old_exec_main_status", o.Before.ExecMainStatus),
	)
	r.setStatus(func(s *Status) { s.Restarts++; s.RemedyError = "" })
}

// apply logs the Decision's transitions, updates the status and raises
// escalation events.
func (r *runner) apply(d policy.Decision, before *unit.State) {
	if len(d.Transitions) == 0 {
		return
	}
	for _, t := range d.Transitions {
		r.logTransition(t)
	}
	// The state first: status readers must never see "healthy" while a
	// restart this decision started is already under way.
	last := d.Transitions[len(d.Transitions)-1]
	st := r.m.State()
	r.setStatus(func(s *Status) { s.State, s.Since, s.Reason = string(st), last.At, last.Reason })
	for _, t := range d.Transitions {
		msgs := r.incidents.transition(t, r.lastFailure)
		if t.From == policy.Healthy && t.To == policy.Failing {
			dg := r.diagnoseWith(before)
			r.logDiagnosis(dg)
			r.incidents.diagnosed(dg)
			r.setStatus(func(s *Status) { s.Diagnosis = dg })
			r.freshDiag = dg // the firing message of this event carries it
		}
		if t.To == policy.Healthy {
			r.setStatus(func(s *Status) {
				s.Diagnosis = nil
				if t.From == policy.Verifying && len(msgs) == 0 && r.incidents.open == nil {
					s.QuietFixes++
				}
			})
		}
		r.send(msgs)
		r.freshDiag = nil
	}
	incident := ""
	if r.incidents.open != nil {
		incident = r.incidents.open.ID
	}
	r.setStatus(func(s *Status) { s.Incident = incident })
}

// logDiagnosis writes the one log line of a diagnosis.
func (r *runner) logDiagnosis(dg *diagnose.Diagnosis) {
	r.logger().Warn(diagnosisLine(r.check.Name, dg), zap.String(logging.EventField, "diagnosis"),
		zap.String("cause", string(dg.Primary.Cause)), zap.String("finding", dg.Primary.Summary),
		zap.String("hint", dg.Primary.Hint), zap.Strings("unavailable", dg.Unavailable))
}

// diagnosisLine renders a diagnosis as one log message: "app: diagnosis:
// backend crashed: app.service failed ...; fix: ...".
func diagnosisLine(check string, dg *diagnose.Diagnosis) string {
	line := fmt.Sprintf("%s: diagnosis: %s", check, dg.Primary.Cause)
	if dg.Primary.Summary != "" {
		line += ": " + dg.Primary.Summary
	}
	if dg.Primary.Hint != "" {
		line += "; fix: " + dg.Primary.Hint
	}
	return line
}

// logTransition writes the one log line of a state change.
func (r *runner) logTransition(t policy.Transition) {
	fields := []zap.Field{}
	if t.To == policy.GaveUp {
		fields = append(fields, zap.String(logging.Field, logging.GaveUp))
	}
	line := fmt.Sprintf("%s: %s → %s: %s", r.check.Name, t.From, t.To, t.Reason)
	r.logger().Info(line, append(fields,
		zap.String(logging.EventField, "state change"),
		zap.String("from", string(t.From)),
		zap.String("to", string(t.To)),
		zap.String("reason", t.Reason),
		zap.Int("attempt", t.Attempt),
		zap.Int64("elapsed_ms", t.Elapsed.Milliseconds()),
	)...)
}

// send completes each message with the unit's current state and journal,
// logs it, and hands it to the outbox for every notifier the check routes to.
func (r *runner) send(msgs []*notify.Message) {
	for _, m := range msgs {
		r.complete(m)
		id := logging.IncidentFiring
		if m.Kind == notify.Resolved || m.Kind == notify.Recovered {
			id = logging.IncidentResolved
		}
		r.logger().Warn(fmt.Sprintf("%s: incident %s: %s", r.check.Name, m.Kind, m.Subject()), zap.String(logging.EventField, "incident "+string(m.Kind)),
			zap.String(logging.Field, id), zap.String("incident", m.Incident.ID), zap.String("incident_event", string(m.Event)),
			zap.String(notify.IDField, m.ID), zap.String("subject", m.Subject()), zap.Strings("notify", r.check.Escalate.Notify))
		r.agent.enqueue(r.check, m)
	}
}

// stateTimeout bounds reading a unit's state, its journal and gathering
// the rest of the evidence for one diagnosis.
const stateTimeout = 3 * time.Second

// unitState reads the check's unit; nil when there is none or it cannot be
// read (logged).
func (r *runner) unitState(ctx context.Context) *unit.State {
	if r.check.Unit == "" {
		return nil
	}
	s, err := r.agent.remedier.State(ctx, r.check.Unit)
	if err != nil {
		r.logger().Warn(fmt.Sprintf("%s: cannot read the state of %s: %v", r.check.Name, r.check.Unit, err), zap.Error(err))
		return nil
	}
	return &s
}

// journal reads the unit's last journal lines when journal reading is on.
func (r *runner) journal(ctx context.Context) []string {
	if r.agent.journal == nil || r.agent.config().Agent.JournalLines <= 0 || r.check.Unit == "" {
		return nil
	}
	lines, err := r.agent.journal(ctx, r.check.Unit, r.agent.config().Agent.JournalLines)
	if err != nil {
		r.logger().Debug("cannot read the unit's journal", zap.Error(err))
	}
	return lines
}

// diagnose gathers the evidence for the latest failed probe now.
func (r *runner) diagnose() *diagnose.Diagnosis { return r.diagnoseWith(nil) }

// diagnoseWith is diagnose with the unit's state read earlier (nil: read
// it now).
func (r *runner) diagnoseWith(unit *unit.State) *diagnose.Diagnosis {
	ctx, cancel := context.WithTimeout(r.runContext(), stateTimeout)
	defer cancel()
	// A bounded number of diagnoses run at once: when a shared dependency
	// fails, thousands of checks fail together, and gathering evidence for
	// all of them at once would starve the probes.
	select {
	case r.agent.diagSlots <- struct{}{}:
		defer func() { <-r.agent.diagSlots }()
	case <-ctx.Done():
		return &diagnose.Diagnosis{At: time.Now(), Target: r.lastFailure.Target, Problem: r.lastFailure.Problem(),
			Unavailable: []string{"diagnosis skipped: too many checks failed at once"}}
	}
	if unit == nil {
		unit = r.settledUnit(ctx)
	}
	in := diagnose.Input{Spec: r.lastSpec, Result: r.lastFailure, ClientUser: r.check.ClientUser, Journal: r.journal(ctx)}
	if unit != nil {
		in.Unit = unit
	}
	if r.refused != nil {
		in.Refused = r.refused.Error()
		in.RefusedHint = remedy.PolkitRuleHint(r.agent.config().File)
	}
	dg := diagnose.Diagnose(ctx, in)
	return &dg
}

// settledUnit reads the unit's state once it is no longer between states
// (activating, deactivating, reloading, or a job under way): evidence taken
// mid-restart describes neither the old process nor the new one. It waits
// at most settleTimeout, then takes the state as it is.
func (r *runner) settledUnit(ctx context.Context) *unit.State {
	deadline := time.Now().Add(settleTimeout)
	for {
		s := r.unitState(ctx)
		if s == nil || !s.Between() || time.Now().After(deadline) {
			return s
		}
		select {
		case <-ctx.Done():
			return s
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// settleTimeout bounds how long a diagnosis waits for the unit to settle.
const settleTimeout = 1500 * time.Millisecond

// jobCheckTimeout bounds the question whether a failed probe met the unit
// between states.
const jobCheckTimeout = 250 * time.Millisecond

// unitWithin reads the unit's state, bounded by d; nil when it cannot.
func (r *runner) unitWithin(d time.Duration) *unit.State {
	ctx, cancel := context.WithTimeout(r.runContext(), d)
	defer cancel()
	return r.unitState(ctx)
}

// runContext is the runner's context, under which evidence is gathered: a
// runner that stops stops gathering. Before start, the background.
func (r *runner) runContext() context.Context {
	r.box.Lock()
	defer r.box.Unlock()
	if r.ctx == nil {
		return context.Background()
	}
	return r.ctx
}

// unitNow reads the unit's state, bounded by stateTimeout.
func (r *runner) unitNow() *unit.State { return r.unitWithin(stateTimeout) }

// opensIncident reports whether d holds the healthy → failing transition.
func opensIncident(d policy.Decision) bool {
	for _, t := range d.Transitions {
		if t.From == policy.Healthy && t.To == policy.Failing {
			return true
		}
	}
	return false
}

// complete fills in the unit's current state, its last journal lines and,
// for firing messages and reminders, a fresh diagnosis. Evidence that cannot
// be read is logged and left out: a message never waits long for it.
func (r *runner) complete(m *notify.Message) {
	if m.Kind == notify.Test {
		return
	}
	if p := r.snapshot().Paused; p != nil {
		m.Incident.Paused = "remediation paused until " + p.Until.UTC().Format(time.RFC3339)
		if p.Reason != "" {
			m.Incident.Paused += ": " + p.Reason
		}
	}
	ctx, cancel := context.WithTimeout(r.runContext(), stateTimeout)
	defer cancel()
	if s := r.unitState(ctx); s != nil {
		m.Incident.UnitState = notify.UnitState{
			ActiveState: s.ActiveState, SubState: s.SubState, Result: s.Result,
			ExecMainCode: s.ExecMainCode, ExecMainStatus: s.ExecMainStatus,
			NRestarts: s.NRestarts, MainPID: s.MainPID, Since: s.StateChangeTimestamp,
		}
	}
	m.Incident.Journal = r.journal(ctx)
	if m.Kind == notify.Firing || m.Kind == notify.Reminder {
		// The evidence is gathered once per event: a message raised by
		// the transition that just diagnosed the failure carries that
		// diagnosis.
		dg := r.freshDiag
		if dg == nil {
			dg = r.diagnose()
			if prev := r.snapshot().Diagnosis; prev == nil || prev.Primary.Cause != dg.Primary.Cause {
				r.logDiagnosis(dg)
			}
		}
		r.incidents.diagnosed(dg)
		m.Incident.Diagnosis, m.Incident.Cause = dg, string(dg.Primary.Cause)
		r.setStatus(func(s *Status) { s.Diagnosis = dg })
	}
}

// setBudget shows the restart budget in use at now in the status.
func (r *runner) setBudget(now time.Time) {
	used := r.m.RestartsInWindow(now)
	r.setStatus(func(s *Status) {
		s.RestartsInWindow = used
		s.BudgetLeft = max(0, r.check.Remedy.MaxRestarts-used)
	})
}

func (r *runner) setStatus(f func(*Status)) {
	r.mu.Lock()
	f(&r.status)
	r.mu.Unlock()
}

func (r *runner) snapshot() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}
