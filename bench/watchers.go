package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errNotImplemented marks a variant this medic cannot run yet (e.g. its
// config option is unknown); its row says so and the bench goes on.
var errNotImplemented = errors.New("not implemented yet")

// watcher is one MTTR variant: something that notices the backend died and
// brings it back.
type watcher interface {
	// name is the row label and the -skip name.
	name() string
	// restartSetting is the backend unit's Restart= for this variant.
	restartSetting() string
	// period is the watcher's polling period: each trial waits a random
	// part of it before the kill, so that the kill lands at a random phase
	// of the watcher's cycle.
	period() time.Duration
	// start starts watching and returns once the watcher is ready.
	start(ctx context.Context, l *lab) error
	// settle returns once the watcher is ready for the next trial after the
	// backend came back at recovered.
	settle(ctx context.Context, recovered time.Time) error
	// stop stops the watcher and returns notes for the report.
	stop() []string
}

// startChild starts a watcher process in its own process group with
// output to logFile; stopChild ends that group.
func startChild(name string, args, env []string, logFile string) (*exec.Cmd, error) {
	f, err := os.Create(logFile)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd := exec.Command(name, args...)
	cmd.Env = env
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return cmd, nil
}

// stopChild sends SIGTERM to the child's process group, SIGKILL after 10 s.
func stopChild(cmd *exec.Cmd) {
	if cmd == nil || cmd.Process == nil {
		return
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
}

// systemdWatcher is the floor: the unit restarts itself.
type systemdWatcher struct{}

func (systemdWatcher) name() string                            { return "systemd" }
func (systemdWatcher) restartSetting() string                  { return "always" }
func (systemdWatcher) period() time.Duration                   { return 0 }
func (systemdWatcher) start(context.Context, *lab) error       { return nil }
func (systemdWatcher) settle(context.Context, time.Time) error { return nil }
func (systemdWatcher) stop() []string                          { return []string{"Restart=always, RestartSec=0"} }

// Event triggers: the one place that says how medic is told to follow the
// unit's state over D-Bus (probe at once when the unit dies) or to leave
// detection to the probes' schedule. The line goes into the [agent] table.
// When medic does not know the key (check-config fails naming it), the
// events variant is reported as not implemented, and the polling variant
// runs without the line (a medic without triggers only polls); medic's log
// tells afterwards whether any probe was event-triggered.
const (
	triggersKey     = "unit_events"
	triggersEvents  = "unit_events = true"
	triggersPolling = "unit_events = false"
)

// medicWatcher runs `medic run` with a tight configuration.
type medicWatcher struct {
	events bool
	l      *lab
	dir    string
	cmd    *exec.Cmd
	notes  []string
}

func (m *medicWatcher) name() string {
	if m.events {
		return "medic-events"
	}
	return "medic-polling"
}
func (m *medicWatcher) restartSetting() string { return "no" }
func (m *medicWatcher) period() time.Duration  { return time.Second }

// medicConfig is the configuration of the MTTR runs: a 1 s interval, a
// 20 ms retry interval and a failure threshold of 1 (Monit and the cron
// script also act on the first failed probe), no grace, no backoff, and a
// restart budget that never runs out during the bench.
const medicConfig = `[agent]
bus = "user"
interval = "1s"
timeout = "100ms"
jitter = 0.0
state_dir = "%[1]s/state"
status_socket = "%[1]s/medic.sock"
journal_lines = 0
%[4]s

[[check]]
name = "backend"
unit = "%[2]s"
retry_interval = "20ms"
failures = 1
successes = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = "%[3]s"

  [check.remedy]
  action = "restart"
  verify_timeout = "5s"
  max_restarts = 100000
  window = "1m"
  backoff = "0s"
  backoff_max = "0s"
  retry_after = "1s"

  [check.escalate]
  notify = []
  repeat_interval = "0"
  flap_threshold = 0
`

func (m *medicWatcher) writeConfig(triggers string) (string, error) {
	path := filepath.Join(m.dir, "medic.toml")
	conf := fmt.Sprintf(medicConfig, m.dir, backendUnit, m.l.addr, triggers)
	return path, os.WriteFile(path, []byte(conf), 0o600)
}

// configure writes the config with the variant's trigger line and checks
// it with `medic check-config`, falling back as the triggers constants say.
func (m *medicWatcher) configure(ctx context.Context) (string, error) {
	line := triggersPolling
	if m.events {
		line = triggersEvents
	}
	path, err := m.writeConfig(line)
	if err != nil {
		return "", err
	}
	out, err := exec.CommandContext(ctx, m.l.medicBin, "check-config", "-c", path).CombinedOutput()
	if err == nil {
		m.notes = append(m.notes, line)
		return path, nil
	}
	if !strings.Contains(string(out), triggersKey) {
		return "", fmt.Errorf("medic check-config: %s", bytes.TrimSpace(out))
	}
	if m.events {
		first, _, _ := strings.Cut(string(bytes.TrimSpace(out)), "\n")
		return "", fmt.Errorf("%w: medic refuses %s: %s", errNotImplemented, line, first)
	}
	m.notes = append(m.notes, "medic has no "+triggersKey+" option: it only polls")
	return m.writeConfig("")
}

func (m *medicWatcher) start(ctx context.Context, l *lab) error {
	m.l = l
	m.dir = filepath.Join(l.dir, m.name())
	if err := os.MkdirAll(filepath.Join(m.dir, "state"), 0o700); err != nil {
		return err
	}
	path, err := m.configure(ctx)
	if err != nil {
		return err
	}
	m.cmd, err = startChild(l.medicBin, []string{"run", "-c", path, "--log-format", "json"}, l.env(), m.logFile())
	if err != nil {
		return err
	}
	return m.waitHealthy(ctx, time.Time{}, 15*time.Second)
}

func (m *medicWatcher) logFile() string { return filepath.Join(m.dir, "medic.log") }

func (m *medicWatcher) settle(ctx context.Context, recovered time.Time) error {
	return m.waitHealthy(ctx, recovered, 10*time.Second)
}

// waitHealthy polls `medic status --json` until the check is healthy with
// a good probe after since.
func (m *medicWatcher) waitHealthy(ctx context.Context, since time.Time, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		st, err := m.status(ctx)
		if err == nil && st.State == "healthy" && st.LastOK && st.LastProbe.After(since) {
			return nil
		}
		last = fmt.Sprintf("%+v %v", st, err)
		if time.Now().After(deadline) {
			return fmt.Errorf("medic not healthy within %s: %s (log: %s)", timeout, last, m.logFile())
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

// checkStatus is the part of `medic status --json` the bench reads.
type checkStatus struct {
	State     string    `json:"state"`
	LastOK    bool      `json:"last_ok"`
	LastProbe time.Time `json:"last_probe"`
}

func (m *medicWatcher) status(ctx context.Context) (checkStatus, error) {
	out, err := exec.CommandContext(ctx, m.l.medicBin, "status", "--socket", filepath.Join(m.dir, "medic.sock"), "--json").Output()
	if err != nil {
		return checkStatus{}, err
	}
	var r struct {
		Checks []checkStatus `json:"checks"`
	}
	if err := json.Unmarshal(out, &r); err != nil || len(r.Checks) != 1 {
		return checkStatus{}, fmt.Errorf("medic status: %v: %s", err, out)
	}
	return r.Checks[0], nil
}

// stop stops medic and reports how many probes its log says were
// triggered by events, which tells whether the variant was what it claims.
func (m *medicWatcher) stop() []string {
	stopChild(m.cmd)
	if m.cmd == nil {
		return m.notes
	}
	b, _ := os.ReadFile(m.logFile())
	n := bytes.Count(b, []byte("probing now"))
	switch {
	case m.events && n == 0:
		m.notes = append(m.notes, "WARNING: no event-triggered probe in medic's log")
	case !m.events && n > 0:
		m.notes = append(m.notes, fmt.Sprintf("WARNING: %d event-triggered probes in medic's log: polling only was not enforced", n))
	default:
		m.notes = append(m.notes, fmt.Sprintf("%d event-triggered probes", n))
	}
	return m.notes
}

// monitWatcher runs Debian's Monit with `set daemon 1`, restarting the unit
// with systemctl --user.
type monitWatcher struct {
	l         *lab
	dir       string
	cmd       *exec.Cmd
	recovered int // "succeeded" lines seen in monit's log
}

func (*monitWatcher) name() string           { return "monit" }
func (*monitWatcher) restartSetting() string { return "no" }
func (*monitWatcher) period() time.Duration  { return time.Second }

// monitHeader is the global part of every monitrc the bench writes.
const monitHeader = `set daemon 1
set logfile %[1]s/monit.log
set pidfile %[1]s/monit.pid
set idfile %[1]s/monit.id
set statefile %[1]s/monit.state
`

// writeMonitrc writes dir/monitrc (Monit wants mode 0600) with body.
func writeMonitrc(dir, body string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, "monitrc")
	return path, os.WriteFile(path, []byte(fmt.Sprintf(monitHeader, dir)+body), 0o600)
}

// startMonit runs `monit -I -c rc` (foreground) with output to dir/monit.out.
func startMonit(dir, rc string) (*exec.Cmd, error) {
	return startChild("monit", []string{"-I", "-c", rc}, os.Environ(), filepath.Join(dir, "monit.out"))
}

func (w *monitWatcher) start(ctx context.Context, l *lab) error {
	w.l = l
	w.dir = filepath.Join(l.dir, "monit")
	// Monit runs exec actions with a minimal environment: pass the user
	// manager's variables explicitly.
	restart := fmt.Sprintf("/usr/bin/env XDG_RUNTIME_DIR=%s DBUS_SESSION_BUS_ADDRESS=%s /bin/systemctl --user restart %s",
		l.envValue("XDG_RUNTIME_DIR"), l.envValue("DBUS_SESSION_BUS_ADDRESS"), backendUnit)
	body := fmt.Sprintf("\ncheck host backend with address 127.0.0.1\n  if failed port %d type tcp then exec %q\n", l.port, restart)
	rc, err := writeMonitrc(w.dir, body)
	if err != nil {
		return err
	}
	if w.cmd, err = startMonit(w.dir, rc); err != nil {
		return err
	}
	// Two cycles: Monit has seen the backend up.
	return sleepCtx(ctx, 2500*time.Millisecond)
}

// settle waits until Monit logged that the port answers again: until then
// it would not act on the next failure (it acts on state changes).
func (w *monitWatcher) settle(ctx context.Context, _ time.Time) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, _ := os.ReadFile(filepath.Join(w.dir, "monit.log"))
		if n := bytes.Count(b, []byte("succeeded")); n > w.recovered {
			w.recovered = n
			return nil
		}
		if time.Now().After(deadline) {
			return nil // Monit may not log every recovery; go on
		}
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
	}
}

func (w *monitWatcher) stop() []string {
	stopChild(w.cmd)
	return []string{"set daemon 1; exec systemctl --user restart"}
}

// cronWatcher is the field's check_backend.sh as a loop at its cron period:
// nc -z || systemctl --user restart.
type cronWatcher struct {
	every time.Duration
	cmd   *exec.Cmd
	note  string
}

func (*cronWatcher) name() string                            { return "cron" }
func (*cronWatcher) restartSetting() string                  { return "no" }
func (c *cronWatcher) period() time.Duration                 { return c.every }
func (*cronWatcher) settle(context.Context, time.Time) error { return nil }

func (c *cronWatcher) start(ctx context.Context, l *lab) error {
	probe := fmt.Sprintf("nc -z -w 5 127.0.0.1 %d 2>/dev/null", l.port)
	c.note = "nc -z || systemctl --user restart, every " + c.every.String()
	if _, err := exec.LookPath("nc"); err != nil {
		probe = fmt.Sprintf("(exec 3<>/dev/tcp/127.0.0.1/%d) 2>/dev/null", l.port)
		c.note = "bash /dev/tcp (no nc) || systemctl --user restart, every " + c.every.String()
	}
	script := fmt.Sprintf("while true; do %s || systemctl --user restart %s; sleep %g; done",
		probe, backendUnit, c.every.Seconds())
	var err error
	c.cmd, err = startChild("bash", []string{"-c", script}, l.env(), filepath.Join(l.dir, "cron.log"))
	return err
}

func (c *cronWatcher) stop() []string {
	stopChild(c.cmd)
	return []string{c.note}
}
