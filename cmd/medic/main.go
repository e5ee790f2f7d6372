// Command medic is a watchdog agent: it probes backends, restarts their
// systemd units over D-Bus when they stop answering, verifies the fix and
// escalates when it did not hold.
package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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
	root.AddCommand(newRunCmd(), newCheckConfigCmd(), newNotifyCmd(), newOutboxCmd(), newStatusCmd(), newReloadCmd(), newPauseCmd(), newResumeCmd(), newDiagnoseCmd(), newVersionCmd(), newDemoCmd(), newDemoBackendCmd())
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

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print medic's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), "medic", version)
		},
	}
}
