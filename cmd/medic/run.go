package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/journal"
	"github.com/medic-watchdog/medic/notify/outbox"
	"github.com/medic-watchdog/medic/remedy"
)

const defaultConfig = "/etc/medic/medic.toml"

func newRunCmd() *cobra.Command {
	var (
		file      string
		logFormat string
		debug     bool
	)
	cmd := &cobra.Command{
		Use:   "run",
		Short: "Run the agent until SIGINT or SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
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
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runAgent(ctx, cfg, log)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	cmd.Flags().StringVar(&logFormat, "log-format", "json", "log format: json or console")
	cmd.Flags().BoolVar(&debug, "debug", false, "log every probe")
	return cmd
}

// runAgent connects to systemd and runs the agent on cfg until ctx ends.
func runAgent(ctx context.Context, cfg *config.Config, log *zap.Logger) error {
	units := make([]string, 0, len(cfg.Checks))
	for _, c := range cfg.Checks {
		if c.Unit != "" && c.Remedy.Action != "none" {
			units = append(units, c.Unit)
		}
	}
	host, _ := os.Hostname()
	notifiers, err := agent.BuildNotifiers(cfg, host, log)
	if err != nil {
		return err
	}
	ob, err := outbox.Open(outbox.Options{
		Dir:        filepath.Join(cfg.Agent.StateDir, "outbox"),
		MaxPending: cfg.Agent.OutboxMax,
		Log:        log.Named("outbox"),
	}, notifiers)
	if err != nil {
		return err
	}
	rem := remedy.New(ctx, remedy.Dial(cfg.Agent.Bus), units, log.Named("remedy"))
	defer rem.Close()
	a, err := agent.New(cfg, log, rem, ob, agent.WithVersion(version),
		agent.WithJournal(journal.Reader{User: cfg.Agent.Bus == "user"}.Tail))
	if err != nil {
		return err
	}

	var wg sync.WaitGroup
	if path := cfg.Agent.StatusSocket; path != "" {
		ln, err := agent.ListenStatus(path)
		if err != nil {
			return err
		}
		started := time.Now()
		wg.Go(func() {
			err := agent.ServeStatus(ctx, ln, func() agent.Report {
				return agent.Report{Version: version, Host: host, Started: started, Checks: a.Statuses(), Outbox: ob.Stats()}
			})
			if err != nil {
				log.Error("status socket stopped", zap.Error(err))
			}
		})
	}
	for _, n := range notifiers {
		if r, ok := n.(agent.Runner); ok {
			wg.Go(func() { r.Run(ctx) })
		}
	}
	wg.Go(func() {
		if err := ob.Run(ctx); err != nil {
			log.Error("outbox stopped", zap.Error(err))
		}
	})
	err = a.Run(ctx)
	wg.Wait()
	// Deliver what is still pending, within what systemd's TimeoutStopSec
	// (90s by default) leaves us.
	fctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	if ferr := ob.Flush(fctx); ferr != nil {
		log.Warn("messages left in the outbox; they are sent at the next start", zap.Error(ferr))
	}
	return err
}

// flushTimeout bounds delivering the outbox at shutdown.
const flushTimeout = 10 * time.Second

// newLogger builds the process logger: JSON lines for journald and log
// shippers, or a console format for people.
func newLogger(format string, debug bool) (*zap.Logger, error) {
	var zc zap.Config
	switch format {
	case "json":
		zc = zap.NewProductionConfig()
		zc.EncoderConfig.EncodeTime = zapcore.RFC3339NanoTimeEncoder
	case "console":
		zc = zap.NewDevelopmentConfig()
		zc.DisableStacktrace = true
		zc.EncoderConfig.EncodeTime = zapcore.TimeEncoderOfLayout("15:04:05.000")
	default:
		return nil, fmt.Errorf("parse --log-format %q: want json or console", format)
	}
	zc.Sampling = nil // never drop a line of a watchdog's log
	zc.DisableCaller = true
	zc.Level = zap.NewAtomicLevelAt(zap.InfoLevel)
	if debug {
		zc.Level.SetLevel(zap.DebugLevel)
	}
	return zc.Build()
}

func newCheckConfigCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Load and validate the configuration, print every problem, exit 1 if any",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if _, err := config.Load(file); err != nil {
				printConfigErrors(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration OK\n", file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	return cmd
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
