// Package remedy is the only code in medic that changes the state of a
// systemd unit. It restarts or starts units over D-Bus
// (github.com/coreos/go-systemd/v22/dbus, the org.freedesktop.systemd1(5)
// API), waits for the job's result, and reads unit state back.
//
// It works with systemd, not against it:
//
//   - Only the units named to New can ever be acted on; anything else is
//     refused with ErrNotAllowed before the bus is touched.
//   - When a unit already has a job queued or running (an operator's
//     `systemctl restart`, or systemd's own Restart=), Remedy waits for that
//     job instead of queueing another.
//   - medic's restarts count against the unit's StartLimitBurst
//     (systemd.unit(5)). systemd 252 answers a start refused by the start
//     limit not with a D-Bus error but with job result "failed" and the
//     unit left failed; its Result turns "start-limit-hit" only if it was
//     "success" before (a unit killed by a signal keeps "signal"), and a
//     restart job still stops the old process first. Remedy answers that
//     with exactly one ResetFailedUnit and one retry.
//   - A lost bus connection is closed and redialed with exponential backoff
//     (100 ms doubling to 10 s), lazily, on the next call; it is never fatal.
package remedy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"github.com/medic-watchdog/medic/unit"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// Systemd is the narrow part of the systemd manager's D-Bus API that remedy
// uses; *dbus.Conn from go-systemd satisfies it. Unit tests may fake it
// where real systemd cannot produce a fault on demand.
type Systemd interface {
	// RestartUnitContext queues a restart job (mode e.g. "replace") and
	// sends the job's result on ch when it is removed; see go-systemd.
	RestartUnitContext(ctx context.Context, name string, mode string, ch chan<- string) (int, error)
	// StartUnitContext queues a start job, like RestartUnitContext.
	StartUnitContext(ctx context.Context, name string, mode string, ch chan<- string) (int, error)
	// ResetFailedUnitContext resets the failed state and the start-limit
	// counter of a unit.
	ResetFailedUnitContext(ctx context.Context, name string) error
	// GetAllPropertiesContext returns the properties of every interface of
	// the unit's object.
	GetAllPropertiesContext(ctx context.Context, unit string) (map[string]any, error)
	// GetUnitPropertyContext returns one org.freedesktop.systemd1.Unit
	// property.
	GetUnitPropertyContext(ctx context.Context, unit string, propertyName string) (*dbus.Property, error)
	// ListJobsContext lists the queued and running jobs.
	ListJobsContext(ctx context.Context) ([]dbus.JobStatus, error)
	// Connected reports whether the connection is still up.
	Connected() bool
	// Close closes the connection.
	Close()
}

var _ Systemd = (*dbus.Conn)(nil)

// DialFunc connects to a systemd manager. ctx is the connection's whole
// lifetime: the connection is closed when ctx ends.
type DialFunc func(ctx context.Context) (Systemd, error)

// Dial returns the DialFunc for bus: "system" connects to the system bus
// (dbus.NewSystemConnectionContext), "user" to the session bus named by
// DBUS_SESSION_BUS_ADDRESS (dbus.NewUserConnectionContext), which reaches a
// systemd user manager. Errors read "connect to systemd user bus: ..." (or
// system); an unknown bus name gives a DialFunc that always fails. With
// neither DBUS_SESSION_BUS_ADDRESS nor /run/user/<uid>/bus, "user" fails
// rather than let godbus autolaunch a dbus-daemon of its own.
func Dial(bus string) DialFunc {
	return func(ctx context.Context) (Systemd, error) {
		var (
			c   *dbus.Conn
			err error
		)
		switch bus {
		case "system":
			c, err = dbus.NewSystemConnectionContext(ctx)
		case "user":
			if !sessionBusKnown() {
				return nil, errors.New("connect to systemd user bus: DBUS_SESSION_BUS_ADDRESS is not set and /run/user/<uid>/bus does not exist")
			}
			c, err = dbus.NewUserConnectionContext(ctx)
		default:
			return nil, fmt.Errorf("connect to systemd %s bus: unknown bus, want \"system\" or \"user\"", bus)
		}
		if err != nil {
			return nil, fmt.Errorf("connect to systemd %s bus: %w", bus, err)
		}
		return c, nil
	}
}

