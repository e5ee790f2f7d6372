package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/termsafe"
)

func newStatusCmd() *cobra.Command {
	var (
		sf     socketFlags
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the state of every check of the running medic, with the diagnosis of failing ones",
		Long: `status asks the running medic over its status socket ([agent] status_socket,
or --socket) and prints one line per check, then for each failing check its
diagnosis: the cause, the finding, the fix and the checklist. It exits 1 when
a check is not healthy.

When the configuration file cannot be loaded, status still asks the running
medic: it says on stderr what is wrong with the file (file:line) and which
socket it uses instead, the one the running medic recorded in
$RUNTIME_DIRECTORY/status-socket (/run/medic/status-socket under
medic.service) or else the default /run/medic/medic.sock. reload, pause and
resume find the socket the same way.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			socket, err := sf.path(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 5*time.Second)
			defer cancel()
			r, err := agent.FetchStatus(ctx, socket)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			if !printStatus(out, r) {
				return exitCode(1)
			}
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

// printStatus prints the report for people; it reports whether every check
// is healthy. Every string of the report is printed through esc (or
// termsafe.EscapeLines for the reload's problems): a backend's reason
// phrase or a pause reason cannot act on the terminal.
func printStatus(out io.Writer, r *agent.Report) bool {
	fmt.Fprintf(out, "medic %s on %s, up %s\n\n", esc(r.Version), esc(r.Host), time.Since(r.Started).Round(time.Second))
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tUNIT\tSTATE\tSINCE\tLAST PROBE\tLATENCY\tFAILS\tRESTARTS\tBUDGET LEFT\tINCIDENT\tCAUSE")
	healthy := true
	for _, c := range r.Checks {
		since := "-"
		if !c.Since.IsZero() {
			since = time.Since(c.Since).Round(time.Second).String() + " ago"
		}
		last := "ok"
		if !c.LastOK {
			last = c.LastError
		}
		if c.LastProbe.IsZero() {
			last = "not yet probed"
		}
		if c.State != "healthy" {
			healthy = false
		}
		state := c.State
		if c.Paused != nil {
			state += " (paused)"
		}
		cause, incident := "-", "-"
		if c.Diagnosis != nil && c.Diagnosis.Primary.Cause != "" {
			cause = string(c.Diagnosis.Primary.Cause)
		}
		if c.Incident != "" {
			incident = c.Incident
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\n", esc(c.Check), esc(orDash(c.Unit)), esc(state), since, esc(last),
			c.LastLatency.Round(100*time.Microsecond), c.Failures, c.RestartsInWindow, c.BudgetLeft, esc(incident), esc(cause))
	}
	w.Flush()
	if r.ReloadError != "" {
		fmt.Fprintf(out, "\nthe last reload failed, the running configuration stays:\n%s\n", termsafe.EscapeLines(r.ReloadError))
	}
	for _, c := range r.Checks {
		if p := c.Paused; p != nil {
			fmt.Fprintf(out, "\n%s: remediation paused until %s", esc(c.Check), p.Until.Local().Format(time.RFC3339))
			if p.Reason != "" {
				fmt.Fprintf(out, " (%s)", esc(p.Reason))
			}
			fmt.Fprintln(out)
		}
	}
	for _, c := range r.Checks {
		if c.Diagnosis != nil && c.Diagnosis.Primary.Cause != "" {
			fmt.Fprintf(out, "\n%s (%s):\n", esc(c.Check), esc(c.Incident))
			printDiagnosis(out, c.Diagnosis)
		}
	}
	for _, o := range r.Outbox {
		if o.Pending > 0 || o.Failed > 0 {
			fmt.Fprintf(out, "\noutbox %s: %d pending, %d failed; last error: %s\n", esc(o.Notifier), o.Pending, o.Failed, esc(o.LastError))
		}
	}
	return healthy
}

// printDiagnosis prints the cause, finding, fix and checklist, every
// string escaped (esc).
func printDiagnosis(out io.Writer, dg *diagnose.Diagnosis) {
	if dg.Primary.Cause != "" {
		fmt.Fprintf(out, "  cause:   %s\n  finding: %s\n", esc(string(dg.Primary.Cause)), esc(dg.Primary.Summary))
		if dg.Primary.Hint != "" {
			fmt.Fprintf(out, "  fix:     %s\n", esc(dg.Primary.Hint))
		}
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, it := range dg.Checklist {
		fmt.Fprintf(w, "  %s %s\t%s\n", esc(it.Status.Mark()), esc(it.Name), esc(it.Evidence))
	}
	w.Flush()
	for _, f := range dg.Secondary {
		fmt.Fprintf(out, "  also: %s: %s", esc(string(f.Cause)), esc(f.Summary))
		if f.Hint != "" {
			fmt.Fprintf(out, " (fix: %s)", esc(f.Hint))
		}
		fmt.Fprintln(out)
	}
	if len(dg.Unavailable) > 0 {
		fmt.Fprintf(out, "  not available: %s\n", esc(strings.Join(dg.Unavailable, "; ")))
	}
}

// esc escapes the control characters of s for a terminal: text from
// backends, peers and the status socket is printed through it.
func esc(s string) string { return termsafe.Escape(s) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
