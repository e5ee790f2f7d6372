package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/nginx"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/remedy"
)

// nginxProbeWorkers bounds how many upstream servers diagnose nginx probes
// and diagnoses at once.
const nginxProbeWorkers = 8

func newDiagnoseNginxCmd() *cobra.Command {
	var o nginxDiagnoseOptions
	cmd := &cobra.Command{
		Use:   "nginx",
		Short: "Diagnose every upstream server of nginx at once",
		Long: `diagnose nginx reads nginx's configuration (following its includes), probes
every server of every upstream block, and every address a proxy_pass (or
fastcgi_pass, uwsgi_pass, grpc_pass, scgi_pass, memcached_pass) names
directly, as nginx's worker user (the user directive; nobody without one)
would connect, and diagnoses each one as "medic diagnose TARGET" does, with
the systemd unit that listens on it when there is one.

It prints one line per server (upstream, address, backup or down, up or
DOWN, cause), then the checks that concern nginx as a whole: nginx -t on the
configuration, and the upstream errors of the last --since in the files of
its error_log directives (the last 1 MiB of each), counted per server and
errno. Then the checklist of each server that is down. Evidence that cannot
be gathered is printed as "unavailable: reason". Run it as root: nginx -t
must open the pid and log files, and the error log is often readable by
root and group adm only.

It exits 1 when a server that is not marked down in nginx does not answer,
and 0 otherwise; a failing nginx -t is reported but does not change the
exit status (the running nginx keeps the configuration it loaded).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.timeout <= 0 || o.since <= 0 {
				return fmt.Errorf("diagnose nginx: --timeout and --since must be positive, not %s and %s", o.timeout, o.since)
			}
			ctx, cancel := context.WithTimeout(cmd.Context(), 2*time.Minute)
			defer cancel()
			d, err := diagnoseNginx(ctx, o)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if o.asJSON {
				enc := json.NewEncoder(out)
				enc.SetIndent("", "  ")
				if err := enc.Encode(d); err != nil {
					return err
				}
			} else {
				printNginxDiagnosis(out, d, time.Now())
			}
			if !d.OK {
				return exitCode(1)
			}
			return nil
		},
	}
	cmd.Flags().StringVarP(&o.conf, "config", "c", "/etc/nginx/nginx.conf", "nginx's main configuration file")
	cmd.Flags().StringVar(&o.bus, "bus", "system", "systemd bus to read the units' state from: system or user")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 2*time.Second, "probe timeout, per server")
	cmd.Flags().DurationVar(&o.since, "since", time.Hour, "count the error log's upstream errors of this last period")
	cmd.Flags().BoolVar(&o.asJSON, "json", false, "print the diagnosis as JSON")
	return cmd
}

type nginxDiagnoseOptions struct {
	conf, bus      string
	timeout, since time.Duration
	asJSON         bool
}

// nginxDiagnosis is what diagnose nginx found; it is also its --json
// document.
type nginxDiagnosis struct {
	// OK is false when a server not marked down does not answer.
	OK bool `json:"ok"`
	// Config is the main configuration file.
	Config string `json:"config"`
	// User is who nginx's workers run as, whose access to unix sockets
	// was checked.
	User       string          `json:"user"`
	ConfigTest nginxConfigTest `json:"config_test"`
	ErrorLog   nginxErrorLog   `json:"error_log"`
	Upstreams  []nginxUpstream `json:"upstreams"`
	// Skipped are servers and *_pass targets that name no address medic
	// can probe, each with the reason.
	Skipped []string `json:"skipped,omitempty"`
	// Unavailable is evidence about the servers that could not be
	// gathered (listeners, owners), each with the reason.
	Unavailable []string `json:"unavailable,omitempty"`
}

// nginxConfigTest is the outcome of nginx -t.
type nginxConfigTest struct {
	// Status is pass, fail (nginx found an error: Message is its [emerg]
	// line) or unknown (nginx -t could not run or judge: Message says why).
	Status  diagnose.Status `json:"status"`
	Command string          `json:"command,omitempty"`
	Message string          `json:"message,omitempty"`
}

// nginxErrorLog says which error logs were read for upstream errors.
type nginxErrorLog struct {
	// Status is fail when the logs hold upstream errors since Since, pass
	// when they hold none, unknown when no log could be read.
	Status diagnose.Status `json:"status"`
	Since  time.Time       `json:"since"`
	// Files are the logs read (their last 1 MiB each).
	Files []string `json:"files"`
	// Unavailable says which logs, or which part of them, could not be
	// read, and why.
	Unavailable []string `json:"unavailable,omitempty"`
}

// nginxUpstream is an upstream{} block, or (Name "") the addresses that a
// *_pass directive names directly.
type nginxUpstream struct {
	Name    string        `json:"name"`
	Context string        `json:"context,omitempty"`
	Servers []nginxServer `json:"servers"`
	// NoLiveUpstreams counts the error log's "no live upstreams" lines of
	// this group.
	NoLiveUpstreams *nginxLogError `json:"no_live_upstreams,omitempty"`
}

// nginxServer is one server of an upstream, probed and diagnosed.
type nginxServer struct {
	// Address is "host:port" (port 80 added when none is written) or
	// "unix:/path".
	Address string `json:"address"`
	// Directive is the *_pass directive that names it, for a server of no
	// upstream block.
	Directive string `json:"directive,omitempty"`
	// Backup and Down are the server directive's parameters.
	Backup bool `json:"backup"`
	Down   bool `json:"down"`
	// OK is the probe's outcome; Problem how it failed.
	OK      bool           `json:"ok"`
	Problem string         `json:"problem,omitempty"`
	Cause   diagnose.Cause `json:"cause,omitempty"`
	// Unit is the systemd unit found listening on the address.
	Unit      string              `json:"unit,omitempty"`
	Diagnosis *diagnose.Diagnosis `json:"diagnosis"`
	// LogErrors are the error log's upstream errors for this address since
	// the error log's Since, most frequent first.
	LogErrors []nginxLogError `json:"log_errors"`
	File      string          `json:"file,omitempty"`
	Line      int             `json:"line,omitempty"`

	res probe.Result
}

// nginxLogError is one errno's count in the error log.
type nginxLogError struct {
	Errno   int       `json:"errno"`
	Message string    `json:"message"`
	Kind    string    `json:"kind"`
	Count   int       `json:"count"`
	First   time.Time `json:"first"`
	Last    time.Time `json:"last"`
}

// failing reports whether s counts as down: it does not answer and nginx
// does not have it marked down.
func (s *nginxServer) failing() bool { return !s.OK && !s.Down }

// nginxTarget is one distinct address to probe, shared by the servers that
// name it.
type nginxTarget struct {
	b       *nginx.Backend
	spec    probe.Spec
	res     probe.Result
	dg      diagnose.Diagnosis
	in      diagnose.Input
	logKeys []string // the address as the error log writes it
}

// diagnoseNginx reads the configuration, probes and diagnoses every
// server, runs nginx -t and reads the error logs. Its error is non-nil only
// when the configuration cannot be read (it names the file and line).
func diagnoseNginx(ctx context.Context, o nginxDiagnoseOptions) (*nginxDiagnosis, error) {
	rep, err := nginx.Discover(ctx, o.conf)
	if err != nil {
		return nil, err
	}
	d := &nginxDiagnosis{OK: true, Config: rep.Config.File, User: rep.User, Skipped: rep.Skipped, Unavailable: rep.Unavailable}
	if d.User == "" {
		// nginx's built-in default (NGX_USER) when its master runs as root.
		d.User = "nobody"
	}

	var wg sync.WaitGroup
	wg.Go(func() { d.ConfigTest = runNginxConfigTest(ctx, rep.Config.File) })

	targets := make([]*nginxTarget, len(rep.Backends))
	byKey := map[string]*nginxTarget{}
	for i := range rep.Backends {
		b := &rep.Backends[i]
		t := &nginxTarget{b: b}
		if b.Network == "unix" {
			t.spec = probe.Spec{Type: probe.TypeUnix, Path: b.Address, ClientUser: d.User}
		} else {
			t.spec = probe.Spec{Type: probe.TypeTCP, Address: b.Address}
		}
		t.in = diagnose.Input{Spec: t.spec, ClientUser: d.User}
		targets[i] = t
		byKey[b.Network+"\x00"+b.Address] = t
	}
	readUnits(ctx, o.bus, targets)

	sem := make(chan struct{}, nginxProbeWorkers)
	for _, t := range targets {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			probeNginxTarget(ctx, t, o.timeout)
		})
	}
	since := time.Now().Add(-o.since)
	sum := nginx.NewErrorSummary(since)
	d.ErrorLog = readNginxErrorLogs(rep.Config, sum)
	wg.Wait()

	for _, u := range rep.Upstreams {
		nu := nginxUpstream{Name: u.Name, Context: u.Context, Servers: []nginxServer{}}
		for _, s := range u.Servers {
			network, addr, err := nginx.ServerAddress(s.Addr)
			if err != nil {
				continue // in Skipped
			}
			t := byKey[network+"\x00"+addr]
			if t == nil {
				continue
			}
			ns := t.server(sum)
			ns.Backup, ns.Down, ns.File, ns.Line = s.Backup, s.Down, s.File, s.Line
			nu.Servers = append(nu.Servers, ns)
		}
		if c, ok := sum.NoLive(u.Name); ok {
			le := logError(c)
			nu.NoLiveUpstreams = &le
		}
		d.Upstreams = append(d.Upstreams, nu)
	}
	// Addresses only *_pass directives name.
	var direct []nginxServer
	for _, t := range targets {
		if len(t.b.Upstreams) > 0 {
			continue
		}
		ns := t.server(sum)
		if len(t.b.Mentions) > 0 {
			m := t.b.Mentions[0]
			ns.Directive, _, _ = strings.Cut(m.Text, " ")
			ns.File, ns.Line = m.File, m.Line
		}
		direct = append(direct, ns)
	}
	if len(direct) > 0 {
		d.Upstreams = append(d.Upstreams, nginxUpstream{Servers: direct})
	}
	for _, u := range d.Upstreams {
		for _, s := range u.Servers {
			if s.failing() {
				d.OK = false
			}
		}
	}
	return d, nil
}

// readUnits reads, over the bus, the state of the units found listening on
// the targets' addresses; a unit that cannot be read goes into the
// diagnosis as unreadable, with the reason.
func readUnits(ctx context.Context, bus string, targets []*nginxTarget) {
	var rem *remedy.Remediator
	var dialErr error
	for _, t := range targets {
		if t.b.Owner == nil || t.b.Owner.Unit == "" {
			continue
		}
		unit := t.b.Owner.Unit
		if rem == nil {
			rem = remedy.New(ctx, remedy.Dial(bus), nil, zap.NewNop())
			defer rem.Close()
		}
		if dialErr != nil {
			t.in.UnitName, t.in.UnitErr = unit, dialErr
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := rem.State(sctx, unit)
		cancel()
		if err != nil {
			err = fmt.Errorf("read its state over the %s bus: %w", bus, err)
			t.in.UnitName, t.in.UnitErr = unit, err
			dialErr = err // the bus is likely unreachable: ask no more
			continue
		}
		t.in.Unit = &s
	}
}

// probeNginxTarget probes t once within timeout and diagnoses it.
func probeNginxTarget(ctx context.Context, t *nginxTarget, timeout time.Duration) {
	ctx, cancel := context.WithTimeout(ctx, timeout+10*time.Second)
	defer cancel()
	t.logKeys = logKeys(ctx, t.b)
	p, err := probe.New(t.spec)
	if err != nil {
		t.res = probe.Result{Class: probe.ClassOther, Err: err, Target: t.b.Address}
	} else {
		t.res = p.Probe(ctx, timeout)
	}
	t.in.Result = t.res
	t.dg = diagnose.Diagnose(ctx, t.in)
}

// logKeys returns the forms in which nginx's error log names b's address
// (nginx.UpstreamError.Addr): "unix:/path", or the normalised host:port
// and, for a name, every address it resolves to, since nginx logs the
// address it connected to.
func logKeys(ctx context.Context, b *nginx.Backend) []string {
	if b.Network == "unix" {
		return []string{"unix:" + b.Address}
	}
	var keys []string
	if a, _ := nginx.NormalizeAddr(b.Address); a != "" {
		keys = append(keys, a)
	}
	host, port, err := net.SplitHostPort(b.Address)
	if err != nil {
		return keys
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return keys
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return keys
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	ips, err := net.DefaultResolver.LookupNetIP(rctx, "ip", host)
	if err != nil {
		return keys
	}
	for _, ip := range ips {
		keys = append(keys, netip.AddrPortFrom(ip.Unmap(), uint16(pn)).String())
	}
	return keys
}

// server renders t as one server, with its error log counts from sum.
func (t *nginxTarget) server(sum *nginx.ErrorSummary) nginxServer {
	addr := t.b.Address
	if t.b.Network == "unix" {
		addr = "unix:" + addr
	}
	dg := t.dg
	s := nginxServer{Address: addr, OK: t.res.OK, Diagnosis: &dg, LogErrors: []nginxLogError{}, res: t.res}
	if !t.res.OK {
		s.Problem = t.res.Problem()
		s.Cause = dg.Primary.Cause
	}
	if t.b.Owner != nil {
		s.Unit = t.b.Owner.Unit
	}
	seen := map[string]bool{}
	for _, k := range t.logKeys {
		if seen[k] {
			continue
		}
		seen[k] = true
		for _, c := range sum.Counts(k) {
			s.LogErrors = append(s.LogErrors, logError(c))
		}
	}
	return s
}

func logError(c nginx.ErrorCount) nginxLogError {
	return nginxLogError{Errno: c.Errno, Message: c.Text, Kind: c.Kind, Count: c.Count, First: c.First, Last: c.Last}
}

// runNginxConfigTest runs nginx -t on conf.
func runNginxConfigTest(ctx context.Context, conf string) nginxConfigTest {
	r := nginx.RunConfigTest(ctx, "", conf)
	ct := nginxConfigTest{Command: strings.Join(r.Command, " "), Message: r.Message}
	switch r.Outcome {
	case nginx.TestPassed:
		ct.Status = diagnose.Pass
	case nginx.TestFailed:
		ct.Status = diagnose.Fail
	default:
		ct.Status = diagnose.Unchecked
	}
	return ct
}

// readNginxErrorLogs counts the upstream errors of the configuration's
// error logs into sum.
func readNginxErrorLogs(c *nginx.Config, sum *nginx.ErrorSummary) nginxErrorLog {
	el := nginxErrorLog{Since: sum.Since, Files: []string{}}
	logs, skipped := c.ErrorLogs("")
	for _, s := range skipped {
		el.Unavailable = append(el.Unavailable, s+": its lines cannot be read back")
	}
	for _, l := range logs {
		where := ""
		if l.File != "" {
			where = fmt.Sprintf(" (%s:%d)", l.File, l.Line)
		}
		if !l.Logs("error") {
			el.Unavailable = append(el.Unavailable, fmt.Sprintf("error_log %s%s logs only level %s and above: nginx writes refused and timed-out connections at level error", l.Path, where, l.Level))
		}
		if err := sum.ReadTail(l.Path); err != nil {
			if os.Geteuid() != 0 {
				err = fmt.Errorf("%w (run as root or in group adm)", err)
			}
			el.Unavailable = append(el.Unavailable, err.Error())
		}
	}
	el.Files = append(el.Files, sum.Read...)
	for _, p := range sum.Partial {
		el.Unavailable = append(el.Unavailable, fmt.Sprintf("%s: only its last %d KiB were read, which reach back to %s, not to %s", p.Path, nginx.MaxErrorTail>>10, p.From.Format(time.DateTime), sum.Since.Format(time.DateTime)))
	}
	switch {
	case len(sum.Read) == 0:
		el.Status = diagnose.Unchecked
	case len(sum.All()) > 0:
		el.Status = diagnose.Fail
	default:
		el.Status = diagnose.Pass
	}
	return el
}

// printNginxDiagnosis prints d for people, every string from nginx's
// configuration, its logs and the backends escaped (esc).
func printNginxDiagnosis(out io.Writer, d *nginxDiagnosis, now time.Time) {
	total, down := 0, 0
	for _, u := range d.Upstreams {
		for _, s := range u.Servers {
			total++
			if s.failing() {
				down++
			}
		}
	}
	fmt.Fprintf(out, "nginx %s: %d of %d servers down; workers run as %s\n\n", esc(d.Config), down, total, esc(d.User))

	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	if total > 0 {
		fmt.Fprintln(w, "UPSTREAM\tSERVER\tROLE\tSTATUS  CAUSE")
	}
	for _, u := range d.Upstreams {
		for _, s := range u.Servers {
			// ROLE: what nginx does with the server (server parameters
			// backup and down, ngx_http_upstream_module).
			var flags []string
			if s.Backup {
				flags = append(flags, "backup")
			}
			if s.Down {
				flags = append(flags, "marked down")
			}
			if len(flags) == 0 {
				flags = append(flags, "primary")
			}
			status, cause := "up", ""
			if !s.OK {
				status, cause = "DOWN", string(s.Cause)
				if cause == "" {
					cause = s.Problem
				}
				if s.Down {
					cause = "not counted"
				}
			}
			// STATUS and CAUSE in one cell, so that no line ends in
			// padding.
			last := strings.TrimRight(fmt.Sprintf("%-6s  %s", status, esc(cause)), " ")
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\n", esc(upstreamLabel(u, s)), esc(s.Address), strings.Join(flags, ", "), last)
		}
	}
	w.Flush()
	if total == 0 {
		fmt.Fprintln(out, "nginx proxies to no backend address.")
	}
	fmt.Fprintln(out)

	// nginx as a whole: its configuration test and its error log.
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	ct := d.ConfigTest
	switch ct.Status {
	case diagnose.Unchecked:
		fmt.Fprintf(w, "  %s nginx -t\tunavailable: %s\n", ct.Status.Mark(), esc(ct.Message))
	case diagnose.Fail:
		fmt.Fprintf(w, "  %s nginx -t\temerg: %s\n", ct.Status.Mark(), esc(ct.Message))
	default:
		fmt.Fprintf(w, "  %s nginx -t\t%s\n", ct.Status.Mark(), esc(ct.Message))
	}
	el := d.ErrorLog
	sinceText := fmtLogTime(el.Since, now)
	switch el.Status {
	case diagnose.Unchecked:
		fmt.Fprintf(w, "  %s upstream errors\tunavailable: no error log could be read\n", el.Status.Mark())
	case diagnose.Pass:
		fmt.Fprintf(w, "  %s upstream errors\tnone in %s since %s\n", el.Status.Mark(), esc(strings.Join(el.Files, ", ")), sinceText)
	default:
		fmt.Fprintf(w, "  %s upstream errors\tin %s since %s:\n", el.Status.Mark(), esc(strings.Join(el.Files, ", ")), sinceText)
	}
	w.Flush()
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	for _, u := range d.Upstreams {
		for _, s := range u.Servers {
			for _, e := range s.LogErrors {
				fmt.Fprintf(w, "      %s\t%s\t%d: %s ×%d, first at %s, last at %s\n", esc(upstreamLabel(u, s)), esc(s.Address), e.Errno, esc(e.Message), e.Count, fmtLogTime(e.First, now), fmtLogTime(e.Last, now))
			}
		}
		if n := u.NoLiveUpstreams; n != nil {
			fmt.Fprintf(w, "      %s\t-\tno live upstreams ×%d, first at %s, last at %s\n", esc(u.Name), n.Count, fmtLogTime(n.First, now), fmtLogTime(n.Last, now))
		}
	}
	w.Flush()
	for _, s := range el.Unavailable {
		fmt.Fprintf(out, "    unavailable: %s\n", esc(s))
	}
	for _, s := range d.Unavailable {
		fmt.Fprintf(out, "  unavailable: %s\n", esc(s))
	}
	if len(d.Skipped) > 0 {
		fmt.Fprintln(out, "  not probed: these name no address medic can probe:")
		for _, s := range d.Skipped {
			fmt.Fprintf(out, "    %s\n", esc(s))
		}
	}

	// The checklist of each server that is down.
	for _, u := range d.Upstreams {
		for _, s := range u.Servers {
			if !s.failing() {
				continue
			}
			fmt.Fprintf(out, "\n%s %s:\n", esc(upstreamLabel(u, s)), esc(s.Address))
			printProbeDiagnosis(out, s.res, s.Diagnosis)
		}
	}
}

// upstreamLabel names the group of s: the upstream's name, or the *_pass
// directive that names s directly.
func upstreamLabel(u nginxUpstream, s nginxServer) string {
	if u.Name != "" {
		return u.Name
	}
	if s.Directive != "" {
		return "(" + s.Directive + ")"
	}
	return "-"
}

// fmtLogTime prints t as "15:04:05" on now's day, else with its date.
func fmtLogTime(t, now time.Time) string {
	if y, m, d := t.Date(); y == now.Year() && m == now.Month() && d == now.Day() {
		return t.Format(time.TimeOnly)
	}
	return t.Format(time.DateTime)
}
