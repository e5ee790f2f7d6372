package main

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"
	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/journal"
	"github.com/medic-watchdog/medic/logging"
	"github.com/medic-watchdog/medic/metrics"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/outbox"
	"github.com/medic-watchdog/medic/remedy"
)

const defaultConfig = "/etc/medic/medic.toml"

func newRunCmd() *cobra.Command {
	var (
		file      string
		logFormat string
		debug     bool
		pprofAddr string
		once      bool
		remediate bool
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until SIGINT or SIGTERM",
		Long: `run starts medic: it probes every check, restarts failing units over D-Bus,
and escalates. It speaks sd_notify (Type=notify: READY=1 once the config is
valid, the bus answers and the status socket is bound; STATUS=; WATCHDOG=1;
RELOADING=1/STOPPING=1). SIGHUP, a change of the configuration file, and
` + "`medic reload`" + ` reload the configuration; SIGINT and SIGTERM stop medic.
A configuration without any [[check]] is valid: medic starts and logs a
warning that it has nothing to check.

With --once, medic loads and validates the configuration as run does,
probes every check once (16 at a time, each probe bounded by the check's
timeout) and prints one line per check: its name, its unit, OK and the
latency, or FAIL and the problem; then the diagnosis of each failing check,
as medic diagnose prints it, with the unit's state read over the configured
bus (a bus that cannot be reached is listed as unavailable evidence).
Nothing else of the agent runs: no status socket, no outbox, no
notifications, no state in state_dir. It exits 0 when every check passes,
1 when one fails, 2 when the configuration is invalid. Useful in CI and
after editing the configuration.

With --once --remedy, each failing check that names a unit and whose
remedy action is not "none" is remedied as the agent would (restart or
start the unit over D-Bus), then probed until its probes pass successes
times in a row or verify_timeout has passed; each is reported healed or
not healed. The exit status then tells the state after the remedies: 0 when
every check passes or was healed. A check paused with medic pause is not
remedied (the report says until when it is paused); the restart budget of
a running medic is not consulted.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !once && (remediate || asJSON) {
				return errors.New("run: --remedy and --json need --once")
			}
			if once {
				cfg, err := config.Load(file)
				if err != nil {
					printConfigErrors(cmd.ErrOrStderr(), err)
					return exitCode(2)
				}
				ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
				defer stop()
				return runOnce(ctx, cmd.OutOrStdout(), cmd.ErrOrStderr(), file, cfg, remediate, asJSON)
			}
			log, err := newLogger(logFormat, debug)
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			cfg, err := config.Load(file)
			if err != nil {
				printConfigErrors(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			if len(cfg.Checks) == 0 {
				log.Warn(file + " has no [[check]]: medic starts but has nothing to check; add one [[check]] per backend and reload")
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			// After the first signal, a second one ends medic at once.
			context.AfterFunc(ctx, stop)
			if pprofAddr != "" {
				if err := servePprof(ctx, pprofAddr, log); err != nil {
					return err
				}
			}
			return runDaemon(ctx, file, cfg, log)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	cmd.Flags().StringVar(&logFormat, "log-format", "auto", "log format: auto (the journal's native protocol when stderr is the journal), journal, json or console")
	cmd.Flags().BoolVar(&debug, "debug", false, "log every probe")
	cmd.Flags().StringVar(&pprofAddr, "pprof", "", "serve Go's profiling endpoints (/debug/pprof/) on this loopback address, e.g. 127.0.0.1:6060; off when empty")
	cmd.Flags().BoolVar(&once, "once", false, "probe every check once, print the outcome and the diagnosis of failing checks, and exit")
	cmd.Flags().BoolVar(&remediate, "remedy", false, "with --once: remedy failing checks (restart or start their units) and verify")
	cmd.Flags().BoolVar(&asJSON, "json", false, "with --once: print the outcome as JSON")
	return cmd
}

// runAgent runs medic on cfg until ctx ends, without a configuration file
// to reload (the demo).
func runAgent(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	return runDaemon(ctx, "", cfg, log)
}

// gcPercent is the garbage collector's target (GOGC) of a running medic
// when the environment sets none: the heap may grow 25 % over what is live
// between collections, not the runtime's 100 %. medic's heap is mostly
// what lives as long as the configuration (a few kilobytes per check) and
// a probe allocates little, so collections stay rare and cheap while the
// resident memory stays near what is live (the bench, 10,000 TCP checks:
// RSS 115 -> 89 MB, CPU per probe unchanged).
const gcPercent = 25

// daemon is a running medic: the agent, its outbox and the pieces around
// them. It implements agent.Controller for the status socket.
type daemon struct {
	file    string
	log     *zap.Logger
	agent   *agent.Agent
	outbox  *outbox.Outbox
	host    string
	started time.Time
	// rem reaches systemd; its BusError goes into the report.
	rem *remedy.Remediator
	// reloadMu makes reloads from SIGHUP, the file watcher and the socket
	// run one at a time; lastReload is the SHA-256 of the file the last
	// reload read, and lastLoadFailed whether that file did not load
	// (under reloadMu).
	reloadMu       sync.Mutex
	lastReload     [32]byte
	lastLoadFailed bool
}

// runDaemon connects to systemd and runs the agent on cfg until ctx ends;
// file is reloaded on SIGHUP, on change and on request ("" for none).
func runDaemon(ctx context.Context, file string, cfg *config.Config, log *zap.Logger) error {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
	host, _ := os.Hostname()
	set, err := agent.BuildNotifierSet(cfg, host, log, nil)
	if err != nil {
		return err
	}
	ob, err := outbox.Open(outbox.Options{
		Dir:        filepath.Join(cfg.Agent.StateDir, "outbox"),
		MaxPending: cfg.Agent.OutboxMax,
		Log:        log.Named("outbox"),
	}, set.Notifiers())
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	loops := &notifierLoops{ctx: ctx, wg: &wg, running: map[notify.Notifier]context.CancelFunc{}}
	rem := remedy.New(ctx, remedy.Dial(cfg.Agent.Bus), agent.RemediableUnits(cfg), log.Named("remedy"))
	defer rem.Close()
	if len(agent.RemediableUnits(cfg)) > 0 {
		if err := connectBus(ctx, rem, log); err != nil {
			return err
		}
		logAuthorization(cfg, file, log)
	}

	opts := []agent.Option{
		agent.WithVersion(version),
		agent.WithJournal(journal.Reader{User: cfg.Agent.Bus == "user"}.Tail),
		agent.WithStatusLine(func(line string) { notifyStatus(line) }),
		// A reload that changes [[notifier]] builds the new notifiers
		// (reusing the unchanged ones) and prepares the outbox; the
		// agent applies both with its checks, or refuses the reload.
		// Reloads run one at a time (in the agent's loop), so set is
		// only read and written there once Run started.
		agent.WithNotifierReload(func(cfg *config.Config) (func(), error) {
			next, err := agent.BuildNotifierSet(cfg, host, log, set)
			if err != nil {
				return nil, err
			}
			change, err := ob.Prepare(next.Notifiers())
			if err != nil {
				return nil, err
			}
			return func() {
				change.Apply()
				set = next
				loops.sync(next.Notifiers())
			}, nil
		}),
	}
	if cfg.Agent.UnitEvents {
		opts = append(opts, agent.WithUnitWatch(remedy.DialSignals(cfg.Agent.Bus)))
	}
	if every, ok := watchdogInterval(); ok {
		opts = append(opts, agent.WithWatchdog(every, notifyWatchdog))
		log.Info("systemd watchdog enabled", zap.Duration("ping_every", every))
	}
	var a *agent.Agent
	m := metrics.New(metrics.Sources{
		Checks: func() []metrics.CheckState {
			var out []metrics.CheckState
			for _, s := range a.Statuses() {
				state := s.State
				if s.Paused != nil {
					state = "paused"
				}
				out = append(out, metrics.CheckState{Check: s.Check, State: state, IncidentOpen: s.Incident != ""})
			}
			return out
		},
		Outbox: func() []metrics.OutboxStat {
			var out []metrics.OutboxStat
			for _, s := range ob.Stats() {
				out = append(out, metrics.OutboxStat{Notifier: s.Notifier, Pending: s.Pending, Delivered: s.Delivered, Failed: s.Rejected, Dropped: s.Dropped})
			}
			return out
		},
		DBusConnected: rem.Connected,
	})
	opts = append(opts, agent.WithObserver(m))
	a, err = agent.New(cfg, log, rem, ob, opts...)
	if err != nil {
		return err
	}
	m.ObserveReload(true, time.Now())
	d := &daemon{file: file, log: log, agent: a, outbox: ob, host: host, started: time.Now(), rem: rem}
	if data, err := os.ReadFile(file); file != "" && err == nil {
		d.lastReload = sha256.Sum256(data) // what the running configuration was read from
	}

	if addr := cfg.Agent.MetricsListen; addr != "" {
		ln, err := metrics.Listen(addr)
		if err != nil {
			return fmt.Errorf("listen for metrics: %w", err)
		}
		log.Info("serving metrics", zap.String("address", "http://"+ln.Addr().String()+metrics.Path))
		wg.Go(func() {
			if err := m.Serve(ctx, ln); err != nil {
				log.Error("metrics endpoint stopped", zap.Error(err))
			}
		})
	}
	if err := serveStatusPage(ctx, &wg, cfg, d.Report, log); err != nil {
		return err
	}
	if path := cfg.Agent.StatusSocket; path != "" {
		ln, err := agent.ListenStatus(path)
		if err != nil {
			return err
		}
		if err := recordStatusSocket(path); err != nil {
			log.Warn("medic status cannot find this medic while the configuration is broken", zap.Error(err))
		}
		wg.Go(func() {
			if err := agent.ServeStatus(ctx, ln, d); err != nil {
				log.Error("status socket stopped", zap.Error(err))
			}
		})
	}
	loops.sync(set.Notifiers())
	wg.Go(func() {
		if err := ob.Run(ctx); err != nil {
			log.Error("outbox stopped", zap.Error(err))
		}
	})
	if file != "" {
		wg.Go(func() { d.watchReloads(ctx) })
	}

	notifyReady()
	ran := make(chan error, 1)
	go func() { ran <- a.Run(ctx) }()
	var runErr error
	select {
	case runErr = <-ran:
		ran = nil
	case <-ctx.Done():
	}
	notifyStopping()
	// Everything below ctx ends on its own (probes, remedies, deliveries,
	// log followers and servers honour it); stopWait bounds the wait in
	// case one does not, so that medic always ends within TimeoutStopSec
	// (30s in medic.service): stopWait, then the flush.
	stopped := make(chan struct{})
	go func() {
		if ran != nil {
			runErr = <-ran
		}
		wg.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
		err = runErr
	case <-time.After(stopWait):
		log.Error("shutdown: a task did not end within the stop timeout; exiting without waiting for it",
			zap.Duration("waited", stopWait))
		return fmt.Errorf("stop: a task did not end within %s", stopWait)
	}
	// Deliver what is still pending, within what systemd's TimeoutStopSec
	// leaves us.
	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if ferr := ob.Flush(fctx); ferr != nil {
		log.Warn("messages left in the outbox; they are sent at the next start", zap.Error(ferr))
	}
	return err
}

// connectBus dials systemd before medic reports ready. A bus that does
// not answer yet is retried (with the remedy's backoff) until ctx ends or
// busWait passes, then medic starts anyway and keeps redialing: probing
// goes on while remediation waits for the bus.
func connectBus(ctx context.Context, rem *remedy.Remediator, log *zap.Logger) error {
	cctx, cancel := context.WithTimeout(ctx, busWait)
	defer cancel()
	for {
		err := rem.Connect(cctx)
		if err == nil {
			return nil
		}
		if cctx.Err() != nil {
			if ctx.Err() != nil {
				return err
			}
			log.Error("systemd bus not reachable; starting anyway, remediation waits for it", zap.Error(err))
			return nil
		}
	}
}

// busWait bounds waiting for the bus at start-up.
const busWait = 15 * time.Second

// flushTimeout bounds delivering the outbox at shutdown.
const flushTimeout = 10 * time.Second

// stopWait bounds waiting for the agent and the background tasks to end
// after SIGTERM; with flushTimeout, it stays within medic.service's
// TimeoutStopSec=30s.
const stopWait = 15 * time.Second

// notifierLoops runs the background loops of the notifiers that have one
// (agent.Runner: alertmanager's resends), one per notifier in force.
type notifierLoops struct {
	ctx     context.Context
	wg      *sync.WaitGroup
	running map[notify.Notifier]context.CancelFunc
}

// sync starts the loop of each notifier of ns that has none yet and stops
// the loops of notifiers no longer in ns. It is called at start and by
// reloads, one at a time.
func (l *notifierLoops) sync(ns []notify.Notifier) {
	in := make(map[notify.Notifier]bool, len(ns))
	for _, n := range ns {
		in[n] = true
		r, ok := n.(agent.Runner)
		if _, running := l.running[n]; !ok || running {
			continue
		}
		ctx, cancel := context.WithCancel(l.ctx)
		l.running[n] = cancel
		l.wg.Go(func() { r.Run(ctx) })
	}
	for n, cancel := range l.running {
		if !in[n] {
			cancel()
			delete(l.running, n)
		}
	}
}

// Report implements agent.Controller.
func (d *daemon) Report() agent.Report {
	return agent.Report{Version: version, Host: d.host, Started: d.started, Checks: d.agent.Statuses(),
		Outbox: d.outbox.Stats(), ReloadError: errString(d.agent.ReloadError()), BusError: errString(d.busError())}
}

// busError is why systemd's bus cannot be reached now, when medic needs it
// (a check remediates); nil otherwise.
func (d *daemon) busError() error {
	if d.rem == nil || len(d.rem.AllowedUnits()) == 0 {
		return nil
	}
	return d.rem.BusError()
}

// Reload implements agent.Controller: it loads the file again, validates
// it and swaps it in; on any error the running configuration stays.
func (d *daemon) Reload(ctx context.Context) error {
	if d.file == "" {
		return errors.New("no configuration file to reload")
	}
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	_, err := d.reloadLocked(ctx, nil)
	return err
}

// reloadLocked loads the file and hands it to the agent; d.reloadMu is
// held. When unchanged is set and the file's content equals what the last
// reload attempt read, nothing is done and unchanged is set to true: a
// save that changed nothing (or the file watcher seeing the save a
// `systemctl reload` already acted on) is no new reload, and no second
// "reload failed". An explicit reload (SIGHUP, medic reload) of a file
// that failed to load and has not changed since is refused again with the
// same error, but that error is not logged again (repeated is true): a
// save, then `systemctl reload`, of one broken file is one error line.
// STATUS= is updated before READY=1, so that `systemctl show -p
// StatusText` tells the outcome as soon as `systemctl reload` returns.
func (d *daemon) reloadLocked(ctx context.Context, unchanged *bool) (repeated bool, err error) {
	data, readErr := os.ReadFile(d.file)
	sum := sha256.Sum256(data)
	same := readErr == nil && d.lastReload == sum
	if unchanged != nil {
		*unchanged = same
		if same {
			return false, nil
		}
	}
	if readErr == nil {
		d.lastReload = sum
	}
	notifyReloading()
	defer func() {
		notifyStatus(d.agent.StatusLine())
		notifyReady()
	}()
	cfg, err := config.Load(d.file)
	if err != nil {
		repeated = same && d.lastLoadFailed && d.agent.ReloadError() != nil
		if !repeated {
			d.agent.ReloadFailed(err)
		}
		d.lastLoadFailed = true
		return repeated, err
	}
	d.lastLoadFailed = false
	if len(cfg.Checks) == 0 {
		d.log.Warn(d.file + " has no [[check]]: medic has nothing to check")
	}
	return false, d.agent.Reload(ctx, cfg)
}

// Pause implements agent.Controller.
func (d *daemon) Pause(ctx context.Context, check string, dur time.Duration, reason string) (agent.Pause, error) {
	return d.agent.Pause(ctx, check, dur, reason)
}

// Resume implements agent.Controller.
func (d *daemon) Resume(ctx context.Context, check string) error { return d.agent.Resume(ctx, check) }

// watchReloads reloads on SIGHUP and when the configuration file changes.
// It watches the file's directory, not the file: editors save by writing a
// new file and renaming it over the old one. Bursts of events are merged
// (debounce) so that one save is one reload.
func (d *daemon) watchReloads(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	var events <-chan fsnotify.Event
	w, err := fsnotify.NewWatcher()
	if err == nil {
		err = w.Add(filepath.Dir(d.file))
	}
	if err != nil {
		d.log.Warn("not watching the configuration file for changes; reload with SIGHUP or medic reload", zap.Error(err))
	} else {
		defer w.Close()
		events = w.Events
	}
	base := filepath.Base(d.file)
	debounce := time.NewTimer(time.Hour)
	debounce.Stop()
	defer debounce.Stop()
	// The outcome of a reload is logged where it is decided (the agent
	// logs a failure once, with its MESSAGE_ID); here only the trigger.
	reload := func(why string, skipUnchanged bool) {
		d.reloadMu.Lock()
		defer d.reloadMu.Unlock()
		var unchanged *bool
		if skipUnchanged {
			unchanged = new(bool)
		}
		repeated, err := d.reloadLocked(ctx, unchanged)
		if unchanged != nil && *unchanged {
			d.log.Debug("configuration file saved without a change since the last reload; nothing to do", zap.String("trigger", why))
			return
		}
		outcome := "applied"
		switch {
		case repeated:
			outcome = "refused: the file has not changed since the last failed reload (its problems are logged above); the running configuration stays"
		case err != nil:
			outcome = "refused (see the error above); the running configuration stays"
		}
		d.log.Info("configuration reload on "+why+": "+outcome, zap.String("trigger", why), zap.Bool("ok", err == nil))
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			reload("SIGHUP", false)
		case ev, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			if filepath.Base(ev.Name) == base && ev.Op&(fsnotify.Write|fsnotify.Create|fsnotify.Rename|fsnotify.Chmod) != 0 {
				debounce.Reset(reloadDebounce)
			}
		case <-debounce.C:
			reload("file changed", true)
		}
	}
}

// reloadDebounce merges the events of one save.
const reloadDebounce = 300 * time.Millisecond

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// newLogger builds the process logger (package logging): the journal's
// native protocol when stderr is the journal, priority-prefixed lines for
// "journal" without the socket, JSON for shipping, console for people.
// Sampling is always off: a watchdog never drops a log line.
func newLogger(format string, debug bool) (*zap.Logger, error) {
	level := zapcore.InfoLevel
	if debug {
		level = zapcore.DebugLevel
	}
	return logging.New(logging.Options{Format: format, Level: level})
}

// printConfigErrors prints one problem a line, as nginx -t does.
func printConfigErrors(w interface{ Write([]byte) (int, error) }, err error) {
	var list config.Errors
	if errors.As(err, &list) {
		for _, e := range list {
			fmt.Fprintln(w, e.Error())
		}
		fmt.Fprintf(w, "configuration has %d problem(s)\n", len(list))
		return
	}
	fmt.Fprintln(w, err)
}
