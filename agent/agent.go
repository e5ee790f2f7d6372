// Package agent runs medic: it turns the configuration into one runner per
// check, drives each check's policy state machine, carries out remedies
// through package remedy and hands escalation events to the notifiers.
//
// The engine: one Scheduler (package sched: a timer heap, one goroutine,
// one timer) wakes at most every few milliseconds and hands the probe
// rounds then due to a fixed Pool of workers ([agent] workers); each
// round's results go back to its check's runner, which only decides: it
// feeds the check's policy Machine (package policy) and acts on the
// decision. A runner has no goroutine and no timer of its own; its events
// are handled one at a time, and remedies, incident messages and the
// evidence of a diagnosis run on goroutines started when needed (the
// responders).
//
//	scheduler ─► workers (probes) ─► runner ─► policy ─► runner acts
//	                                   ▲                   ├─► responder: remedy (systemd over D-Bus)
//	unit events, nginx lines, ─────────┘                   └─► responder: diagnosis, incident ─► outbox ─► notifiers
//	triggers, pause/resume, wake-ups
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/agent/policy"
	"github.com/medic-watchdog/medic/agent/sched"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/logging"
	"github.com/medic-watchdog/medic/metrics"
	"github.com/medic-watchdog/medic/nginx"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// Remedier carries out remedies on units; *remedy.Remediator is the
// implementation, which enforces that only configured units are touched.
type Remedier interface {
	Remedy(ctx context.Context, unit string, action remedy.Action, jobTimeout time.Duration) (remedy.Outcome, error)
	State(ctx context.Context, unit string) (unit.State, error)
}

// Outbox takes messages for delivery; *outbox.Outbox writes each to disk
// before Enqueue returns and delivers it in the background.
type Outbox interface {
	Enqueue(notifier string, m *notify.Message) error
}

// JournalReader returns the last n journal lines of a unit, oldest first.
type JournalReader func(ctx context.Context, unit string, n int) ([]string, error)

// Status is a snapshot of one check, for `medic status` and logs.
type Status struct {
	Check string `json:"check"`
	Unit  string `json:"unit,omitempty"`
	// State is the policy state, e.g. "healthy" or "gave_up".
	State string `json:"state"`
	// Since is when the check entered State; zero if it never changed.
	Since time.Time `json:"since,omitzero"`
	// Reason is why the check entered State.
	Reason string `json:"reason,omitempty"`
	// LastProbe is when the last probe round ended; LastOK its outcome and
	// LastError the failure it met.
	LastProbe time.Time `json:"last_probe,omitzero"`
	LastOK    bool      `json:"last_ok"`
	LastError string    `json:"last_error,omitempty"`
	// Restarts counts the remedies medic carried out since it started;
	// QuietFixes the incidents a restart fixed without escalation.
	Restarts   int `json:"restarts"`
	QuietFixes int `json:"quiet_fixes"`
	// Incident is the open incident's id, "" when none is open.
	Incident string `json:"incident,omitempty"`
	// Diagnosis is the latest diagnosis of the open incident.
	Diagnosis *diagnose.Diagnosis `json:"diagnosis,omitempty"`
	// Failures counts consecutive failed probe rounds; RestartsInWindow
	// the restarts of the budget in use and BudgetLeft what remains.
	Failures         int `json:"consecutive_failures"`
	RestartsInWindow int `json:"restarts_in_window"`
	BudgetLeft       int `json:"budget_left"`
	// LastLatency is how long the last probe round took.
	LastLatency time.Duration `json:"last_latency_ns"`
	// Paused is set while remediation is paused.
	Paused *Pause `json:"paused,omitempty"`
	// RemedyError is why the last remedy could not be carried out (bus
	// down, manager not answering); "" after one succeeds.
	RemedyError string `json:"remedy_error,omitempty"`
	// StateNote reports a saved state that could not be used, e.g. a
	// corrupt state file that was moved aside.
	StateNote string `json:"state_note,omitempty"`
}

