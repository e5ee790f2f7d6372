// Command bench measures medic against the alternatives on one machine in
// one run and prints Markdown tables for the README's Performance section.
// It is a benchmark program, not a test: CI does not run it; people do, with
// scripts/bench.
//
// MTTR part: one backend unit (medic-test-backend) on a systemd user manager
// (the running one, or a private one booted with internal/usermanager), nginx
// proxying to it, and for each watcher N trials of "SIGKILL the backend's
// main PID, time until its port accepts again", while a client polls through
// nginx every 10 ms and counts 502s. The watchers:
//
//   - systemd: the unit itself with Restart=always, RestartSec=0 (the floor)
//   - medic-polling: medic probing every second, no event triggers
//   - medic-events: medic with event triggers (probe at once when the unit dies)
//   - monit: Monit with `set daemon 1`, restarting via systemctl --user
//   - cron: the field's check_backend.sh loop (nc -z || systemctl restart)
//     at its 60 s period
//
// Scale part: medic with K TCP checks (1 s interval) against K loopback
// listeners, and Monit with the same checks: CPU % of one core, RSS, the p99
// lateness of a probe relative to its schedule, and the cycle time, all
// measured from the outside (/proc and the listeners' accept times).
//
// Usage (as root, from the repository root; scripts/bench builds the binaries):
//
//	go run ./bench -medic ./medic -backend ./medic-test-backend [-trials 20] [-quick]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// options are the command-line flags.
type options struct {
	Trials        int           `json:"trials"`
	CronTrials    int           `json:"cron_trials"`
	CronPeriod    time.Duration `json:"cron_period_ns"`
	Skip          []string      `json:"skip"`
	Scale         []int         `json:"scale"`
	MonitScale    []int         `json:"monit_scale"`
	HangScale     []int         `json:"hang_scale"`
	ScaleWarmup   time.Duration `json:"scale_warmup_ns"`
	ScaleDuration time.Duration `json:"scale_duration_ns"`
	ScaleJitter   float64       `json:"scale_jitter"`
	PProf         string        `json:"pprof,omitempty"`
	Quick         bool          `json:"quick"`
	MedicBin      string        `json:"medic_bin"`
	BackendBin    string        `json:"backend_bin"`
	Out           string        `json:"-"`
	Keep          bool          `json:"-"`
}

// skipped reports whether a variant or part ("mttr", "scale") was listed
// in -skip.
func (o *options) skipped(name string) bool {
	for _, s := range o.Skip {
		if s == name {
			return true
		}
	}
	return false
}

