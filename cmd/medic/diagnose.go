package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/journal"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
)

func newDiagnoseCmd() *cobra.Command {
	var (
		unit, clientUser, bus string
		timeout               time.Duration
		asJSON                bool
	)
	cmd := &cobra.Command{
		Use:   "diagnose TARGET",
		Short: "Probe TARGET once and say why it does not answer",
		Long: `diagnose is for the person who just saw a 502. TARGET is tcp://host:port,
unix:/path, or an http:// or https:// URL. It probes TARGET once, gathers the
evidence (the unit's state when --unit is given, who listens where, the
socket's permissions, firewall rules) and prints the checklist with the
primary cause and its fix. A bare host:port is taken as tcp://host:port. It
exits 0 when TARGET answers (and, with --unit, the unit is active or
reloading, or idle and socket-activated) and 1
otherwise, also when the unit's state cannot be read.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			spec, err := parseTarget(args[0])
			if err != nil {
				return err
			}
			if spec.Type == probe.TypeUnix {
				// The probe fails when the proxy's user could not
				// connect, as in medic run.
				spec.ClientUser = clientUser
			}
			p, err := probe.New(spec)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), timeout+10*time.Second)
			defer cancel()
			res := p.Probe(ctx, timeout)
			in := diagnose.Input{Spec: spec, Result: res, ClientUser: clientUser}
			if unit != "" {
				rem := remedy.New(ctx, remedy.Dial(bus), nil, zap.NewNop())
				s, err := rem.State(ctx, unit)
				rem.Close()
				if err != nil {
					in.UnitName, in.UnitErr = unit, fmt.Errorf("read its state over the %s bus: %w", bus, err)
				} else {
					in.Unit = &s
					// The journal says why a unit failed ("address
					// already in use"); unreadable, it is only missing.
					in.Journal, _ = journal.Reader{User: bus == "user"}.Tail(ctx, unit, diagnoseJournalLines)
				}
			}
			dg := diagnose.Diagnose(ctx, in)
			out := cmd.OutOrStdout()
			if asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(struct {
					OK bool `json:"ok"`
					*diagnose.Diagnosis
				}{res.OK, &dg}); err != nil {
					return err
				}
			} else {
				printProbeDiagnosis(out, res, &dg)
			}
			// With --unit, TARGET is healthy only when the unit is
			// active too: a probe that passes while the unit is down
			// reaches someone else (another process on its port).
			if !res.OK || (unit != "" && (in.Unit == nil || !in.Unit.Serving())) {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&unit, "unit", "", "the systemd unit that should serve TARGET")
	cmd.Flags().StringVar(&clientUser, "client-user", diagnose.DefaultClientUser, "the user the proxy connects as (for unix sockets)")
	cmd.Flags().StringVar(&bus, "bus", "system", "systemd bus for --unit: system or user")
	cmd.Flags().DurationVar(&timeout, "timeout", 2*time.Second, "probe timeout")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the diagnosis as JSON")
	return cmd
}

// diagnoseJournalLines is how many of the unit's last journal lines
// diagnose reads.
const diagnoseJournalLines = 20

// printProbeDiagnosis prints what one probe found and its diagnosis for
// people, every string escaped (esc): the reason phrase and the error text
// come from the target.
func printProbeDiagnosis(out io.Writer, res probe.Result, dg *diagnose.Diagnosis) {
	if res.OK {
		fmt.Fprintf(out, "%s answers (%s)\n", esc(res.Target), res.Duration.Round(time.Millisecond))
	} else {
		fmt.Fprintf(out, "%s\n", esc(res.Problem()))
	}
	printDiagnosis(out, dg)
}

// parseTarget turns tcp://host:port, a bare host:port ("127.0.0.1:8080",
// "[::1]:80", "localhost:8080"), unix:/path or an http(s) URL into a probe
// spec. It checks the target as the configuration's validation does: a port
// lies in 1-65535, a socket path is absolute and fits in a socket address.
func parseTarget(t string) (probe.Spec, error) {
	switch {
	case strings.HasPrefix(t, "unix:"):
		path := strings.TrimPrefix(strings.TrimPrefix(t, "unix:"), "//")
		if msg := config.CheckSocketPath(path); msg != "" {
			return probe.Spec{}, fmt.Errorf("parse target %q: %s: want unix:/absolute/path", t, msg)
		}
		return probe.Spec{Type: probe.TypeUnix, Path: path}, nil
	case strings.HasPrefix(t, "http://"), strings.HasPrefix(t, "https://"):
		if msg := config.CheckHTTPURL(t); msg != "" {
			return probe.Spec{}, fmt.Errorf("parse target: %s", msg)
		}
		return probe.Spec{Type: probe.TypeHTTP, HTTP: probe.HTTPOptions{URL: t}}, nil
	case strings.Contains(t, "://"):
		if addr, ok := strings.CutPrefix(t, "tcp://"); ok {
			return tcpTarget(t, addr)
		}
	case strings.Contains(t, ":"):
		return tcpTarget(t, t)
	}
	return probe.Spec{}, fmt.Errorf("parse target %q: want tcp://host:port, host:port, unix:/path or an http(s):// URL", t)
}

// tcpTarget checks addr, the host:port of target t, as a tcp probe's
// address.
func tcpTarget(t, addr string) (probe.Spec, error) {
	if msg := config.CheckAddress(addr); msg != "" {
		return probe.Spec{}, fmt.Errorf("parse target %q: %s", t, msg)
	}
	return probe.Spec{Type: probe.TypeTCP, Address: addr}, nil
}