// sessionBusKnown reports whether godbus would find the session bus without
// autolaunching one.
func sessionBusKnown() bool {
	if a := os.Getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" && a != "autolaunch:" {
		return true
	}
	_, err := os.Stat(fmt.Sprintf("/run/user/%d/bus", os.Getuid()))
	return err == nil
}

// Action is what Remedy asks systemd to do with a unit.
type Action string

// Actions Remedy knows.
const (
	// Restart queues a restart job (RestartUnit): stop, then start; a
	// stopped unit is started.
	Restart Action = "restart"
	// Start queues a start job (StartUnit); it does nothing to a unit that
	// is already active.
	Start Action = "start"
)

// Job results as systemd reports them in the JobRemoved signal
// (org.freedesktop.systemd1(5)).
const (
	JobDone       = "done"
	JobFailed     = "failed"
	JobCanceled   = "canceled"
	JobTimeout    = "timeout"
	JobDependency = "dependency"
	JobSkipped    = "skipped"
)

// DefaultJobTimeout bounds the wait for a job's result when Remedy is given
// no positive jobTimeout (systemd's own DefaultTimeoutStartSec is 90 s).
const DefaultJobTimeout = 90 * time.Second

// Errors that Remedy and State wrap; read them with errors.Is.
var (
	// ErrNotAllowed: the unit is not one the Remediator may act on.
	ErrNotAllowed = errors.New("unit not allowed")
	// ErrUnknownAction: the action is neither Restart nor Start.
	ErrUnknownAction = errors.New("unknown remedy action")
	// ErrJobTimeout: no job result arrived within the job timeout; the job
	// may still be queued or running in systemd.
	ErrJobTimeout = errors.New("timeout waiting for job")
)

// Outcome tells what Remedy did and what came of it.
type Outcome struct {
	// Unit and Action are what was asked.
	Unit   string
	Action Action
	// JobResult is the result of the last job: "done", "failed",
	// "canceled", "timeout" (systemd's or medic's job timeout),
	// "dependency" or "skipped"; "" when unknown.
	JobResult string
	// JobResultInferred is true when systemd did not tell JobResult (a job
	// that Remedy waited for but did not queue, or whose result was lost
	// with the bus connection) and Remedy judged it from the unit's
	// resulting state: "done" if the unit ended in the state the job aimed
	// for, "failed" if it ended failed, "" otherwise.
	JobResultInferred bool
	// WaitedForJob is true when the unit already had a job queued or
	// running and Remedy waited for it instead of queueing its own.
	WaitedForJob bool
	// Job is the id of the last job queued or waited for.
	Job uint32
	// ResetFailed is true when a start refused by the start limit (job
	// result "failed" with Result "start-limit-hit", or with the unit never
	// having left "failed") was answered by ResetFailedUnit and one retry.
	ResetFailed bool
	// Attempts counts the jobs Remedy queued (0 when it only waited).
	Attempts int
	// Before and After are the unit's state before acting and after the
	// last job ended (After is zero when it could not be read).
	Before, After unit.State
	// Duration is the time Remedy took, from the call to After.
	Duration time.Duration
}

// MarshalLogObject lets zap.Object log the outcome as fields.
func (o Outcome) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("unit", o.Unit)
	enc.AddString("action", string(o.Action))
	enc.AddString("job_result", o.JobResult)
	if o.JobResultInferred {
		enc.AddBool("job_result_inferred", true)
	}
	enc.AddBool("waited_for_job", o.WaitedForJob)
	enc.AddUint32("job", o.Job)
	enc.AddBool("reset_failed", o.ResetFailed)
	enc.AddInt("attempts", o.Attempts)
	enc.AddDuration("duration", o.Duration)
	if err := enc.AddObject("before", o.Before); err != nil {
		return err
	}
	return enc.AddObject("after", o.After)
}