func parseFlags(args []string) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.IntVar(&o.Trials, "trials", 20, "MTTR trials per watcher")
	fs.IntVar(&o.CronTrials, "cron-trials", 3, "MTTR trials of the cron loop (each takes up to -cron-period)")
	fs.DurationVar(&o.CronPeriod, "cron-period", 60*time.Second, "period of the cron loop (the field's script runs every minute)")
	skip := fs.String("skip", "", "comma-separated variants or parts to leave out: systemd, medic-polling, medic-events, monit, cron, mttr, scale-medic, scale-hang, scale-monit, scale")
	scale := fs.String("scale", "10,1000,10000", "numbers of TCP checks for medic's scale runs (empty: none; 10 is medic at rest)")
	monitScale := fs.String("monit-scale", "1000", "numbers of TCP checks for Monit's scale runs (empty: none)")
	hangScale := fs.String("hang-scale", "10000", "numbers of checks for medic's hang runs, half of them against targets that never answer (empty: none)")
	fs.DurationVar(&o.ScaleWarmup, "scale-warmup", 10*time.Second, "warm-up before measuring a scale run")
	fs.DurationVar(&o.ScaleDuration, "scale-duration", 30*time.Second, "measuring time of a scale run")
	fs.Float64Var(&o.ScaleJitter, "scale-jitter", 0, "medic's [agent] jitter in the scale runs; above 0 the lateness includes the jitter (up to ± jitter/2 of the interval)")
	fs.StringVar(&o.PProf, "pprof", "", "run medic's scale runs with --pprof ADDR (a loopback host:port) to take profiles while they run, e.g. go tool pprof http://ADDR/debug/pprof/profile?seconds=15")
	fs.BoolVar(&o.Quick, "quick", false, "smoke run: 5 trials, 1 cron trial at a 10 s period, scale 1000 for 10 s (explicit flags win)")
	fs.StringVar(&o.MedicBin, "medic", "./medic", "medic binary")
	fs.StringVar(&o.BackendBin, "backend", "./medic-test-backend", "medic-test-backend binary")
	fs.BoolVar(&o.Keep, "keep", false, "keep the temp directories (configs and logs of every watcher) for inspection")
	fs.StringVar(&o.Out, "out", "", "write the raw samples as JSON to this file (default: a file in the temp directory)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if o.Quick {
		quickDefaults(o, set, scale)
		if !set["hang-scale"] {
			*hangScale = "1000"
		}
	}
	var err error
	if o.Scale, err = parseInts(*scale); err != nil {
		return nil, fmt.Errorf("-scale: %w", err)
	}
	if o.MonitScale, err = parseInts(*monitScale); err != nil {
		return nil, fmt.Errorf("-monit-scale: %w", err)
	}
	if o.HangScale, err = parseInts(*hangScale); err != nil {
		return nil, fmt.Errorf("-hang-scale: %w", err)
	}
	for _, s := range strings.Split(*skip, ",") {
		if s = strings.TrimSpace(s); s != "" {
			o.Skip = append(o.Skip, s)
		}
	}
	for _, p := range []*string{&o.MedicBin, &o.BackendBin} {
		if *p, err = filepath.Abs(*p); err != nil {
			return nil, err
		}
	}
	if o.Out == "" {
		o.Out = filepath.Join(os.TempDir(), "medic-bench-"+time.Now().Format("20060102T150405")+".json")
	}
	return o, nil
}

// quickDefaults shortens everything the user did not set explicitly.
func quickDefaults(o *options, set map[string]bool, scale *string) {
	if !set["trials"] {
		o.Trials = 5
	}
	if !set["cron-trials"] {
		o.CronTrials = 1
	}
	if !set["cron-period"] {
		o.CronPeriod = 10 * time.Second
	}
	if !set["scale"] {
		*scale = "1000"
	}
	if !set["scale-warmup"] {
		o.ScaleWarmup = 3 * time.Second
	}
	if !set["scale-duration"] {
		o.ScaleDuration = 10 * time.Second
	}
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n <= 0 {
			return nil, fmt.Errorf("%q is not a positive number", f)
		}
		out = append(out, n)
	}
	return out, nil
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// run does both parts and prints the tables.
func run(ctx context.Context, o *options) error {
	for _, bin := range []string{o.MedicBin, o.BackendBin} {
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("%w (build it, or use scripts/bench)", err)
		}
	}
	if err := raiseFileLimit(); err != nil {
		return err
	}
	res := &results{Started: time.Now(), Options: o, Host: describeHost(ctx, o.MedicBin)}
	if !o.skipped("mttr") {
		if err := runMTTR(ctx, o, res); err != nil {
			return err
		}
	}
	if !o.skipped("scale") {
		if err := runScale(ctx, o, res); err != nil {
			return err
		}
	}
	res.Finished = time.Now()
	printReport(os.Stdout, res)
	if err := res.save(o.Out); err != nil {
		return err
	}
	fmt.Printf("\nRaw samples: %s\n", o.Out)
	return nil
}

// logf prints progress to stderr, so that stdout holds only the report.
func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench: %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}

// raiseFileLimit sets RLIMIT_NOFILE to its hard limit. Calling Setrlimit
// explicitly (rather than relying on the Go runtime's automatic raise) makes
// the children inherit the new limit too.
func raiseFileLimit() error {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("getrlimit: %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return fmt.Errorf("setrlimit NOFILE %d: %w", lim.Max, err)
	}
	return nil
}