// Agent runs every configured check until its context ends.
type Agent struct {
	cfg      atomic.Pointer[config.Config]
	log      *zap.Logger
	remedier Remedier
	outbox   Outbox
	journal  JournalReader
	host     string
	version  string
	now      func() time.Time

	remedySlots chan struct{} // bounds concurrent remedies
	diagSlots   chan struct{} // bounds concurrent diagnoses
	observer    Observer
	pauses      *pauseStore
	history     *history.Store // incidents kept after they end

	watchDial remedy.SignalDialFunc // nil: no unit events

	watchdogEvery time.Duration // 0: no watchdog
	ping          func()
	statusLine    func(string)

	// prepareNotifiers makes a reload's notifiers ready; nil: a reload
	// that changes [[notifier]] is refused.
	prepareNotifiers NotifierReloader

	mu      sync.Mutex // guards runners, upstreams and reloadErr
	runners []*runner
	// upstreams maps each upstream address some check probes (as
	// nginx.NormalizeAddr gives it) to the runners of those checks.
	upstreams map[string][]*runner
	// reloadErr is the error of the last failed reload, until one succeeds.
	reloadErr error
	reloads   chan reloadRequest
	runCtx    context.Context

	// sched holds every runner's next probe round and wake-up; pool runs
	// the probe rounds (see package sched). pool is made by Run.
	sched *sched.Scheduler
	pool  *sched.Pool
	// starts are the rounds of checks with a probe.Starter that the
	// Scheduler's current batch made due; startBatch starts them. Owned
	// by the Scheduler's goroutine.
	starts []pendingStart
}

// maxConcurrentDiagnoses bounds the diagnoses gathering evidence at once.
const maxConcurrentDiagnoses = 2

// Observer receives events for metrics; *metrics.Metrics implements it.
type Observer interface {
	// ForCheck returns the handles that record check's probes (probes are
	// their names, "INDEX-TYPE", e.g. "0-tcp"), made once per runner so
	// that a probe costs no label lookup; nil records nothing.
	ForCheck(check string, probes []string) *metrics.CheckObserver
	// ObserveRemedy records one remedy with its job result, or "error".
	ObserveRemedy(check, unit, action, result string)
	// ObserveReload records a configuration reload.
	ObserveReload(ok bool, at time.Time)
	// ForgetCheck drops the series of a check removed by a reload.
	ForgetCheck(check string)
	// ObserveUpstreamError counts an upstream error line of nginx's error
	// log by upstream and errno: upstream is the address when a check
	// probes it, "other" for every other upstream and upstream group.
	ObserveUpstreamError(upstream string, errno int)
	// ObserveLateness records how late a scheduled probe round started
	// relative to its schedule (0 or more).
	ObserveLateness(d time.Duration)
	// ObserveIncident records an incident that ended: outcome "resolved"
	// with its time to recovery, or "gave_up" (ttr 0).
	ObserveIncident(check, outcome string, ttr time.Duration)
}

type nopObserver struct{}

func (nopObserver) ForCheck(string, []string) *metrics.CheckObserver { return nil }
func (nopObserver) ObserveRemedy(string, string, string, string)     {}
func (nopObserver) ObserveReload(bool, time.Time)                    {}
func (nopObserver) ForgetCheck(string)                               {}
func (nopObserver) ObserveUpstreamError(string, int)                 {}
func (nopObserver) ObserveLateness(time.Duration)                    {}
func (nopObserver) ObserveIncident(string, string, time.Duration)    {}

// WithObserver sends probe, remedy and reload events to o.
func WithObserver(o Observer) Option { return func(a *Agent) { a.observer = o } }

// WithWatchdog makes Run call ping every interval (half of systemd's
// WatchdogSec), but only while every runner's loop keeps coming round: a
// stuck scheduler stops the pings and systemd restarts medic.
func WithWatchdog(interval time.Duration, ping func()) Option {
	return func(a *Agent) { a.watchdogEvery, a.ping = interval, ping }
}

// WithUnitWatch makes Run watch the configured units over D-Bus signals
// (remedy.Watcher) on connections from dial: a unit that dies or stops makes
// its check probe at once instead of at the next interval.
func WithUnitWatch(dial remedy.SignalDialFunc) Option { return func(a *Agent) { a.watchDial = dial } }

