// Package agent runs medic: it turns the configuration into one runner per
// check, drives each check's policy state machine, carries out remedies
// through package remedy and hands escalation events to the notifiers.
package agent

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
)

// Remedier carries out remedies on units; *remedy.Remediator is the
// implementation, which enforces that only configured units are touched.
type Remedier interface {
	Remedy(ctx context.Context, unit string, action remedy.Action, jobTimeout time.Duration) (remedy.Outcome, error)
	State(ctx context.Context, unit string) (remedy.UnitState, error)
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
}

// Agent runs every configured check until its context ends.
type Agent struct {
	cfg      *config.Config
	log      *zap.Logger
	remedier Remedier
	outbox   Outbox
	journal  JournalReader
	host     string
	version  string
	now      func() time.Time

	remedySlots chan struct{} // bounds concurrent remedies
	runners     []*runner
}

// Option changes how New builds an Agent.
type Option func(*Agent)

// WithClock replaces time.Now, for tests.
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
		cfg:         cfg,
		log:         log,
		remedier:    rem,
		outbox:      ob,
		host:        host,
		now:         time.Now,
		remedySlots: make(chan struct{}, max(1, cfg.Agent.MaxConcurrentRemedies)),
	}
	for _, o := range opts {
		o(a)
	}
	var errs []error
	for i, c := range cfg.Checks {
		probes := make([]probe.Prober, 0, len(c.Probes))
		for j, pc := range c.Probes {
			p, err := probe.New(pc.Spec())
			if err != nil {
				errs = append(errs, fmt.Errorf("check[%d].probe[%d]: %w", i, j, err))
				continue
			}
			probes = append(probes, p)
		}
		a.runners = append(a.runners, newRunner(a, c, probes))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("build agent: %w", err)
	}
	return a, nil
}

// Run starts one runner per check and blocks until ctx is done. It then
// waits for in-flight probes and remedies to end (they see ctx cancelled)
// and for notifications to finish, so no goroutine outlives Run.
func (a *Agent) Run(ctx context.Context) error {
	a.log.Info("medic started", zap.Int("checks", len(a.runners)), zap.String("bus", a.cfg.Agent.Bus))
	var wg sync.WaitGroup
	for _, r := range a.runners {
		wg.Go(func() { r.run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	a.log.Info("medic stopped", zap.NamedError("cause", context.Cause(ctx)))
	return nil
}

// Trigger makes the named check probe now. It reports false when no check
// has that name.
func (a *Agent) Trigger(check, reason string) bool {
	for _, r := range a.runners {
		if r.check.Name == check {
			r.Trigger(reason)
			return true
		}
	}
	return false
}

// Statuses returns a snapshot of every check, in configuration order.
func (a *Agent) Statuses() []Status {
	out := make([]Status, len(a.runners))
	for i, r := range a.runners {
		out[i] = r.snapshot()
	}
	return out
}

// enqueue hands m to the outbox once per notifier the check routes to. The
// outbox writes it to disk before it returns, so nothing is lost when a
// notifier is down or medic is restarted.
func (a *Agent) enqueue(c config.Check, m *notify.Message) {
	for _, name := range c.Escalate.Notify {
		if err := a.outbox.Enqueue(name, m); err != nil {
			a.log.Error("cannot queue message", zap.String("notifier", name), zap.String("message_id", m.ID), zap.Error(err))
		}
	}
}