// Remediator acts on the allowed units of one systemd manager. It is safe
// for concurrent use.
type Remediator struct {
	root context.Context
	dial DialFunc
	log  *zap.Logger

	allowedMu sync.RWMutex
	allowed   map[string]bool

	// Tunables; tests in this package shorten them.
	backoffMin, backoffMax time.Duration
	pollEvery              time.Duration

	dialSem chan struct{} // one dialer at a time, waited for with a ctx

	mu       sync.Mutex
	conn     Systemd
	backoff  time.Duration // current backoff, 0 after a good dial
	nextDial time.Time     // no dial before this
	lastErr  error         // last dial error
}

// New returns a Remediator that may act only on the units in allowed (full
// names, e.g. "my-app.service"). ctx is the lifetime of its bus connections
// (pass the agent's root context, not a timeout); dial connects, lazily, on
// first use and again after the connection is lost. log may be nil.
func New(ctx context.Context, dial DialFunc, allowed []string, log *zap.Logger) *Remediator {
	if log == nil {
		log = zap.NewNop()
	}
	r := &Remediator{
		root:       ctx,
		dial:       dial,
		allowed:    make(map[string]bool, len(allowed)),
		log:        log,
		backoffMin: 100 * time.Millisecond,
		backoffMax: 10 * time.Second,
		pollEvery:  50 * time.Millisecond,
		dialSem:    make(chan struct{}, 1),
	}
	for _, u := range allowed {
		r.allowed[u] = true
	}
	return r
}

// Allowed reports whether unit is one the Remediator may act on.
func (r *Remediator) Allowed(unit string) bool {
	r.allowedMu.RLock()
	defer r.allowedMu.RUnlock()
	return r.allowed[unit]
}

// SetAllowed replaces the units the Remediator may act on, after a
// configuration reload. A remedy already running finishes.
func (r *Remediator) SetAllowed(units []string) {
	m := make(map[string]bool, len(units))
	for _, u := range units {
		m[u] = true
	}
	r.allowedMu.Lock()
	r.allowed = m
	r.allowedMu.Unlock()
}

// Connect dials the bus now, if no connection is up, so that a caller can
// tell at start-up that systemd answers (medic sends READY=1 only then). It
// returns the dial error, wrapped as "connect to systemd ...".
func (r *Remediator) Connect(ctx context.Context) error {
	_, err := r.connect(ctx)
	return err
}

// Connected reports whether a bus connection is up right now (for the
// medic_dbus_connected metric). It does not dial.
func (r *Remediator) Connected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn != nil && r.conn.Connected()
}

// BusError is why the bus cannot be reached: the last dial's error while no
// connection is up, nil while one is or before the first dial failed. It
// does not dial.
func (r *Remediator) BusError() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil && r.conn.Connected() {
		return nil
	}
	return r.lastErr
}

// Close closes the bus connection, if any. The Remediator stays usable and
// dials again on the next call.
func (r *Remediator) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// connect returns the live connection, dialing when there is none (or it
// was lost), no sooner than the backoff allows. Waiting for the backoff and
// dialing both end with ctx.
func (r *Remediator) connect(ctx context.Context) (Systemd, error) {
	select {
	case r.dialSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("connect to systemd: %w", context.Cause(ctx))
	}
	defer func() { <-r.dialSem }()

	r.mu.Lock()
	if r.conn != nil {
		if r.conn.Connected() {
			c := r.conn
			r.mu.Unlock()
			return c, nil
		}
		r.log.Warn("systemd bus connection lost; redialing")
		r.conn.Close()
		r.conn = nil
	}
	wait := time.Until(r.nextDial)
	lastErr := r.lastErr
	r.mu.Unlock()

	if wait > 0 {
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("%w (next try in %s): %w", lastErr, wait.Round(time.Millisecond), context.Cause(ctx))
		}
	}
	if err := r.root.Err(); err != nil {
		return nil, fmt.Errorf("connect to systemd: %w", context.Cause(r.root))
	}
	// Dial with the root context (it is the connection's lifetime), but
	// stop waiting when the caller's context ends: a dial that answers
	// late is closed.
	type dialed struct {
		c   Systemd
		err error
	}
	ch := make(chan dialed, 1)
	go func() {
		c, err := r.dial(r.root)
		ch <- dialed{c, err}
	}()
	var (
		c   Systemd
		err error
	)
	timer := time.NewTimer(dialTimeout)
	defer timer.Stop()
	select {
	case d := <-ch:
		c, err = d.c, d.err
	case <-timer.C:
		go func() {
			if d := <-ch; d.c != nil {
				d.c.Close()
			}
		}()
		err = fmt.Errorf("connect to systemd: the bus did not answer within %s", dialTimeout)
	case <-ctx.Done():
		go func() {
			if d := <-ch; d.c != nil {
				d.c.Close()
			}
		}()
		return nil, fmt.Errorf("connect to systemd: %w", context.Cause(ctx))
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.backoff = min(max(2*r.backoff, r.backoffMin), r.backoffMax)
		r.nextDial = time.Now().Add(r.backoff)
		r.lastErr = err
		r.log.Warn("cannot connect to systemd", zap.Error(err), zap.Duration("retry_in", r.backoff))
		return nil, err
	}
	r.backoff, r.nextDial, r.lastErr = 0, time.Time{}, nil
	r.conn = c
	return c, nil
}

