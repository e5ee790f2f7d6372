package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/termsafe"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/statuspage"
)

func newStatusCmd() *cobra.Command {
	var (
		sf     socketFlags
		asJSON bool
		wide   bool
	)
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the state of every check of the running medic, with the diagnosis of failing ones",
		Long: `status asks the running medic over its status socket ([agent] status_socket,
or --socket) and prints one line per check, then for each failing check its
diagnosis: the cause, the finding, the fix and the checklist. It exits 1 when
a check is not healthy.

The table fits the terminal: on a narrow one it leaves out INCIDENT, BUDGET
LEFT, FAILS, LATENCY and RESTARTS, in that order, then shortens LAST PROBE,
CAUSE and UNIT (ending them with an ellipsis), then leaves out UNIT and CAUSE; CHECK,
STATE and SINCE always stay. --wide prints every column in full. When the
output is not a terminal the table is not cut, unless $COLUMNS is set.
STATE is coloured on a terminal (red: failing, gave_up; yellow: restarting,
verifying, paused; green: healthy), never when $NO_COLOR is set. SINCE is
how long the check has been in its state (since medic started, for a check
whose state never changed); LAST PROBE is "ok" or the problem, e.g.
"127.0.0.1:8080 connection refused".

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
				return socketError("read status", socket, err)
			}
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				return enc.Encode(r)
			}
			if !printStatusWith(out, r, resolveStatusOptions(out, wide, os.Getenv, time.Now())) {
				return exitCode(1)
			}
			return nil
		},
	}
	sf.add(cmd)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	cmd.Flags().BoolVar(&wide, "wide", false, "print every column, however wide the terminal")
	return cmd
}

// printStatus prints the report for people, every column, without
// colour; it reports whether every check is healthy.
func printStatus(out io.Writer, r *agent.Report) bool {
	return printStatusWith(out, r, statusOptions{now: time.Now()})
}

// printStatusWith prints the report for people as opts say (width,
// colour); it reports whether every check is healthy. Every string of the
// report is printed through esc (or termsafe.EscapeLines for the reload's
// problems): a backend's reason phrase or a pause reason cannot act on the
// terminal.
func printStatusWith(out io.Writer, r *agent.Report, opts statusOptions) bool {
	fmt.Fprintf(out, "medic %s on %s, up %s\n\n", esc(r.Version), esc(r.Host), statuspage.CompactDuration(opts.now.Sub(r.Started)))
	rows := make([][]string, len(r.Checks))
	states := make([]string, len(r.Checks))
	healthy := true
	for i, c := range r.Checks {
		if c.State != "healthy" {
			healthy = false
		}
		// A check whose state never changed has been in it since medic
		// started.
		since := c.Since
		if since.IsZero() {
			since = r.Started
		}
		state := c.State
		states[i] = c.State
		if c.Paused != nil {
			state += " (paused)"
			states[i] = "paused"
		}
		cause, incident := "-", "-"
		if c.Diagnosis != nil && c.Diagnosis.Primary.Cause != "" {
			cause = string(c.Diagnosis.Primary.Cause)
		}
		if c.Incident != "" {
			incident = c.Incident
		}
		rows[i] = []string{esc(c.Check), esc(orDash(c.Unit)), esc(state), statuspage.CompactDuration(opts.now.Sub(since)), esc(lastProbe(c)),
			c.LastLatency.Round(100 * time.Microsecond).String(), strconv.Itoa(c.Failures), strconv.Itoa(c.RestartsInWindow),
			strconv.Itoa(c.BudgetLeft), esc(incident), esc(cause)}
	}
	printTable(out, statusColumns, rows, opts, func(row, col int) string {
		if statusColumns[col].head != "STATE" || !opts.color {
			return ""
		}
		return stateColor(states[row])
	})
	if r.ReloadError != "" {
		fmt.Fprintf(out, "\nthe last reload failed, the running configuration stays:\n%s\n", termsafe.EscapeLines(r.ReloadError))
	}
	if r.BusError != "" {
		fmt.Fprintf(out, "\nsystemd's bus cannot be reached; remediation waits for it (medic keeps redialing):\n%s\n", termsafe.EscapeLines(r.BusError))
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

// lastProbe tells the outcome of the check's last probe round: "ok", "not
// yet probed", or the problem, which names the target once.
func lastProbe(c agent.Status) string {
	switch {
	case c.LastProbe.IsZero():
		return "not yet probed"
	case c.LastOK:
		return "ok"
	}
	return probe.ShortProblem(c.LastError)
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
