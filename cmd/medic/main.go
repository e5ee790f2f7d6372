// Command medic is a watchdog agent: it probes backends, restarts their
// systemd units over D-Bus when they stop answering, verifies the fix and
// escalates when it did not hold.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent/config"
)

func main() {
	if err := newRootCmd().Execute(); err != nil {
		var ec exitCode
		if asExit(err, &ec) {
			os.Exit(int(ec))
		}
		fmt.Fprintln(os.Stderr, "medic:", err)
		os.Exit(1)
	}
}

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "medic",
		Short:         "Watchdog agent: probe backends, restart their units over D-Bus, verify, escalate",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	diag := newDiagnoseCmd()
	diag.AddCommand(newDiagnoseNginxCmd())
	root.AddCommand(newRunCmd(), newCheckConfigCmd(), newNotifyCmd(), newOutboxCmd(), newIncidentsCmd(), newStatusCmd(), newReloadCmd(), newPauseCmd(), newResumeCmd(), diag, newVersionCmd(), newDemoCmd(), newDemoBackendCmd())
	root.AddCommand(newPolkitRuleCmd(), newGendocsCmd(), newDiscoverCmd())
	return root
}

// exitCode is an error that carries only a process exit status; its message
// has been printed already.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func asExit(err error, ec *exitCode) bool {
	e, ok := err.(exitCode)
	if ok {
		*ec = e
	}
	return ok
}

func newCheckConfigCmd() *cobra.Command {
	var file string
	cmd := &cobra.Command{
		Use:   "check-config",
		Short: "Load and validate the configuration and the files it names, print every problem, exit 1 if any",
		Long: `check-config loads and validates the configuration file, then reads every
file it names that medic run reads when it starts, the same way: secrets
(password_file, secret_file, password_credential and secret_credential in
$CREDENTIALS_DIRECTORY) and certificates (ca_file of notifiers and probes).
It prints every problem as file:line: key: message and exits 1, or says
"configuration OK". Run it as the user medic runs as (sudo -u medic), or it
may read files that medic cannot.

When $CREDENTIALS_DIRECTORY is not set (medic.service gets it from systemd,
a shell usually does not), credentials are not checked: check-config says so
as a warning and still exits 0.

With bus = "system" and run as root, it then asks polkit, for each unit
medic may remedy, whether user medic may restart (or start) it, and prints
one line each: "polkit: user medic may restart app.service", or a warning
with the medic polkit-rule command that allows it. (polkit answers such
questions only to root.) These lines do not change the exit status.

A configuration without any [[check]] is valid (the file the package
installs is one) but watches nothing: check-config says so, with a warning
on stderr, instead of "configuration OK", and exits 0; medic run starts on
it and logs the same warning.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(file)
			if err == nil {
				var warnings config.Errors
				warnings, err = cfg.CheckFiles()
				printConfigWarnings(cmd.ErrOrStderr(), warnings)
			}
			if err != nil {
				printConfigErrors(cmd.ErrOrStderr(), err)
				return exitCode(1)
			}
			if len(cfg.Checks) == 0 {
				// Valid (a fresh install's file is so), but not what
				// anyone who runs check-config wants to hear as "OK".
				fmt.Fprintf(cmd.ErrOrStderr(), "%s: warning: no [[check]]: medic run starts but has nothing to check; add one [[check]] per backend\n", file)
				fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration valid, but there is nothing to check\n", file)
				return nil
			}
			fmt.Fprintf(cmd.OutOrStdout(), "%s: configuration OK\n", file)
			reportAuthorization(cmd.Context(), cmd.OutOrStdout(), cfg, file)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	return cmd
}

// printConfigWarnings prints one warning a line, as
// "medic.toml:14: notifier[0].password_credential: warning: ...".
func printConfigWarnings(w io.Writer, warnings config.Errors) {
	for _, e := range warnings {
		c := *e
		c.Msg = "warning: " + c.Msg
		fmt.Fprintln(w, c.Error())
	}
}
