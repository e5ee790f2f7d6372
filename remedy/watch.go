package remedy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/medic-watchdog/medic/unit"
	"go.uber.org/zap"
)

// UnitEvent is a change of a watched unit's state, as systemd reported it.
type UnitEvent struct {
	Unit string
	// ActiveState and SubState are the unit's new state; Result is the
	// service's Result when the unit is failed or inactive.
	ActiveState, SubState, Result string
	// StopJob is true when a stop job for the unit was queued or is
	// stopping it: someone ran `systemctl stop` or `systemctl restart`.
	// medic never issues stop jobs, but its own restart jobs stop the unit
	// too: the caller tells them apart by knowing its restarts.
	StopJob bool
	// Job is the type of the job queued or running on the unit when the
	// event was read ("start", "stop", "restart", "reload", "try-restart",
	// ...; "pending" when the job ended before its type could be read), or
	// "" when the unit has no job: a unit that changes state with no job
	// does so on its own (its process exited or was killed).
	Job string
	// Resync is true for the state read when the subscription was made or
	// made again (start, bus reconnect, daemon-reload, daemon-reexec): it
	// is the current state, not necessarily a change.
	Resync bool
	// At is when medic received the event.
	At time.Time
}

// Down reports whether the event says the unit is not running: failed, or
// inactive (dead).
func (e UnitEvent) Down() bool { return e.ActiveState == "failed" || e.ActiveState == "inactive" }

// Died reports whether the event is systemd's word that the unit died on
// its own: no job is changing it, and it is failed, or inactive or waiting
// to restart itself (activating/auto-restart) with a Result other than
// "success" (exit-code, signal, core-dump, oom-kill, timeout, watchdog, ...;
// systemd.exec(5) and org.freedesktop.systemd1(5) list them). A clean exit
// (inactive, Result success) is not a death: the probes judge it.
func (e UnitEvent) Died() bool {
	if e.Job != "" || e.StopJob {
		return false
	}
	switch {
	case e.ActiveState == "failed":
		return true
	case e.ActiveState == "inactive", e.ActiveState == "activating" && e.SubState == "auto-restart":
		return e.Result != "" && e.Result != "success"
	}
	return false
}

// Between reports whether the unit is between states (activating,
// deactivating, reloading, or a job is under way): evidence read now
// describes neither the old state nor the new one.
func (e UnitEvent) Between() bool { return unit.IsBetween(e.ActiveState, e.SubState, e.Job != "") }

// SignalDialFunc connects to the bus for signals. ctx bounds the dial.
type SignalDialFunc func(ctx context.Context) (*godbus.Conn, error)

// DialSignals returns the SignalDialFunc for bus ("system" or "user"),
// with the same rules as Dial.
func DialSignals(bus string) SignalDialFunc {
	return func(ctx context.Context) (*godbus.Conn, error) {
		var (
			c   *godbus.Conn
			err error
		)
		switch bus {
		case "system":
			c, err = godbus.ConnectSystemBus(godbus.WithContext(ctx))
		case "user":
			if !sessionBusKnown() {
				return nil, errors.New("connect to systemd user bus: DBUS_SESSION_BUS_ADDRESS is not set and /run/user/<uid>/bus does not exist")
			}
			c, err = godbus.ConnectSessionBus(godbus.WithContext(ctx))
		default:
			return nil, fmt.Errorf("connect to systemd %s bus: unknown bus, want \"system\" or \"user\"", bus)
		}
		if err != nil {
			return nil, fmt.Errorf("connect to systemd %s bus: %w", bus, err)
		}
		return c, nil
	}
}

// D-Bus names of systemd's manager (org.freedesktop.systemd1(5)).
const (
	sdDest      = "org.freedesktop.systemd1"
	sdPath      = godbus.ObjectPath("/org/freedesktop/systemd1")
	sdManager   = "org.freedesktop.systemd1.Manager"
	sdUnitIface = "org.freedesktop.systemd1.Unit"
	dbusProps   = "org.freedesktop.DBus.Properties"
)

