package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"text/tabwriter"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/safefile"
	"github.com/medic-watchdog/medic/journal"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
)

// Bounds of `medic run --once`.
const (
	// onceProbeSlots is how many checks are probed at once.
	onceProbeSlots = 16
	// onceDiagSlots is how many diagnoses run at once (each lists the
	// host's sockets and reads a unit's state and journal).
	onceDiagSlots = 4
	// onceRemedySlots is how many remedies run at once.
	onceRemedySlots = 4
	// onceStateTimeout bounds reading a unit's state and journal for a
	// diagnosis; onceDiagTimeout the whole diagnosis.
	onceStateTimeout = 3 * time.Second
	onceDiagTimeout  = 10 * time.Second
	// onceVerifyEvery is the longest wait between two probes while a
	// remedied check is verified.
	onceVerifyEvery = 250 * time.Millisecond
)

// The pauses of `medic pause`, as the agent keeps them: a JSON object of
// check name to agent.Pause in state_dir/paused.json (agent/pause.go).
const (
	pausesFile    = "paused.json"
	maxPausesFile = 16 << 20
)

// onceCheck is what `medic run --once` found for one check.
type onceCheck struct {
	Check string `json:"check"`
	Unit  string `json:"unit,omitempty"`
	// OK is the outcome of the first probe round.
	OK bool `json:"ok"`
	// Latency is how long the round took (its slowest probe).
	Latency time.Duration `json:"latency_ns"`
	// Target and Problem describe the first probe that failed.
	Target  string `json:"target,omitempty"`
	Problem string `json:"problem,omitempty"`
	// Diagnosis is the failing check's diagnosis.
	Diagnosis *diagnose.Diagnosis `json:"diagnosis,omitempty"`
	// Remedy is what --remedy did; nil without --remedy or for a check
	// that passed.
	Remedy *onceRemedy `json:"remedy,omitempty"`

	check  config.Check
	probes []probe.Prober
	failed probe.Result
	spec   probe.Spec
}

// onceRemedy is the outcome of one remedy of `medic run --once --remedy`.
type onceRemedy struct {
	// Action is the check's remedy action ("restart", "start"), or "none".
	Action string `json:"action"`
	// Skipped says why no remedy was tried (no unit, action none, the
	// check paused).
	Skipped string `json:"skipped,omitempty"`
	// PausedUntil is when the pause of the check (medic pause) ends, when
	// it held the remedy back.
	PausedUntil time.Time `json:"paused_until,omitzero"`
	// JobResult is the systemd job's result ("done", "failed", ...).
	JobResult string `json:"job_result,omitempty"`
	// Error is why the remedy could not be carried out.
	Error string `json:"error,omitempty"`
	// Healed reports whether the probes passed (successes times in a
	// row) within verify_timeout after the job was done; After is how
	// long after the job that was.
	Healed bool          `json:"healed"`
	After  time.Duration `json:"after_ns,omitempty"`
	// Problem is the last failure when not healed.
	Problem string `json:"problem,omitempty"`

	verifyTimeout time.Duration
}

// onceReport is the document `medic run --once --json` prints.
type onceReport struct {
	// OK is true when every check passes: after the remedies with --remedy.
	OK     bool         `json:"ok"`
	Checks []*onceCheck `json:"checks"`
}

