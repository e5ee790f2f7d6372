package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/history"
)

func newIncidentsCmd() *cobra.Command {
	var (
		file   string
		since  sinceFlag
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "incidents [CHECK]",
		Short: "List the incidents that ended, newest first: cause, time to recovery, restarts, alerts",
		Long: `incidents reads the incident history in <state_dir>/incidents without
changing it and prints one line per incident, newest first: the check and
its unit, when the incident opened, when it resolved (or "gave up" when medic
gave up on it and it has not resolved since), the time to recovery (from the
first failed probe to the check healthy again), the restarts medic issued,
the diagnosed cause, whether alerts were sent (escalated) or not (quiet), and
the incident's ID for "medic incidents show ID".

medic keeps an incident when it resolves and when medic gives up on it
([agent] incident_history and incident_retention bound how many and how
long). The files are readable by medic's user and root only, like the rest of
state_dir: run it as root or with sudo -u medic. It works whether medic runs
or not. A file it cannot read is skipped with a warning.

With CHECK, only that check's incidents; with --since, only those that ended
(resolved, or medic gave up) within that last period ("7d", "36h", "90m").`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := historyDir(cmd, file)
			if err != nil {
				return err
			}
			recs, bad, err := history.List(dir)
			warnSkippedIncidents(cmd.ErrOrStderr(), bad)
			if err != nil {
				return historyErr(err)
			}
			recs = filterIncidents(recs, args, time.Duration(since), time.Now())
			if asJSON {
				if recs == nil {
					recs = []history.Record{}
				}
				return writeIncidentJSON(cmd.OutOrStdout(), recs)
			}
			return printIncidents(cmd.OutOrStdout(), recs)
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	cmd.Flags().Var(&since, "since", `only incidents that ended within this last period: a Go duration ("36h") or days ("7d")`)
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the records as a JSON array")
	cmd.AddCommand(newIncidentsShowCmd())
	return cmd
}

func newIncidentsShowCmd() *cobra.Command {
	var (
		file   string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "show ID",
		Short: "Print one incident: its timeline and its diagnosis",
		Long: `show prints one incident of the history (IDs as "medic incidents" lists
them): what failed, when it opened and resolved, the time to recovery, the
restarts and alerts, its timeline and the diagnosis with its checklist.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := historyDir(cmd, file)
			if err != nil {
				return err
			}
			r, err := history.Get(dir, args[0])
			if errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("incident %s: not in the history (%s)", esc(args[0]), dir)
			}
			if err != nil {
				return historyErr(err)
			}
			if asJSON {
				return writeIncidentJSON(cmd.OutOrStdout(), r)
			}
			printIncident(cmd.OutOrStdout(), &r)
			return nil
		},
	}
	cmd.Flags().StringVarP(&file, "config", "c", defaultConfig, "configuration file")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the record as JSON")
	return cmd
}

// historyDir loads the configuration and returns its history directory.
func historyDir(cmd *cobra.Command, file string) (string, error) {
	cfg, err := config.Load(file)
	if err != nil {
		printConfigErrors(cmd.ErrOrStderr(), err)
		return "", exitCode(1)
	}
	return history.Dir(cfg.Agent.StateDir), nil
}

// historyErr adds what to do to a permission error.
func historyErr(err error) error {
	if errors.Is(err, fs.ErrPermission) {
		return fmt.Errorf("%w (the history is medic's: run as root or with sudo -u medic)", err)
	}
	return err
}

func warnSkippedIncidents(w io.Writer, bad []history.Corrupt) {
	for _, c := range bad {
		fmt.Fprintf(w, "medic: warning: skipped %s: %s\n", esc(c.Path), esc(c.Err.Error()))
	}
}

func writeIncidentJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// filterIncidents keeps the records of the check named in args (if any)
// that ended (resolved, or medic gave up) after now − since (all when
// since is 0).
func filterIncidents(recs []history.Record, args []string, since time.Duration, now time.Time) []history.Record {
	var out []history.Record
	from := now.Add(-since)
	for _, r := range recs {
		if len(args) == 1 && r.Check != args[0] || since > 0 && r.Ended().Before(from) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// printIncidents prints one line per record; text from records is escaped.
func printIncidents(out io.Writer, recs []history.Record) error {
	if len(recs) == 0 {
		fmt.Fprintln(out, "no incidents")
		return nil
	}
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CHECK\tUNIT\tOPENED\tRESOLVED\tTTR\tRESTARTS\tCAUSE\tALERTS\tID")
	for i := range recs {
		r := &recs[i]
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\n", esc(r.Check), esc(orDash(r.Unit)),
			incidentTime(r.Since), incidentResolved(r), incidentTTR(r), r.Restarts, esc(orDash(r.Cause)), incidentAlerts(r), esc(r.ID))
	}
	return w.Flush()
}

// printIncident prints one record for people: its facts, timeline and
// diagnosis (as medic status prints a failing check's).
func printIncident(out io.Writer, r *history.Record) {
	fmt.Fprintf(out, "incident %s\n", esc(r.ID))
	w := tabwriter.NewWriter(out, 0, 4, 1, ' ', 0)
	fmt.Fprintf(w, "  check:\t%s (%s) on %s\n", esc(r.Check), esc(orDash(r.Unit)), esc(orDash(r.Host)))
	fmt.Fprintf(w, "  target:\t%s\n", esc(orDash(r.Target)))
	fmt.Fprintf(w, "  problem:\t%s\n", esc(orDash(r.Problem)))
	fmt.Fprintf(w, "  opened:\t%s\n", incidentTime(r.Since))
	switch {
	case r.Outcome == history.Resolved:
		fmt.Fprintf(w, "  resolved:\t%s, time to recovery %s\n", incidentTime(r.ResolvedAt), incidentTTR(r))
	default:
		fmt.Fprintf(w, "  resolved:\tnot when recorded (%s)\n", incidentTime(r.Recorded))
	}
	if !r.GaveUpAt.IsZero() {
		fmt.Fprintf(w, "  gave up:\t%s\n", incidentTime(r.GaveUpAt))
	}
	fmt.Fprintf(w, "  restarts:\t%d\n", r.Restarts)
	what := "quiet (no alert sent)"
	if r.Escalated {
		what = "escalated (alerts sent)"
	}
	fmt.Fprintf(w, "  alerts:\t%s\n", what)
	w.Flush()
	fmt.Fprintln(out, "timeline:")
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, e := range r.Timeline {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", e.At.Local().Format("2006-01-02 15:04:05.000"), esc(e.What), esc(e.Detail))
	}
	w.Flush()
	if r.Diagnosis == nil {
		fmt.Fprintln(out, "diagnosis: none")
		return
	}
	fmt.Fprintln(out, "diagnosis:")
	printDiagnosis(out, r.Diagnosis)
}

func incidentTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func incidentResolved(r *history.Record) string {
	if r.Outcome == history.Resolved {
		return incidentTime(r.ResolvedAt)
	}
	return "gave up"
}

func incidentAlerts(r *history.Record) string {
	if r.Escalated {
		return "escalated"
	}
	return "quiet"
}

// incidentTTR is the time to recovery, to the tenth of a second under a minute
// and to the second above; "-" when not resolved.
func incidentTTR(r *history.Record) string {
	if r.Outcome != history.Resolved {
		return "-"
	}
	d := r.TimeToRecovery()
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return config.Duration{Duration: d.Round(time.Second)}.String()
}

// sinceFlag is a period: a Go duration ("36h", "90m") or a number of
// days ("7d").
type sinceFlag time.Duration

func (f *sinceFlag) String() string {
	if *f == 0 {
		return ""
	}
	return time.Duration(*f).String()
}

func (f *sinceFlag) Type() string { return "duration" }

func (f *sinceFlag) Set(s string) error {
	var d time.Duration
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return fmt.Errorf("invalid period %q: want a number of days (\"7d\") or a duration (\"36h\")", s)
		}
		d = time.Duration(days) * 24 * time.Hour
	} else {
		var err error
		if d, err = time.ParseDuration(s); err != nil {
			return fmt.Errorf("invalid period %q: want a number of days (\"7d\") or a duration (\"36h\")", s)
		}
	}
	if d <= 0 {
		return fmt.Errorf("invalid period %q: must be more than 0", s)
	}
	*f = sinceFlag(d)
	return nil
}
