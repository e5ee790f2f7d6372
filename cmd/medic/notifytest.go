package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/logging"
	"github.com/medic-watchdog/medic/notify"
)

func newNotifyCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Work with notifiers",
	}
	cmd.AddCommand(newNotifyTestCmd())
	return cmd
}

func newNotifyTestCmd() *cobra.Command {
	var (
		file    string
		only    string
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "test",
		Short: "Send a test message through each notifier and report what happened",
		Long: `test sends one test message through every [[notifier]] of the
configuration (or only --notifier NAME), directly, without the outbox, and
prints per notifier whether it was accepted or the SMTP or HTTP error.
A log notifier writes its line to stderr (under medic run it goes to
medic's log, the journal). It exits 1 when any notifier failed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				printConfigErrors(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			host, _ := os.Hostname()
			// A log notifier writes to medic's log: here, stderr, where
			// whoever runs the test sees its line.
			log, err := logging.New(logging.Options{Format: "console", Stderr: cmd.ErrOrStderr()})
			if err != nil {
				return err
			}
			defer func() { _ = log.Sync() }()
			notifiers, err := agent.BuildNotifiers(cfg, host, log)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			now := time.Now()
			failed, tried := 0, 0
			for _, n := range notifiers {
				if only != "" && n.Name() != only {
					continue
				}
				tried++
				m := testMessage(host, now)
				ctx, cancel := context.WithTimeout(cmd.Context(), timeout)
				start := time.Now()
				retry, err := n.Notify(ctx, m)
				cancel()
				took := time.Since(start).Round(time.Millisecond)
				if err != nil {
					failed++
					kind := "permanent error"
					if retry {
						kind = "temporary error, medic would retry"
					}
					fmt.Fprintf(out, "%-20s FAILED after %s (%s): %v\n", n.Name(), took, kind, err)
					continue
				}
				fmt.Fprintf(out, "%-20s accepted in %s (message %s)\n", n.Name(), took, m.ID)
			}
			if only != "" && tried == 0 {
				return fmt.Errorf("notify test: no notifier named %q in %s", only, file)
			}
			if failed > 0 {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	cmd.Flags().StringVar(&only, "notifier", "", "test only the notifier with this name")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Second, "time each notifier has to accept")
	return cmd
}

// testMessage is a message that belongs to no real incident.
func testMessage(host string, now time.Time) *notify.Message {
	id := fmt.Sprintf("medic-test-%s", now.UTC().Format("20060102T150405.000Z"))
	return &notify.Message{
		ID:      id + ".1",
		Kind:    notify.Test,
		Event:   notify.EventTest,
		At:      now,
		Version: version,
		Incident: notify.Incident{
			ID:       id,
			Check:    "medic-test",
			Host:     host,
			Problem:  "this is a test message from medic notify test",
			Since:    now,
			Timeline: []notify.Entry{{At: now, What: "test", Detail: "sent by medic notify test"}},
		},
	}
}
