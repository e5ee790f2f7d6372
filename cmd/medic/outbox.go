package main

import (
	"fmt"
	"io"
	"path/filepath"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/notify/outbox"
)

func newOutboxCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "outbox",
		Short: "Show the messages waiting in the outbox, per notifier",
		Long: `outbox reads <state_dir>/outbox without changing it and prints, per
notifier, how many messages wait for delivery, how many were rejected for
good (kept in <notifier>/failed/), and the age and last error of the oldest
waiting one.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err != nil {
				printConfigErrors(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			dir := filepath.Join(cfg.Agent.StateDir, "outbox")
			stats, err := outbox.Inspect(dir)
			if err != nil {
				return fmt.Errorf("read outbox %s: %w", dir, err)
			}
			return printOutbox(cmd.OutOrStdout(), stats)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	return cmd
}

// printOutbox prints one line per notifier; the names and errors are
// escaped (esc): an error is a peer's text.
func printOutbox(out io.Writer, stats []outbox.Stat) error {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "NOTIFIER\tPENDING\tFAILED\tOLDEST\tLAST ERROR")
	for _, s := range stats {
		age := "-"
		if !s.OldestPending.IsZero() {
			age = time.Since(s.OldestPending).Round(time.Second).String()
		}
		lastErr := s.LastError
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(w, "%s\t%d\t%d\t%s\t%s\n", esc(s.Notifier), s.Pending, s.Failed, age, esc(lastErr))
	}
	return w.Flush()
}