// Watcher reports state changes of a fixed set of units as they happen:
// it matches PropertiesChanged signals on each unit's object and the
// manager's JobNew signal, after calling the manager's Subscribe (systemd
// sends those signals only to subscribed clients). It is event-driven,
// unlike go-systemd's SubscribeUnits, which polls ListUnits every second.
//
// The subscription survives a lost bus connection (redial with backoff),
// daemon-reload (the manager's Reloading signal) and daemon-reexec (the
// manager's bus name changes owner): each time it reads every unit's state
// again and reports it with Resync set, so no change is missed.
type Watcher struct {
	dial  SignalDialFunc
	units []string
	log   *zap.Logger

	backoffMin, backoffMax time.Duration

	// jobs holds the type of each job of a watched unit, from JobNew until
	// JobRemoved: by the time a PropertiesChanged that names a job is
	// handled, the job has often ended and its type can no longer be read.
	// Only the Run goroutine touches it.
	jobs map[uint32]string
}

// NewWatcher returns a Watcher of units over connections from dial. log may
// be nil.
func NewWatcher(dial SignalDialFunc, units []string, log *zap.Logger) *Watcher {
	if log == nil {
		log = zap.NewNop()
	}
	return &Watcher{dial: dial, units: slices.Clone(units), log: log, backoffMin: 100 * time.Millisecond, backoffMax: 10 * time.Second,
		jobs: map[uint32]string{}}
}