// runOnce loads nothing itself: cfg has been loaded and validated. It
// builds every check's probes, probes each check once and prints the
// outcome (JSON with asJSON); with remediate, failing checks are remedied
// and verified. It returns exitCode(2) when a probe cannot be built from
// the configuration, exitCode(1) when a check fails (after the remedies),
// nil when all pass.
func runOnce(ctx context.Context, out, errOut io.Writer, file string, cfg *config.Config, remediate, asJSON bool) error {
	checks := make([]*onceCheck, len(cfg.Checks))
	var errs []error
	for i, c := range cfg.Checks {
		oc := &onceCheck{Check: c.Name, Unit: c.Unit, check: c}
		for j := range c.Probes {
			p, err := probe.New(c.ProbeSpec(j))
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: check[%d].probe[%d]: %w", file, i, j, err))
				continue
			}
			oc.probes = append(oc.probes, p)
		}
		checks[i] = oc
	}
	if len(errs) > 0 {
		fmt.Fprintln(errOut, errors.Join(errs...))
		return exitCode(2)
	}
	if len(checks) == 0 {
		fmt.Fprintf(errOut, "medic: run --once: %s has no [[check]]: nothing to probe\n", file)
	}

	// One bus connection for every unit read and remedy, dialed on first
	// use: a configuration whose failing checks name no unit never dials.
	rem := remedy.New(ctx, remedy.Dial(cfg.Agent.Bus), agent.RemediableUnits(cfg), zap.NewNop())
	defer rem.Close()
	jr := journal.Reader{User: cfg.Agent.Bus == "user"}

	probeSlots := make(chan struct{}, onceProbeSlots)
	diagSlots := make(chan struct{}, onceDiagSlots)
	var wg sync.WaitGroup
	for _, oc := range checks {
		wg.Go(func() {
			probeSlots <- struct{}{}
			ok, failed, spec, latency := probeRound(ctx, oc)
			<-probeSlots
			oc.OK, oc.Latency = ok, latency
			if ok {
				return
			}
			oc.failed, oc.spec = failed, spec
			oc.Target, oc.Problem = failed.Target, failed.Problem()
			diagSlots <- struct{}{}
			oc.Diagnosis = diagnoseOnce(ctx, rem, jr, cfg.Agent.Bus, oc)
			<-diagSlots
		})
	}
	wg.Wait()

	if remediate {
		pauses, err := readPauses(cfg.Agent.StateDir, time.Now())
		if err != nil {
			// As the agent does with a pauses file it cannot read.
			fmt.Fprintf(errOut, "medic: run --once --remedy: cannot read the pauses, none are in force: %v\n", err)
		}
		remedySlots := make(chan struct{}, onceRemedySlots)
		for _, oc := range checks {
			if oc.OK {
				continue
			}
			var pause *agent.Pause
			if p, ok := pauses[oc.Check]; ok {
				pause = &p
			}
			wg.Go(func() {
				remedySlots <- struct{}{}
				defer func() { <-remedySlots }()
				oc.Remedy = remedyOnce(ctx, rem, oc, pause)
			})
		}
		wg.Wait()
	}

	report := onceReport{OK: true, Checks: checks}
	for _, oc := range checks {
		if !oc.OK && (oc.Remedy == nil || !oc.Remedy.Healed) {
			report.OK = false
		}
	}
	if asJSON {
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(report); err != nil {
			return err
		}
	} else {
		printOnce(out, &report, remediate)
	}
	if !report.OK {
		return exitCode(1)
	}
	return nil
}

// probeRound runs every probe of oc's check at once, each bounded by the
// check's timeout, as a runner's probe round does. It returns whether all
// passed, the first failure in configuration order with its spec, and the
// round's latency (its slowest probe).
func probeRound(ctx context.Context, oc *onceCheck) (bool, probe.Result, probe.Spec, time.Duration) {
	results := make([]probe.Result, len(oc.probes))
	var wg sync.WaitGroup
	for i, p := range oc.probes {
		wg.Go(func() {
			defer func() {
				if v := recover(); v != nil {
					results[i] = probe.Result{Class: probe.ClassOther, Err: fmt.Errorf("probe panicked: %v", v)}
				}
			}()
			results[i] = p.Probe(ctx, oc.check.Timeout.Duration)
		})
	}
	wg.Wait()
	var latency time.Duration
	for _, res := range results {
		latency = max(latency, res.Duration)
	}
	for i, res := range results {
		if !res.OK {
			return false, res, oc.check.ProbeSpec(i), latency
		}
	}
	return true, probe.Result{}, probe.Spec{}, latency
}

// diagnoseOnce diagnoses oc's failed probe, with its unit's state and
// journal when the check names a unit. A bus that cannot be reached is
// evidence that is unavailable, not a failure of the command.
func diagnoseOnce(ctx context.Context, rem *remedy.Remediator, jr journal.Reader, bus string, oc *onceCheck) *diagnose.Diagnosis {
	ctx, cancel := context.WithTimeout(ctx, onceDiagTimeout)
	defer cancel()
	in := diagnose.Input{Spec: oc.spec, Result: oc.failed, ClientUser: oc.check.ClientUser}
	if unit := oc.check.Unit; unit != "" {
		sctx, scancel := context.WithTimeout(ctx, onceStateTimeout)
		s, err := rem.State(sctx, unit)
		if err != nil {
			in.UnitName, in.UnitErr = unit, fmt.Errorf("read its state over the %s bus: %w", bus, err)
		} else {
			in.Unit = &s
			// Unreadable, the journal is only missing evidence.
			in.Journal, _ = jr.Tail(sctx, unit, diagnoseJournalLines)
		}
		scancel()
	}
	dg := diagnose.Diagnose(ctx, in)
	return &dg
}

