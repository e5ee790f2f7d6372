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
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
)

// Remedier carries out remedies on units; *remedy.Remediator is the
// implementation, which enforces that only configured units are touched.
type Remedier interface {
	Remedy(ctx context.Context, unit string, action remedy.Action, jobTimeout time.Duration) (remedy.Outcome, error)
}

// Status is a snapshot of one check, for `medic status` and logs.
type Status struct {
	Check, Unit string
	// State is the policy state, e.g. "healthy" or "gave_up".
	State string
	// Since is when the check entered State; zero if it never changed.
	Since time.Time
	// Reason is why the check entered State.
	Reason string
	// LastProbe is when the last probe round ended; LastOK its outcome and
	// LastError the failure it met.
	LastProbe time.Time
	LastOK    bool
	LastError string
	// Restarts counts the remedies medic carried out since it started.
	Restarts int
}

// Agent runs every configured check until its context ends.
type Agent struct {
	cfg       *config.Config
	log       *zap.Logger
	remedier  Remedier
	notifiers map[string]notify.Notifier
	host      string
	now       func() time.Time

	remedySlots chan struct{} // bounds concurrent remedies
	runners     []*runner

	sends sync.WaitGroup // in-flight notifications
	ctx   context.Context
}

// Option changes how New builds an Agent.
type Option func(*Agent)

// WithClock replaces time.Now, for tests.
func WithClock(now func() time.Time) Option { return func(a *Agent) { a.now = now } }

// New builds an Agent for cfg, which must have passed Validate. notifiers
// maps notifier names to notifiers; every name a check routes to must be
// present. It fails when a probe cannot be built (for example an unreadable
// ca_file) or a route names a missing notifier.
func New(cfg *config.Config, log *zap.Logger, rem Remedier, notifiers map[string]notify.Notifier, opts ...Option) (*Agent, error) {
	host, _ := os.Hostname()
	a := &Agent{
		cfg:         cfg,
		log:         log,
		remedier:    rem,
		notifiers:   notifiers,
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
		for _, n := range c.Escalate.Notify {
			if _, ok := notifiers[n]; !ok {
				errs = append(errs, fmt.Errorf("check[%d].escalate.notify: unknown notifier %q", i, n))
			}
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
	a.ctx = ctx
	a.log.Info("medic started", zap.Int("checks", len(a.runners)), zap.String("bus", a.cfg.Agent.Bus))
	var wg sync.WaitGroup
	for _, r := range a.runners {
		wg.Go(func() { r.run(ctx) })
	}
	<-ctx.Done()
	wg.Wait()
	a.sends.Wait()
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

// sendTimeout bounds one delivery attempt to one notifier.
const sendTimeout = 30 * time.Second

// send hands ev to every notifier the check routes to, each in its own
// goroutine so that a slow notifier never delays a check.
func (a *Agent) send(c config.Check, ev notify.Event) {
	for _, name := range c.Escalate.Notify {
		n := a.notifiers[name]
		a.sends.Go(func() {
			ctx, cancel := context.WithTimeoutCause(context.WithoutCancel(a.ctx), sendTimeout,
				fmt.Errorf("notifier %s: no answer within %s", name, sendTimeout))
			defer cancel()
			if _, err := n.Notify(ctx, ev); err != nil {
				a.log.Error("notification failed", zap.String("notifier", name), zap.String("check", ev.Check),
					zap.String("event", string(ev.Kind)), zap.Error(err))
			}
		})
	}
}