// WithStatusLine makes Run report a one-line summary ("12 checks, 1
// failing, 0 gave up") to f whenever it changes, e.g. as sd_notify STATUS=.
func WithStatusLine(f func(string)) Option { return func(a *Agent) { a.statusLine = f } }

// NotifierReloader makes the notifiers of cfg, a configuration being
// reloaded, ready to replace those in force, without changing anything: it
// builds them (reading their secrets) and prepares the outbox for them. It
// returns apply, which puts them in force and cannot fail, or the error
// that refuses the reload. The agent calls apply only when the whole
// reload goes through, after the runners of changed checks stopped and
// before new ones start.
type NotifierReloader func(cfg *config.Config) (apply func(), err error)

// WithNotifierReload makes Reload apply changes of the [[notifier]] tables
// (added, removed, renamed, changed) through prepare. Without it, a reload
// that changes them is refused, and the running configuration stays.
func WithNotifierReload(prepare NotifierReloader) Option {
	return func(a *Agent) { a.prepareNotifiers = prepare }
}

// config returns the configuration in force.
func (a *Agent) config() *config.Config { return a.cfg.Load() }

// Option changes how New builds an Agent.
type Option func(*Agent)

// WithClock replaces the default monotonic Clock (see Clock), for tests:
// pass a Clock's Now or any func() time.Time.
func WithClock(now func() time.Time) Option { return func(a *Agent) { a.now = now } }

// WithVersion sets medic's version, shown in every message.
func WithVersion(v string) Option { return func(a *Agent) { a.version = v } }

// WithJournal makes messages carry the unit's last journal lines
// ([agent] journal_lines of them) read by read.
func WithJournal(read JournalReader) Option { return func(a *Agent) { a.journal = read } }

// New builds an Agent for cfg, which must have passed Validate. Messages of
// incidents go to ob, addressed by notifier name. It fails when a probe
// cannot be built (for example an unreadable ca_file).
func New(cfg *config.Config, log *zap.Logger, rem Remedier, ob Outbox, opts ...Option) (*Agent, error) {
	host, _ := os.Hostname()
	a := &Agent{
		log:         log,
		remedier:    rem,
		outbox:      ob,
		host:        host,
		now:         monotonicClock(),
		remedySlots: make(chan struct{}, max(1, cfg.Agent.MaxConcurrentRemedies)),
		diagSlots:   make(chan struct{}, maxConcurrentDiagnoses),
		observer:    nopObserver{},
		reloads:     make(chan reloadRequest),
		sched:       sched.New(sched.DefaultCoalesce),
	}
	a.cfg.Store(cfg)
	for _, o := range opts {
		o(a)
	}
	a.pauses = openPauses(filepath.Join(cfg.Agent.StateDir, "paused.json"), log)
	a.history = openHistory(cfg.Agent.StateDir, log)
	runners, err := a.buildRunners(cfg.Checks, nil)
	if err != nil {
		return nil, fmt.Errorf("build agent: %w", err)
	}
	a.runners = runners
	a.upstreams = indexUpstreams(runners)
	a.sched.SetCoalesce(coalesceFor(cfg.Checks))
	return a, nil
}

// pendingStart is a round of a check whose probe is a probe.Starter,
// counted in its runner's active and in flight, not yet started.
type pendingStart struct {
	r  *runner
	rd round
}

// startChunk is how many rounds of Starter probes one task starts: a
// batch up to this size starts on the Scheduler's goroutine, a larger one
// in chunks of this size on the Pool's workers, so that the connects of
// thousands of checks due together use every CPU. A chunk takes a
// millisecond or two, well under the Pool's stall time.
const startChunk = 32