// dropIfLost closes and forgets c when err (from a call on c) shows that
// the connection is gone, and reports whether it did.
func (r *Remediator) dropIfLost(c Systemd, err error) bool {
	if err == nil || !isDisconnect(c, err) {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == c {
		r.log.Warn("systemd bus connection lost", zap.Error(err))
		r.conn.Close()
		r.conn = nil
	}
	return true
}

// isDisconnect tells a lost connection from a D-Bus error reply.
// godbus closes a connection whose transport failed and fails its pending
// calls with the read error (usually EOF), or ErrClosed afterwards; an
// error reply (godbus.Error) leaves the connection up.
func isDisconnect(c Systemd, err error) bool {
	return !c.Connected() || errors.Is(err, godbus.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNRESET)
}

// maxRedials bounds how often one State or Remedy call redials after losing
// the connection mid-call.
const maxRedials = 3

// State reads the unit's state. Reading is not restricted to allowed
// units. Errors: the bus could not be reached ("connect to systemd ...")
// or the properties could not be read ("read state of UNIT: ...").
func (r *Remediator) State(ctx context.Context, name string) (unit.State, error) {
	var lastErr error
	for range maxRedials + 1 {
		c, err := r.connect(ctx)
		if err != nil {
			return unit.State{}, err
		}
		s, err := readState(ctx, c, name)
		if err == nil {
			return s, nil
		}
		lastErr = err
		if !r.dropIfLost(c, err) {
			return unit.State{}, err
		}
	}
	return unit.State{}, lastErr
}

func readState(ctx context.Context, c Systemd, name string) (unit.State, error) {
	props, err := c.GetAllPropertiesContext(ctx, name)
	if err != nil {
		return unit.State{}, fmt.Errorf("read state of %s: %w", name, err)
	}
	return unitStateFrom(name, props), nil
}

// unitJob reads the id of the unit's pending job (0 if none).
func unitJob(ctx context.Context, c Systemd, unit string) (uint32, error) {
	p, err := c.GetUnitPropertyContext(ctx, unit, "Job")
	if err != nil {
		return 0, fmt.Errorf("read job of %s: %w", unit, err)
	}
	return jobID(p.Value), nil
}

// dialTimeout bounds one dial of the bus (connect, authenticate, Hello): a
// bus whose daemon is gone accepts connections it never answers.
const dialTimeout = 10 * time.Second

// callSlack is the time a remedy may take beyond jobTimeout for reading the
// unit's state before and after the job.
const callSlack = 2 * time.Second

// Remedy asks systemd to act on unit (Restart or Start, job mode
// "replace") and waits up to jobTimeout (DefaultJobTimeout if not positive)
// for the job's result.
//
// Outcomes:
//   - The unit already has a job queued or running: Remedy waits for it
//     (polling the unit's Job property) and queues nothing; WaitedForJob.
//   - The job ran: Outcome.JobResult is its result and the error is nil,
//     whether the result is "done" or "failed".
//   - The job failed because the start limit was hit (the unit's Result is
//     "start-limit-hit", or, for a unit that had failed before, the failed
//     start never left "failed"; see startLimitHit): one ResetFailedUnit
//     and one retry; ResetFailed, Attempts 2, JobResult of the retry.
//   - Errors mean Remedy could not act or could not learn the result: the
//     unit is not allowed (ErrNotAllowed, the bus untouched), the action is
//     unknown (ErrUnknownAction), the bus could not be reached or refused
//     the job (e.g. org.freedesktop.systemd1.NoSuchUnit), ctx ended, or no
//     result came within jobTimeout (ErrJobTimeout; the Outcome then says
//     JobResult "timeout" and the job may still be pending in systemd), or
//     the manager refused the job for lack of authorization (polkit said
//     no: ErrNotAuthorized, an *AuthorizationError; nothing was done).
func (r *Remediator) Remedy(ctx context.Context, unit string, action Action, jobTimeout time.Duration) (out Outcome, err error) {
	start := time.Now()
	out = Outcome{Unit: unit, Action: action}
	if !r.Allowed(unit) {
		return out, fmt.Errorf("%s %s: %w", action, unit, ErrNotAllowed)
	}
	if action != Restart && action != Start {
		return out, fmt.Errorf("%s %s: %w", action, unit, ErrUnknownAction)
	}
	if jobTimeout <= 0 {
		jobTimeout = DefaultJobTimeout
	}
	// The whole remedy is bounded, not only the wait for the job: a
	// manager that does not answer at all (frozen, overloaded) must not
	// hold the check's remedy forever.
	ctx, cancel := context.WithTimeoutCause(ctx, jobTimeout+callSlack,
		fmt.Errorf("%w: systemd did not answer within %s", ErrJobTimeout, jobTimeout+callSlack))
	defer cancel()
	log := r.log.With(zap.String("unit", unit), zap.String("action", string(action)))
	defer func() { out.Duration = time.Since(start) }()

	before, err := r.State(ctx, unit)
	if err != nil {
		if ctx.Err() != nil {
			err = context.Cause(ctx)
		}
		return out, fmt.Errorf("%s %s: %w", action, unit, err)
	}
	out.Before = before
	deadline := time.Now().Add(jobTimeout)

	for redials := 0; ; {
		c, err := r.connect(ctx)
		if err != nil {
			return out, fmt.Errorf("%s %s: %w", action, unit, err)
		}
		res, inferred, err := r.attempt(ctx, c, unit, action, deadline, &out, log)
		if err != nil {
			if r.dropIfLost(c, err) && redials < maxRedials {
				redials++
				log.Warn("bus connection lost while acting; redialing", zap.Error(err))
				continue
			}
			if errors.Is(err, ErrJobTimeout) {
				out.JobResult = JobTimeout
				out.After, _ = r.State(ctx, unit)
			}
			return out, fmt.Errorf("%s %s: %w", action, unit, err)
		}
		out.JobResult, out.JobResultInferred = res, inferred
		after, err := r.State(ctx, unit)
		if err != nil {
			return out, fmt.Errorf("%s %s: job %s, then %w", action, unit, res, err)
		}
		out.After = after
		if res == JobFailed && startLimitHit(out.Before, after) && !out.ResetFailed && !out.WaitedForJob {
			log.Warn("start limit hit; resetting the failed state and retrying once", zap.Object("state", after))
			if err := r.resetFailed(ctx, unit); err != nil {
				return out, fmt.Errorf("%s %s: %w", action, unit, err)
			}
			out.ResetFailed = true
			continue
		}
		out.Duration = time.Since(start)
		log.Debug("remedy done", zap.Object("outcome", out))
		return out, nil
	}
}

// startLimitHit tells whether a failed start job was refused by the start
// limit. systemd 252 sets Result "start-limit-hit" only when the unit's
// Result was "success" before: a unit that had already failed (say by
// SIGKILL) keeps Result "signal". A start that was refused before it began
// leaves InactiveExitTimestamp (when the unit last left inactive/failed)
// where it was, which no start that ran does.
func startLimitHit(before, after unit.State) bool {
	if after.Result == "start-limit-hit" {
		return true
	}
	return after.ActiveState == "failed" && before.ActiveState == "failed" &&
		after.InactiveExitTimestamp.Equal(before.InactiveExitTimestamp)
}

// attempt waits for the unit's pending job if it has one, else queues the
// action's job and waits for its result. It returns the job result and
// whether it was inferred from the unit's state rather than told by systemd.
func (r *Remediator) attempt(ctx context.Context, c Systemd, unit string, action Action, deadline time.Time, out *Outcome, log *zap.Logger) (string, bool, error) {
	pending, err := unitJob(ctx, c, unit)
	if err != nil {
		return "", false, err
	}
	if pending != 0 {
		// A job of our own (followed again after a redial) is not
		// someone else's.
		out.WaitedForJob = out.WaitedForJob || pending != out.Job
		out.Job = pending
		log.Info("unit has a job already; waiting for it instead of queueing another", zap.Uint32("job", pending))
		res, err := r.waitPending(ctx, c, unit, pending, deadline)
		return res, true, err
	}

	ch := make(chan string, 1) // buffered: go-systemd's dispatcher must never block on us
	queue := c.RestartUnitContext
	if action == Start {
		queue = c.StartUnitContext
	}
	id, err := queue(ctx, unit, "replace", ch)
	if err != nil {
		return "", false, fmt.Errorf("queue %s job: %w", action, authorizationError(err, unit, string(action)))
	}
	out.Attempts++
	out.Job = uint32(id)
	log.Info("job queued", zap.Int("job", id), zap.Int("attempt", out.Attempts))

	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	tick := time.NewTicker(4 * r.pollEvery)
	defer tick.Stop()
	for {
		select {
		case res := <-ch:
			return res, false, nil
		case <-ctx.Done():
			return "", false, fmt.Errorf("wait for job %d: %w", id, context.Cause(ctx))
		case <-timer.C:
			return "", false, fmt.Errorf("%w %d", ErrJobTimeout, id)
		case <-tick.C:
			if !c.Connected() {
				// The result went with the connection. Redial and
				// follow the job by polling.
				r.dropIfLost(c, godbus.ErrClosed)
				nc, err := r.connect(ctx)
				if err != nil {
					return "", false, err
				}
				res, err := r.waitPending(ctx, nc, unit, uint32(id), deadline)
				return res, true, err
			}
		}
	}
}

// waitPending polls the unit's Job property until job is gone, then infers
// its result from the unit's state (systemd tells a job's result only to
// the clients that queued it or subscribed before it ended).
func (r *Remediator) waitPending(ctx context.Context, c Systemd, unit string, job uint32, deadline time.Time) (string, error) {
	jobType := ""
	if jobs, err := c.ListJobsContext(ctx); err == nil {
		for _, j := range jobs {
			if j.Id == job {
				jobType = j.JobType
			}
		}
	}
	tick := time.NewTicker(r.pollEvery)
	defer tick.Stop()
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		cur, err := unitJob(ctx, c, unit)
		if err != nil {
			return "", err
		}
		if cur != job {
			s, err := readState(ctx, c, unit)
			if err != nil {
				return "", err
			}
			return inferResult(jobType, s), nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("wait for job %d: %w", job, context.Cause(ctx))
		case <-timer.C:
			return "", fmt.Errorf("%w %d", ErrJobTimeout, job)
		case <-tick.C:
		}
	}
}

// inferResult judges a finished job by the state the unit is left in.
func inferResult(jobType string, s unit.State) string {
	switch {
	case s.ActiveState == "failed":
		return JobFailed
	case jobType == "stop":
		if s.ActiveState == "inactive" {
			return JobDone
		}
	case s.Up():
		return JobDone
	}
	return ""
}

func (r *Remediator) resetFailed(ctx context.Context, unit string) error {
	for range maxRedials + 1 {
		c, err := r.connect(ctx)
		if err != nil {
			return err
		}
		err = c.ResetFailedUnitContext(ctx, unit)
		if err == nil {
			return nil
		}
		if !r.dropIfLost(c, err) {
			return fmt.Errorf("reset failed state: %w", authorizationError(err, unit, "reset-failed"))
		}
	}
	return errors.New("reset failed state: bus connection lost repeatedly")
}

// AllowedUnits returns the allowed units, sorted.
func (r *Remediator) AllowedUnits() []string {
	r.allowedMu.RLock()
	defer r.allowedMu.RUnlock()
	out := make([]string, 0, len(r.allowed))
	for u := range r.allowed {
		out = append(out, u)
	}
	slices.Sort(out)
	return out
}
