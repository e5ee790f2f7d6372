package main

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
)

// socketFlags are the flags that find the running medic's status socket.
type socketFlags struct{ file, socket string }

func (f *socketFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVarP(&f.file, "config", "c", defaultConfig, "configuration file (for status_socket)")
	cmd.Flags().StringVar(&f.socket, "socket", "", "status socket path (overrides the configuration)")
}

// path returns the status socket of the running medic.
func (f *socketFlags) path() (string, error) {
	if f.socket != "" {
		return f.socket, nil
	}
	cfg, err := config.Load(f.file)
	if err != nil {
		return "", err
	}
	if cfg.Agent.StatusSocket == "" {
		return "", fmt.Errorf("%s turns the status socket off (status_socket = \"\")", f.file)
	}
	return cfg.Agent.StatusSocket, nil
}

func newReloadCmd() *cobra.Command {
	var sf socketFlags
	cmd := &cobra.Command{
		Use:   "reload",
		Short: "Make the running medic reload its configuration, and wait for the outcome",
		Long: `reload asks the running medic to read its configuration file again. It
returns when the reload is done: exit 0 when the new configuration is in
force, 1 with every problem (file:line: key) when it was refused and the
running configuration stays. Checks that did not change keep their state.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			path, err := sf.path()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), time.Minute)
			defer cancel()
			if _, err := agent.Control(ctx, path, agent.ReloadPath, nil); err != nil {
				fmt.Fprintln(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			fmt.Fprintln(cmd.OutOrStdout(), "configuration reloaded")
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}

func newPauseCmd() *cobra.Command {
	var (
		sf     socketFlags
		dur    time.Duration
		reason string
	)
	cmd := &cobra.Command{
		Use:   "pause CHECK",
		Short: "Stop remediating a check for a while (maintenance); it is still probed",
		Long: `pause stops medic from restarting CHECK's unit until --for has passed or
` + "`medic resume CHECK`" + `. The check is still probed and shown in status; the pause
is recorded in state_dir, so it survives a restart of medic, and alerts say
the check is paused.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := sf.path()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			r, err := agent.Control(ctx, path, agent.PausePath, agent.PauseRequest{Check: args[0], For: dur.String(), Reason: reason})
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: remediation paused until %s\n", args[0], r.Until.Local().Format(time.RFC3339))
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().DurationVar(&dur, "for", 30*time.Minute, "how long the pause lasts")
	cmd.Flags().StringVar(&reason, "reason", "", "why, shown in status and alerts")
	return cmd
}

func newResumeCmd() *cobra.Command {
	var sf socketFlags
	cmd := &cobra.Command{
		Use:   "resume CHECK",
		Short: "End a pause: remediate CHECK again (at once if it is failing)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			path, err := sf.path()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			if _, err := agent.Control(ctx, path, agent.ResumePath, map[string]string{"check": args[0]}); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: remediation resumed\n", args[0])
			return nil
		},
	}
	sf.add(cmd)
	return cmd
}