// startBatch starts the rounds the Scheduler's last batch collected (see
// runner.scheduled). It runs on the Scheduler's goroutine.
func (a *Agent) startBatch() {
	batch := a.starts
	if len(batch) == 0 {
		return
	}
	if len(batch) <= startChunk {
		for i, ps := range batch {
			ps.r.startRound(ps.rd)
			batch[i] = pendingStart{}
		}
		a.starts = batch[:0]
		return
	}
	a.starts = nil // the chunks own the array now
	for len(batch) > 0 {
		chunk := batch[:min(startChunk, len(batch))]
		batch = batch[len(chunk):]
		if !a.pool.Submit(func() {
			for _, ps := range chunk {
				ps.r.startRound(ps.rd)
			}
		}) {
			for _, ps := range chunk { // the agent is stopping
				ps.r.inFlight.Store(false)
				ps.r.active.Done()
			}
		}
	}
}

// releaseMemory returns to the kernel the heap that loading a
// configuration used and no longer uses (the parse of a file with 10,000
// checks leaves tens of megabytes that the runtime would otherwise keep
// for minutes): one garbage collection, after start-up and each reload.
func releaseMemory() { debug.FreeOSMemory() }

// coalesceFor is the Scheduler's coalescing window for checks: 1 % of the
// shortest interval, within sched's bounds (sched.CoalesceFor).
func coalesceFor(checks []config.Check) time.Duration {
	shortest := time.Duration(0)
	for _, c := range checks {
		if iv := c.Interval.Duration; iv > 0 && (shortest == 0 || iv < shortest) {
			shortest = iv
		}
	}
	if shortest == 0 {
		return sched.DefaultCoalesce
	}
	return sched.CoalesceFor(shortest)
}