// readPauses reads the pauses in force at now from stateDir's pauses file,
// without changing it: a file that cannot be read or parsed is the
// agent's to move aside. No file is no pause.
func readPauses(stateDir string, now time.Time) (map[string]agent.Pause, error) {
	path := filepath.Join(stateDir, pausesFile)
	b, err := safefile.ReadFile(path, maxPausesFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var all map[string]agent.Pause
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	for c, p := range all {
		if !now.Before(p.Until) {
			delete(all, c)
		}
	}
	return all, nil
}

// remedyOnce carries out the check's remedy action (restart or start) on
// its unit, as the agent does, then probes until the probes pass
// successes times in a row or verify_timeout has passed since the job was
// done. A check paused with medic pause (pause not nil) is not remedied.
func remedyOnce(ctx context.Context, rem *remedy.Remediator, oc *onceCheck, pause *agent.Pause) *onceRemedy {
	c := oc.check
	r := &onceRemedy{Action: c.Remedy.Action, Problem: oc.Problem, verifyTimeout: c.Remedy.VerifyTimeout.Duration}
	switch {
	case c.Unit == "":
		r.Skipped = "the check names no unit"
		return r
	case c.Remedy.Action == "none":
		r.Skipped = "remedy action is none"
		return r
	case pause != nil:
		r.PausedUntil = pause.Until
		r.Skipped = "remediation paused until " + pause.Until.Local().Format(time.RFC3339)
		if pause.Reason != "" {
			r.Skipped += " (" + pause.Reason + ")"
		}
		r.Skipped += "; medic resume " + c.Name + " ends the pause"
		return r
	}
	o, err := rem.Remedy(ctx, c.Unit, remedy.Action(c.Remedy.Action), c.Remedy.JobTimeout.Duration)
	r.JobResult = o.JobResult
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if o.JobResult != remedy.JobDone {
		// A job that was not done leaves nothing to verify; one probe
		// says whether the check answers anyway.
		if ok, failed, _, _ := probeRound(ctx, oc); ok {
			r.Healed, r.Problem = true, ""
		} else {
			r.Problem = failed.Problem()
		}
		return r
	}
	start := time.Now()
	deadline := start.Add(c.Remedy.VerifyTimeout.Duration)
	// Probed more often than the agent would: someone waits for the
	// answer.
	every := min(c.RetryInterval.Duration, onceVerifyEvery)
	if every <= 0 {
		every = onceVerifyEvery
	}
	for streak := 0; ; {
		ok, failed, _, _ := probeRound(ctx, oc)
		if ok {
			if streak++; streak >= max(1, c.Successes) {
				r.Healed, r.After, r.Problem = true, time.Since(start), ""
				return r
			}
		} else {
			streak, r.Problem = 0, failed.Problem()
		}
		left := time.Until(deadline)
		if left <= 0 || ctx.Err() != nil {
			return r
		}
		select {
		case <-ctx.Done():
			return r
		case <-time.After(min(every, left)):
		}
	}
}

// printOnce prints the report for people: one line per check, then the
// diagnosis of each failing one, then what the remedies did, then a
// summary. Every string from the probes is escaped (esc).
func printOnce(out io.Writer, r *onceReport, remediate bool) {
	if len(r.Checks) == 0 {
		return // runOnce said on stderr that there is nothing to probe
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tUNIT\tRESULT\tDETAIL")
	failing, healed := 0, 0
	for _, c := range r.Checks {
		result, detail := "OK", c.Latency.Round(100*time.Microsecond).String()
		if !c.OK {
			failing++
			result, detail = "FAIL", c.Problem
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", esc(c.Check), esc(orDash(c.Unit)), result, esc(detail))
	}
	w.Flush()
	for _, c := range r.Checks {
		if c.Diagnosis == nil {
			continue
		}
		fmt.Fprintf(out, "\n%s: %s\n", esc(c.Check), esc(c.Problem))
		printDiagnosis(out, c.Diagnosis)
	}
	if remediate && failing > 0 {
		fmt.Fprintln(out)
		for _, c := range r.Checks {
			if c.Remedy == nil {
				continue
			}
			fmt.Fprintf(out, "%s: %s\n", esc(c.Check), esc(c.Remedy.describe(c.Unit)))
			if c.Remedy.Healed {
				healed++
			}
		}
	}
	fmt.Fprintln(out)
	switch {
	case failing == 0:
		fmt.Fprintf(out, "%d of %d checks pass\n", len(r.Checks), len(r.Checks))
	case remediate:
		fmt.Fprintf(out, "%d of %d checks failed; %d healed, %d still failing\n", failing, len(r.Checks), healed, failing-healed)
	default:
		fmt.Fprintf(out, "%d of %d checks failed (medic run --once --remedy restarts their units)\n", failing, len(r.Checks))
	}
}

// describe says in one line what the remedy did and how it ended.
func (r *onceRemedy) describe(unit string) string {
	switch {
	case r.Skipped != "":
		return "not remedied: " + r.Skipped
	case r.Error != "":
		return "not healed: " + r.Error
	case r.JobResult != remedy.JobDone && r.Healed:
		return fmt.Sprintf("%s %s: job %s; the check passes anyway", r.Action, unit, r.JobResult)
	case r.JobResult != remedy.JobDone:
		return fmt.Sprintf("%s %s: job %s; not healed: %s", r.Action, unit, r.JobResult, r.Problem)
	case r.Healed:
		return fmt.Sprintf("%s %s: job done; healed, the probes pass %s after the job", r.Action, unit, r.After.Round(time.Millisecond))
	default:
		return fmt.Sprintf("%s %s: job done; not healed: %s, verify_timeout %s passed", r.Action, unit, r.Problem, r.verifyTimeout)
	}
}
