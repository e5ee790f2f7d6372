package main

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/internal/testbackend"
	"github.com/medic-watchdog/medic/internal/usermanager"
	"github.com/medic-watchdog/medic/logging"
)

//go:embed demo.toml
var demoConfig string

const demoUnit = "medic-demo-backend.service"

func newDemoCmd() *cobra.Command {
	var verbose bool
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Start a demo backend unit on a user manager, kill it, and show medic healing it",
		Long: `demo runs medic's main job end to end on an embedded configuration.

It uses the running systemd user manager, or boots a private one (as root,
in its own mount namespace and cgroup) when none is running; starts a demo
HTTP backend as a unit with Restart=no; runs medic against it; kills the
backend with SIGKILL; and prints what medic did, with timings, including the
time from the kill to the port answering again.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runDemo(ctx, cmd.OutOrStdout(), verbose)
		},
	}
	cmd.Flags().BoolVarP(&verbose, "verbose", "v", false, "also print medic's own log")
	return cmd
}

func newDemoBackendCmd() *cobra.Command {
	var listen string
	cmd := &cobra.Command{
		Use:    "demo-backend",
		Short:  "Serve the demo backend (GET /health answers 200 ok)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return testbackend.Serve(ctx, listen)
		},
	}
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:8080", "address to listen on")
	return cmd
}

func runDemo(ctx context.Context, out io.Writer, verbose bool) (err error) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	start := time.Now()

	m, err := usermanager.Detect(ctx)
	if err != nil {
		return err
	}
	if m != nil {
		say("using the running systemd user manager (%s)", m.BusAddress())
	} else {
		say("no systemd user manager is running: booting a private one")
		m, err = usermanager.Boot(ctx, usermanager.Options{})
		if err != nil {
			return fmt.Errorf("boot a systemd user manager: %w", err)
		}
		say("  booted systemd --user (pid %d) in %s", m.PID, m.BootDuration.Round(time.Millisecond))
	}
	defer func() { err = errors.Join(err, m.Stop()) }()

	addr, err := freePort()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find medic's executable: %w", err)
	}
	unit := fmt.Sprintf(`[Unit]
Description=medic demo backend
StartLimitIntervalSec=0

[Service]
Type=exec
ExecStart=%s demo-backend --listen %s
Restart=no
`, self, addr)
	if err := m.LinkUnit(ctx, demoUnit, unit); err != nil {
		return err
	}
	if _, err := m.Systemctl(ctx, "start", demoUnit); err != nil {
		return fmt.Errorf("start %s: %w", demoUnit, err)
	}
	defer func() { _, _ = m.Systemctl(context.WithoutCancel(ctx), "stop", demoUnit) }()
	if err := waitPort(ctx, addr, 10*time.Second); err != nil {
		return err
	}
	pid, _ := m.Systemctl(ctx, "show", "-p", "MainPID", "--value", demoUnit)
	say("started %s: backend pid %s answering on http://%s/health", demoUnit, strings.TrimSpace(pid), addr)

	state, err := os.MkdirTemp("", "medic-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(state)
	text := strings.NewReplacer("{{ADDR}}", addr, "{{UNIT}}", demoUnit, "{{STATE}}", state).Replace(demoConfig)
	cfg, err := config.Parse([]byte(text), "demo.toml")
	if err != nil {
		return fmt.Errorf("embedded demo configuration: %w", err)
	}
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		if err := os.Setenv(k, v); err != nil {
			return err
		}
	}

	obsCore, logs := observer.New(zapcore.InfoLevel)
	core := obsCore
	if verbose {
		enc := zap.NewDevelopmentEncoderConfig()
		enc.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
		core = zapcore.NewTee(obsCore, zapcore.NewCore(zapcore.NewConsoleEncoder(enc), zapcore.AddSync(out), zapcore.InfoLevel))
	}
	log := zap.New(core)

	actx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- runAgent(actx, cfg, log) }()
	defer func() {
		cancel()
		err = errors.Join(err, <-done)
	}()
	say("medic is watching %s: tcp and http probes every %s, %s after a failed probe",
		addr, cfg.Checks[0].Interval.Duration, cfg.Checks[0].RetryInterval.Duration)

	time.Sleep(1500 * time.Millisecond) // let medic see the healthy backend first
	killed := time.Now()
	if _, err := m.Systemctl(ctx, "kill", "-s", "KILL", demoUnit); err != nil {
		return fmt.Errorf("kill %s: %w", demoUnit, err)
	}
	say("\n%s  killed the backend with SIGKILL", stamp(killed, killed))

	// Poll the port like a client would, to measure when it answers again.
	var back time.Time
	down := false
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			c.Close()
			if down {
				back = time.Now()
				break
			}
		} else {
			down = true
		}
		time.Sleep(2 * time.Millisecond)
	}
	// Wait for medic to verify.
	verified := time.Time{}
	for end := time.Now().Add(15 * time.Second); time.Now().Before(end) && verified.IsZero(); time.Sleep(20 * time.Millisecond) {
		for _, e := range logs.FilterField(zap.String(logging.EventField, "state change")).All() {
			if e.ContextMap()["to"] == "healthy" && e.Time.After(killed) {
				verified = e.Time
			}
		}
	}

	type line struct {
		at   time.Time
		text string
	}
	var timeline []line
	for _, e := range logs.All() {
		if e.Time.Before(killed) {
			continue
		}
		f := e.ContextMap()
		var text string
		switch f[logging.EventField] {
		case "probing now":
			text = fmt.Sprintf("probing now, triggered by: %v", f["trigger"])
		case "probe failed":
			text = fmt.Sprintf("probe failed: %v %v", f["target"], f["class"])
		case "state change":
			text = fmt.Sprintf("%v → %v: %v", f["from"], f["to"], f["reason"])
		case "remedy finished":
			text = fmt.Sprintf("systemd restart job %v after %vms; unit %v/%v, main pid %v",
				f["job_result"], f["job_ms"], f["active_state"], f["sub_state"], f["main_pid"])
		case "diagnosis":
			text = fmt.Sprintf("diagnosis: %v: %v", f["cause"], f["finding"])
		case "remedy not carried out":
			text = fmt.Sprintf("remedy not carried out: %v", f["error"])
		default:
			continue
		}
		timeline = append(timeline, line{e.Time, text})
	}
	if back.IsZero() {
		return fmt.Errorf("the backend did not answer again within 30s of the kill")
	}
	timeline = append(timeline, line{back, fmt.Sprintf("port %s answers again (seen by an outside client)", addr)})
	sort.SliceStable(timeline, func(i, j int) bool { return timeline[i].at.Before(timeline[j].at) })
	for _, l := range timeline {
		say("%s  %s", stamp(l.at, killed), l.text)
	}
	if verified.IsZero() {
		return fmt.Errorf("medic did not verify the backend within 15s")
	}
	say("\nkill → port answering again: %s (MTTR); kill → verified by medic: %s; demo took %s",
		back.Sub(killed).Round(time.Millisecond), verified.Sub(killed).Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	return nil
}

func stamp(t, zero time.Time) string {
	return fmt.Sprintf("%s  +%6.0fms", t.Format("15:04:05.000"), float64(t.Sub(zero).Microseconds())/1000)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

func waitPort(ctx context.Context, addr string, d time.Duration) error {
	end := time.Now().Add(d)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(end) || ctx.Err() != nil {
			return fmt.Errorf("wait for %s to answer: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