// buildRunners makes a runner for each check, reusing the runner of keep
// whose check is unchanged. It fails when a probe cannot be built.
func (a *Agent) buildRunners(checks []config.Check, keep map[string]*runner) ([]*runner, error) {
	var errs []error
	out := make([]*runner, 0, len(checks))
	for i, c := range checks {
		if old, ok := keep[c.Name]; ok && reflect.DeepEqual(old.check, c) {
			out = append(out, old)
			continue
		}
		probes := make([]probe.Prober, 0, len(c.Probes))
		for j := range c.Probes {
			p, err := probe.New(c.ProbeSpec(j))
			if err != nil {
				errs = append(errs, fmt.Errorf("check[%d].probe[%d]: %w", i, j, err))
				continue
			}
			probes = append(probes, p)
		}
		r := newRunner(a, c, probes)
		if p, ok := a.pauses.get(c.Name, a.now()); ok {
			r.m.Pause(a.now(), p.Until)
			r.setStatus(func(s *Status) { s.Paused = &p })
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// Run starts the scheduler, the pool of probe workers and every check's
// runner, and blocks until ctx is done. It then waits for in-flight probes
// and remedies to end (they see ctx cancelled), so no goroutine outlives
// Run. While it runs, Reload swaps the configuration, and the watchdog
// (WithWatchdog) is pinged.
func (a *Agent) Run(ctx context.Context) error {
	cfg := a.config()
	workers := cfg.Agent.Workers
	if workers <= 0 {
		workers = sched.AutoWorkers()
	}
	a.log.Info("medic started", zap.Int("checks", len(a.runners)), zap.String("bus", cfg.Agent.Bus), zap.Int("workers", workers))
	a.pool = sched.NewPool(workers, sched.DefaultStall, 0)
	a.sched.AfterBatch(a.startBatch)
	schedCtx, stopSched := context.WithCancel(context.Background())
	schedDone := make(chan struct{})
	go func() { defer close(schedDone); a.sched.Run(schedCtx) }()
	a.mu.Lock()
	a.runCtx = ctx
	for _, r := range a.runners {
		a.start(r)
	}
	a.mu.Unlock()
	releaseMemory()

	var watchdog <-chan time.Time
	if a.watchdogEvery > 0 && a.ping != nil {
		t := time.NewTicker(a.watchdogEvery)
		defer t.Stop()
		watchdog = t.C
		a.ping()
	}
	status := time.NewTicker(time.Second)
	defer status.Stop()

	stopWatch := a.watchUnits(ctx)
	defer func() { stopWatch() }()
	stopLogs := a.watchLogs(ctx)
	defer func() { stopLogs() }()
	last := ""
	report := func() {
		if a.statusLine == nil {
			return
		}
		if line := a.StatusLine(); line != last {
			a.statusLine(line)
			last = line
		}
	}
	report()

	for {
		select {
		case <-ctx.Done():
			a.mu.Lock()
			runners := slices.Clone(a.runners)
			a.mu.Unlock()
			for _, r := range runners {
				r.halt()
			}
			for _, r := range runners {
				r.wait()
			}
			a.pool.Close()
			stopSched()
			<-schedDone
			a.log.Info("medic stopped", zap.NamedError("cause", context.Cause(ctx)))
			return nil
		case req := <-a.reloads:
			err := a.reload(req.cfg)
			if err == nil {
				stopWatch()
				stopWatch = a.watchUnits(ctx)
				stopLogs()
				stopLogs = a.watchLogs(ctx)
			}
			req.done <- err
			report()
		case <-status.C:
			report()
		case <-watchdog:
			if what, check := a.stuck(); what != "" {
				a.log.Error("not pinging the watchdog: "+what, zap.String("check", check))
				continue
			}
			a.ping()
		}
	}
}

// watchUnits runs a remedy.Watcher of the configured units, dispatching
// its events to the checks of each unit, until the returned stop is called
// (it waits for the watcher to end).
func (a *Agent) watchUnits(ctx context.Context) (stop func()) {
	if a.watchDial == nil {
		return func() {}
	}
	var units []string
	for _, c := range a.config().Checks {
		if c.Unit != "" && !slices.Contains(units, c.Unit) {
			units = append(units, c.Unit)
		}
	}
	if len(units) == 0 {
		return func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	events := make(chan remedy.UnitEvent, 64)
	w := remedy.NewWatcher(a.watchDial, units, a.log.Named("watch"))
	var wg sync.WaitGroup
	wg.Go(func() { _ = w.Run(wctx, events) })
	wg.Go(func() {
		for {
			select {
			case <-wctx.Done():
				return
			case ev := <-events:
				a.mu.Lock()
				for _, r := range a.runners {
					if r.check.Unit == ev.Unit {
						r.unitEvent(ev)
					}
				}
				a.mu.Unlock()
			}
		}
	})
	return func() { cancel(); wg.Wait() }
}

// watchLogs follows every [[watch.nginx]] error log until the returned
// stop is called: an upstream error makes each check that probes that
// upstream probe at once, and every error line is counted by upstream and
// errno.
func (a *Agent) watchLogs(ctx context.Context) (stop func()) {
	logs := a.config().Watch.Nginx
	if len(logs) == 0 {
		return func() {}
	}
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, w := range logs {
		log := a.log.With(zap.String("error_log", w.ErrorLog))
		fl := &nginx.Follower{
			Path:    w.ErrorLog,
			OnLine:  func(line string) { a.upstreamLine(line) },
			OnError: func(err error) { log.Warn("following the nginx error log", zap.Error(err)) },
		}
		wg.Go(func() {
			if err := fl.Run(wctx); err != nil && wctx.Err() == nil {
				log.Error("stopped following the nginx error log", zap.Error(err))
			}
		})
	}
	return func() { cancel(); wg.Wait() }
}

// upstreamLine handles one line of an nginx error log. The line is
// written by nginx's user (www-data) and anything it names is untrusted:
// only an upstream some check probes gets its own metric series and
// triggers probes; every other upstream, and every upstream group ("no
// live upstreams"), is counted as "other", so that the series stay as few
// as the checks however many upstreams the log names.
func (a *Agent) upstreamLine(line string) {
	e, ok := nginx.ParseErrorLine(line)
	if !ok {
		return
	}
	var runners []*runner
	if e.Addr != "" {
		a.mu.Lock()
		runners = a.upstreams[e.Addr]
		a.mu.Unlock()
	}
	label := otherUpstream
	if len(runners) > 0 {
		label = e.Addr
	}
	a.observer.ObserveUpstreamError(label, e.Errno)
	if len(runners) == 0 {
		return
	}
	reason := fmt.Sprintf("nginx: %s (upstream %s)", e.Message, e.Addr)
	for _, r := range runners {
		r.Trigger(reason)
	}
}

// otherUpstream is the upstream label of every upstream no check probes.
const otherUpstream = "other"

// indexUpstreams maps the upstream addresses the checks of runners probe
// to their runners.
func indexUpstreams(runners []*runner) map[string][]*runner {
	idx := map[string][]*runner{}
	for _, r := range runners {
		for _, addr := range upstreamsOf(r.check) {
			if !slices.Contains(idx[addr], r) {
				idx[addr] = append(idx[addr], r)
			}
		}
	}
	return idx
}

// upstreamsOf lists the upstream addresses c's probes target, as
// nginx.NormalizeAddr gives them ("127.0.0.1:8080", "[::1]:8080") or
// "unix:/path".
func upstreamsOf(c config.Check) []string {
	var out []string
	for _, p := range c.Probes {
		if target := nginx.EndpointAddr(p.Spec().Endpoint()); target != "" {
			out = append(out, target)
		}
	}
	return out
}

// start makes r live under Run's context: its first probe round is
// scheduled. a.mu is held.
func (a *Agent) start(r *runner) { r.start(a.runCtx) }

// wedgedAfter is how long the Scheduler's loop may not come round, and how
// long the Pool may start no task while tasks wait, before the watchdog
// is no longer pinged.
const wedgedAfter = 10 * time.Second

// stuck says what keeps the engine from making progress, or "": the
// Scheduler's loop that has not come round, the Pool that starts nothing
// while probe rounds wait, or a check (named) whose rounds have not started
// or whose handler has not returned in time.
func (a *Agent) stuck() (what, check string) {
	if last := a.sched.LastLoop(); !last.IsZero() && time.Since(last) > wedgedAfter {
		return "the scheduler is stuck", ""
	}
	if a.pool != nil && a.pool.Wedged(time.Now(), wedgedAfter) {
		return "the probe workers are stuck", ""
	}
	now := a.now()
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runners {
		if r.stale(now) {
			return "a check's loop is stuck", r.check.Name
		}
	}
	return "", ""
}

// StatusLine summarises the checks in one line, e.g. "12 checks, 1
// failing, 0 gave up", followed by the last reload error if any.
func (a *Agent) StatusLine() string {
	failing, gaveUp, paused := 0, 0, 0
	sts := a.Statuses()
	for _, s := range sts {
		switch s.State {
		case "healthy":
		case "gave_up":
			gaveUp++
		default:
			failing++
		}
		if s.Paused != nil {
			paused++
		}
	}
	noun := "checks"
	if len(sts) == 1 {
		noun = "check"
	}
	line := fmt.Sprintf("%d %s, %d failing, %d gave up", len(sts), noun, failing, gaveUp)
	if paused > 0 {
		line += fmt.Sprintf(", %d paused", paused)
	}
	if err := a.ReloadError(); err != nil {
		line += "; config reload failed, old config kept: " + firstLine(err.Error())
	}
	return line
}

func firstLine(s string) string {
	line, rest, _ := strings.Cut(s, "\n")
	if rest != "" {
		line += " (and more)"
	}
	return line
}

// reloadRequest hands a new configuration to Run's loop.
type reloadRequest struct {
	cfg  *config.Config
	done chan error
}

// Reload swaps in cfg, which must have passed Validate, while Run runs:
// checks whose configuration did not change keep their runner, state,
// counters and budgets; removed checks stop; new and changed checks start.
// Settings that need a restart (bus, state_dir, status_socket,
// metrics_listen) keep their running value, with a warning. Notifiers are
// swapped with the checks, through WithNotifierReload, or the reload is
// refused: never half.
// It returns when the swap is done, or the error that kept the old
// configuration in force.
func (a *Agent) Reload(ctx context.Context, cfg *config.Config) error {
	req := reloadRequest{cfg: cfg, done: make(chan error, 1)}
	select {
	case a.reloads <- req:
	case <-ctx.Done():
		return context.Cause(ctx)
	}
	select {
	case err := <-req.done:
		return err
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// ReloadFailed records a reload that failed before it reached the agent
// (the new file did not load), so that status and STATUS= show it.
func (a *Agent) ReloadFailed(err error) {
	a.mu.Lock()
	a.reloadErr = err
	a.mu.Unlock()
	a.observer.ObserveReload(false, a.now())
	a.log.Error("config reload failed; the running configuration stays", zap.String(logging.Field, logging.ConfigReloadFailed), zap.Error(err))
}

// ReloadError returns the error of the last failed reload, or nil once a
// reload succeeded.
func (a *Agent) ReloadError() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reloadErr
}

func (a *Agent) reload(cfg *config.Config) error {
	old := a.config()
	for _, w := range restartOnly(old, cfg) {
		a.log.Warn("this setting takes effect at the next restart of medic", zap.String("key", w))
	}
	// Keep what cannot change at run time.
	cfg.Agent.Bus, cfg.Agent.StateDir = old.Agent.Bus, old.Agent.StateDir
	cfg.Agent.StatusSocket, cfg.Agent.MetricsListen = old.Agent.StatusSocket, old.Agent.MetricsListen
	cfg.Agent.HTTPListen = old.Agent.HTTPListen
	if a.prepareNotifiers == nil && !reflect.DeepEqual(old.Notifiers, cfg.Notifiers) {
		err := errors.New("reload notifiers: the [[notifier]] tables changed and this medic cannot swap notifiers; restart it")
		a.ReloadFailed(err)
		return err
	}

	// The agent's lock is held only to read the runners and to swap them:
	// status, unit events, nginx triggers and metrics keep flowing while
	// the new runners are built and the old ones stop.
	a.mu.Lock()
	prev := slices.Clone(a.runners)
	a.mu.Unlock()
	keep := make(map[string]*runner, len(prev))
	for _, r := range prev {
		keep[r.check.Name] = r
	}
	runners, err := a.buildRunners(cfg.Checks, keep)
	if err != nil {
		a.ReloadFailed(err)
		return err
	}
	// The notifiers are made ready before anything changes, and put in
	// force between the stop of the old runners and the start of the new
	// ones: no runner ever names a notifier the outbox does not have.
	applyNotifiers := func() {}
	if a.prepareNotifiers != nil {
		apply, err := a.prepareNotifiers(cfg)
		if err != nil {
			err = fmt.Errorf("reload notifiers: %w", err)
			a.ReloadFailed(err)
			return err
		}
		applyNotifiers = apply
	}
	kept := map[*runner]bool{}
	for _, r := range runners {
		if keep[r.check.Name] == r {
			kept[r] = true
		}
	}
	// Stop the runners of removed and changed checks before their
	// successors start, so that no check ever has two runners. They stop
	// on their own (what they have in flight sees their context
	// cancelled); nothing waits for them under the lock.
	stopped, changed, started := 0, 0, 0
	var gone []*runner
	for _, r := range prev {
		if !kept[r] {
			r.halt()
			gone = append(gone, r)
		}
	}
	for _, r := range gone {
		r.wait()
		if slices.ContainsFunc(runners, func(n *runner) bool { return n.check.Name == r.check.Name }) {
			changed++
		} else {
			stopped++
			a.observer.ForgetCheck(r.check.Name)
		}
	}
	applyNotifiers()
	a.sched.SetCoalesce(coalesceFor(cfg.Checks))
	a.mu.Lock()
	for _, r := range runners {
		if !kept[r] {
			a.start(r)
			started++
		}
	}
	a.runners = runners
	a.upstreams = indexUpstreams(runners)
	a.reloadErr = nil
	a.mu.Unlock()
	a.cfg.Store(cfg)

	if setter, ok := a.remedier.(interface{ SetAllowed([]string) }); ok {
		setter.SetAllowed(RemediableUnits(cfg))
	}
	releaseMemory()
	a.observer.ObserveReload(true, a.now())
	a.log.Info("config reloaded", zap.String(logging.Field, logging.ConfigReloaded),
		zap.Int("checks", len(runners)), zap.Int("kept", len(kept)), zap.Int("started", started-changed),
		zap.Int("changed", changed), zap.Int("stopped", stopped))
	return nil
}

// restartOnly lists the settings that differ between old and cfg but take
// effect only at a restart.
func restartOnly(old, cfg *config.Config) []string {
	var out []string
	if old.Agent.Bus != cfg.Agent.Bus {
		out = append(out, "agent.bus")
	}
	if old.Agent.StateDir != cfg.Agent.StateDir {
		out = append(out, "agent.state_dir")
	}
	if old.Agent.StatusSocket != cfg.Agent.StatusSocket {
		out = append(out, "agent.status_socket")
	}
	if old.Agent.MetricsListen != cfg.Agent.MetricsListen {
		out = append(out, "agent.metrics_listen")
	}
	if old.Agent.HTTPListen != cfg.Agent.HTTPListen {
		out = append(out, "agent.http_listen")
	}
	return out
}

// RemediableUnits lists the units medic may act on under cfg: those of
// checks whose remedy action is not "none".
func RemediableUnits(cfg *config.Config) []string {
	var units []string
	for _, c := range cfg.Checks {
		if c.Unit != "" && c.Remedy.Action != "none" {
			units = append(units, c.Unit)
		}
	}
	return units
}

// Trigger makes the named check probe now. It reports false when no check
// has that name.
func (a *Agent) Trigger(check, reason string) bool {
	if r := a.runner(check); r != nil {
		r.Trigger(reason)
		return true
	}
	return false
}

func (a *Agent) runner(check string) *runner {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, r := range a.runners {
		if r.check.Name == check {
			return r
		}
	}
	return nil
}

// ErrNoCheck is returned for a check name the configuration does not have.
var ErrNoCheck = errors.New("no such check")

// Pause stops remediation of check until now+d (maintenance); the pause is
// recorded in state_dir so it survives a restart of medic, and shown in
// status and in alerts. The check keeps being probed.
func (a *Agent) Pause(ctx context.Context, check string, d time.Duration, reason string) (Pause, error) {
	r := a.runner(check)
	if r == nil {
		return Pause{}, fmt.Errorf("pause %s: %w", check, ErrNoCheck)
	}
	p := Pause{Until: a.now().Add(d), Reason: reason}
	if err := a.pauses.set(check, p); err != nil {
		return Pause{}, fmt.Errorf("pause %s: %w", check, err)
	}
	r.control(ctx, func(now time.Time) policy.Decision { return r.m.Pause(now, p.Until) })
	r.setStatus(func(s *Status) { s.Paused = &p })
	a.log.Warn("remediation paused", zap.String("check", check), zap.Time("until", p.Until), zap.String("reason", reason))
	return p, nil
}

// Resume ends a pause of check; a check that is failing is remedied at once.
func (a *Agent) Resume(ctx context.Context, check string) error {
	r := a.runner(check)
	if r == nil {
		return fmt.Errorf("resume %s: %w", check, ErrNoCheck)
	}
	if err := a.pauses.remove(check); err != nil {
		return fmt.Errorf("resume %s: %w", check, err)
	}
	r.control(ctx, func(now time.Time) policy.Decision {
		r.stoppedByOperator = false
		return r.m.Resume(now)
	})
	r.setStatus(func(s *Status) { s.Paused = nil })
	a.log.Info("remediation resumed", zap.String("check", check))
	return nil
}

// Statuses returns a snapshot of every check, in configuration order.
func (a *Agent) Statuses() []Status {
	a.mu.Lock()
	runners := slices.Clone(a.runners)
	a.mu.Unlock()
	out := make([]Status, len(runners))
	now := a.now()
	for i, r := range runners {
		out[i] = r.snapshot()
		if p := out[i].Paused; p != nil && !now.Before(p.Until) {
			out[i].Paused = nil
		}
	}
	return out
}

// enqueue hands m to the outbox once per notifier the check routes to. The
// outbox writes it to disk before it returns, so nothing is lost when a
// notifier is down or medic is restarted.
func (a *Agent) enqueue(c config.Check, m *notify.Message) {
	for _, name := range c.Escalate.Notify {
		if err := a.outbox.Enqueue(name, m); err != nil {
			a.log.Error("cannot queue message", zap.String("notifier", name), zap.String(notify.IDField, m.ID), zap.Error(err))
		}
	}
}