// Run sends events to out until ctx ends. Connection failures are logged
// and retried with exponential backoff; Run returns nil when ctx ends.
func (w *Watcher) Run(ctx context.Context, out chan<- UnitEvent) error {
	backoff := time.Duration(0)
	for {
		conn, err := w.dial(ctx)
		if err == nil {
			start := time.Now()
			err = w.session(ctx, conn, out)
			conn.Close()
			if time.Since(start) > time.Minute {
				backoff = 0
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		backoff = min(max(2*backoff, w.backoffMin), w.backoffMax)
		w.log.Warn("unit watch interrupted; resubscribing", zap.Error(err), zap.Duration("retry_in", backoff))
		select {
		case <-time.After(backoff):
		case <-ctx.Done():
			return nil
		}
	}
}

// session subscribes on conn and forwards signals until conn fails or ctx
// ends.
func (w *Watcher) session(ctx context.Context, conn *godbus.Conn, out chan<- UnitEvent) error {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	signals := make(chan *godbus.Signal, 64)
	conn.Signal(signals)
	defer conn.RemoveSignal(signals)

	matches := [][]godbus.MatchOption{
		{godbus.WithMatchSender(sdDest), godbus.WithMatchObjectPath(sdPath), godbus.WithMatchInterface(sdManager), godbus.WithMatchMember("JobNew")},
		{godbus.WithMatchSender(sdDest), godbus.WithMatchObjectPath(sdPath), godbus.WithMatchInterface(sdManager), godbus.WithMatchMember("JobRemoved")},
		{godbus.WithMatchSender(sdDest), godbus.WithMatchObjectPath(sdPath), godbus.WithMatchInterface(sdManager), godbus.WithMatchMember("Reloading")},
		{godbus.WithMatchSender("org.freedesktop.DBus"), godbus.WithMatchInterface("org.freedesktop.DBus"), godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, sdDest)},
	}
	paths := map[godbus.ObjectPath]string{}
	for _, u := range w.units {
		p := unitPath(u)
		paths[p] = u
		matches = append(matches, []godbus.MatchOption{
			godbus.WithMatchSender(sdDest), godbus.WithMatchObjectPath(p),
			godbus.WithMatchInterface(dbusProps), godbus.WithMatchMember("PropertiesChanged"),
		})
	}
	for _, m := range matches {
		if err := conn.AddMatchSignalContext(ctx, m...); err != nil {
			return fmt.Errorf("watch units: add signal match: %w", err)
		}
	}
	if err := w.subscribe(ctx, conn, paths, out); err != nil {
		return err
	}

	for {
		select {
		case <-ctx.Done():
			return nil
		case sig, ok := <-signals:
			if !ok {
				return errors.New("watch units: bus connection closed")
			}
			if err := w.handle(ctx, conn, sig, paths, out); err != nil {
				return err
			}
		}
	}
}

// subscribe asks systemd to send unit signals, then reports every unit's
// current state with Resync set.
func (w *Watcher) subscribe(ctx context.Context, conn *godbus.Conn, paths map[godbus.ObjectPath]string, out chan<- UnitEvent) error {
	if call := conn.Object(sdDest, sdPath).CallWithContext(ctx, sdManager+".Subscribe", 0); call.Err != nil {
		// An error "already subscribed" is fine.
		var de godbus.Error
		if !errors.As(call.Err, &de) || !strings.HasSuffix(de.Name, "AlreadySubscribed") {
			return fmt.Errorf("watch units: subscribe: %w", call.Err)
		}
	}
	for p, u := range paths {
		ev, err := w.readEvent(ctx, conn, p, u)
		if err != nil {
			return err
		}
		ev.Resync = true
		if err := send(ctx, out, ev); err != nil {
			return nil
		}
	}
	return nil
}

func (w *Watcher) handle(ctx context.Context, conn *godbus.Conn, sig *godbus.Signal, paths map[godbus.ObjectPath]string, out chan<- UnitEvent) error {
	switch sig.Name {
	case dbusProps + ".PropertiesChanged":
		unit, ok := paths[sig.Path]
		if !ok || len(sig.Body) < 2 {
			return nil
		}
		if iface, _ := sig.Body[0].(string); iface != sdUnitIface {
			return nil
		}
		changed, _ := sig.Body[1].(map[string]godbus.Variant)
		ev := UnitEvent{Unit: unit, At: time.Now()}
		active, ok1 := changed["ActiveState"].Value().(string)
		sub, ok2 := changed["SubState"].Value().(string)
		if !ok1 || !ok2 {
			// Invalidated rather than sent: read them.
			read, err := w.readEvent(ctx, conn, sig.Path, unit)
			if err != nil {
				return err
			}
			ev = read
		} else {
			ev.ActiveState, ev.SubState = active, sub
			if needsResult(ev) {
				ev.Result = readResult(ctx, conn, sig.Path)
			}
			if v, ok := changed["Job"]; ok {
				ev.Job = w.jobType(ctx, conn, v)
			} else {
				ev.Job = w.readJob(ctx, conn, sig.Path)
			}
		}
		ev.StopJob = ev.Job == "stop" || (ev.Job == "" || ev.Job == "pending") && stoppingByJob(ev)
		return send(ctx, out, ev)
	case sdManager + ".JobRemoved":
		if len(sig.Body) >= 1 {
			id, _ := sig.Body[0].(uint32)
			delete(w.jobs, id)
		}
	case sdManager + ".JobNew":
		if len(sig.Body) < 3 {
			return nil
		}
		id, _ := sig.Body[0].(uint32)
		job, _ := sig.Body[1].(godbus.ObjectPath)
		unit, _ := sig.Body[2].(string)
		if !slices.Contains(w.units, unit) {
			return nil
		}
		v, err := conn.Object(sdDest, job).GetProperty("org.freedesktop.systemd1.Job.JobType")
		if err != nil {
			return nil // the job is already gone
		}
		if t, _ := v.Value().(string); t != "" && len(w.jobs) < maxJobsKept {
			w.jobs[id] = t
		}
		// Every job on a watched unit is reported: medic's own (the
		// caller knows them), and an operator's stop, start or restart,
		// which the caller must not take for a failure.
		t, _ := v.Value().(string)
		if t == "" {
			return nil
		}
		ev, err := w.readEvent(ctx, conn, unitPath(unit), unit)
		if err != nil {
			return err
		}
		ev.Job = t
		ev.StopJob = t == "stop"
		return send(ctx, out, ev)
	case sdManager + ".Reloading":
		if len(sig.Body) == 1 {
			if starting, _ := sig.Body[0].(bool); !starting {
				w.log.Info("systemd reloaded its units; reading unit states again")
				return w.subscribe(ctx, conn, paths, out)
			}
		}
	case "org.freedesktop.DBus.NameOwnerChanged":
		if len(sig.Body) == 3 {
			if owner, _ := sig.Body[2].(string); owner != "" {
				w.log.Info("systemd is back on the bus (daemon-reexec); subscribing again")
				return w.subscribe(ctx, conn, paths, out)
			}
		}
	}
	return nil
}

// stoppingByJob reports whether the unit is being stopped by a job: a
// service enters deactivating with SubState "stop" (ExecStop= running),
// "stop-sigterm" or "stop-sigkill" only for a stop (or restart) job, while a
// main process that dies on its own goes to "stop-post" or "final-sigterm"
// (systemd's service state machine, src/core/service.c). The JobNew signal
// says the same, but the job of a service that exits at once on SIGTERM is
// often gone before its type can be read.
func stoppingByJob(ev UnitEvent) bool {
	if ev.ActiveState != "deactivating" {
		return false
	}
	switch ev.SubState {
	case "stop", "stop-sigterm", "stop-sigkill":
		return true
	}
	return false
}

// maxJobsKept bounds Watcher.jobs, should JobRemoved signals go missing.
const maxJobsKept = 1024

func send(ctx context.Context, out chan<- UnitEvent, ev UnitEvent) error {
	select {
	case out <- ev:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// readEvent reads a unit's state now.
func (w *Watcher) readEvent(ctx context.Context, conn *godbus.Conn, p godbus.ObjectPath, unit string) (UnitEvent, error) {
	ev := UnitEvent{Unit: unit, At: time.Now()}
	var props map[string]godbus.Variant
	if err := conn.Object(sdDest, p).CallWithContext(ctx, dbusProps+".GetAll", 0, sdUnitIface).Store(&props); err != nil {
		return ev, fmt.Errorf("watch units: read %s: %w", unit, err)
	}
	ev.ActiveState, _ = props["ActiveState"].Value().(string)
	ev.SubState, _ = props["SubState"].Value().(string)
	if needsResult(ev) {
		ev.Result = readResult(ctx, conn, p)
	}
	if v, ok := props["Job"]; ok {
		ev.Job = w.jobType(ctx, conn, v)
	}
	return ev, nil
}

// needsResult reports whether the service's Result says something about
// ev: the unit is down or waiting to restart itself.
func needsResult(ev UnitEvent) bool {
	return ev.Down() || ev.ActiveState == "activating" && ev.SubState == "auto-restart"
}

// readJob reads the unit's Job property and the type of that job.
func (w *Watcher) readJob(ctx context.Context, conn *godbus.Conn, p godbus.ObjectPath) string {
	var v godbus.Variant
	if err := conn.Object(sdDest, p).CallWithContext(ctx, dbusProps+".Get", 0, sdUnitIface, "Job").Store(&v); err != nil {
		return ""
	}
	return w.jobType(ctx, conn, v)
}

// jobType reads the JobType of the job in a unit's Job property, (uo): the
// job's id and object path, id 0 when there is none. A job that ended
// before its type could be read is "pending".
func (w *Watcher) jobType(ctx context.Context, conn *godbus.Conn, v godbus.Variant) string {
	var job struct {
		ID   uint32
		Path godbus.ObjectPath
	}
	if err := godbus.Store([]any{v.Value()}, &job); err != nil || job.ID == 0 {
		return ""
	}
	if t, ok := w.jobs[job.ID]; ok {
		return t
	}
	var t godbus.Variant
	if err := conn.Object(sdDest, job.Path).CallWithContext(ctx, dbusProps+".Get", 0, "org.freedesktop.systemd1.Job", "JobType").Store(&t); err != nil {
		return "pending"
	}
	if s, _ := t.Value().(string); s != "" {
		return s
	}
	return "pending"
}

// readResult reads a service's Result, or "" for other unit types.
func readResult(ctx context.Context, conn *godbus.Conn, p godbus.ObjectPath) string {
	var v godbus.Variant
	if err := conn.Object(sdDest, p).CallWithContext(ctx, dbusProps+".Get", 0, "org.freedesktop.systemd1.Service", "Result").Store(&v); err != nil {
		return ""
	}
	s, _ := v.Value().(string)
	return s
}

// unitPath is the object path systemd gives unit name: the name escaped
// per sd_bus_path_encode(3) under /org/freedesktop/systemd1/unit.
func unitPath(name string) godbus.ObjectPath {
	var b strings.Builder
	b.WriteString("/org/freedesktop/systemd1/unit/")
	for i := 0; i < len(name); i++ {
		c := name[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9' && i > 0) {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "_%02x", c)
	}
	return godbus.ObjectPath(b.String())
}
