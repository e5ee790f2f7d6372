package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// results is everything one run measured; it is printed as tables and
// saved as JSON.
type results struct {
	Started  time.Time       `json:"started"`
	Finished time.Time       `json:"finished"`
	Options  *options        `json:"options"`
	Host     hostInfo        `json:"host"`
	MTTR     []variantResult `json:"mttr"`
	Scale    []scaleResult   `json:"scale"`
}

// hostInfo describes the machine and the versions of the parts.
type hostInfo struct {
	CPU     string `json:"cpu"`
	Cores   int    `json:"cores"`
	Kernel  string `json:"kernel"`
	OS      string `json:"os"`
	Systemd string `json:"systemd"`
	Monit   string `json:"monit"`
	Nginx   string `json:"nginx"`
	Medic   string `json:"medic"`
	Go      string `json:"go"`
}

func describeHost(ctx context.Context, medic string) hostInfo {
	h := hostInfo{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				h.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		h.Kernel = strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/etc/os-release"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
				h.OS = strings.Trim(v, `"`)
			}
		}
	}
	h.Systemd = firstLine(ctx, "systemctl", "--version")
	h.Monit = strings.TrimPrefix(firstLine(ctx, "monit", "-V"), "This is Monit version ")
	h.Nginx = strings.TrimPrefix(firstLine(ctx, nginxBin, "-v"), "nginx version: nginx/")
	h.Medic = strings.TrimPrefix(firstLine(ctx, medic, "version"), "medic ")
	return h
}

// firstLine runs a command and returns the first line of its combined
// output ("" when it fails).
func firstLine(ctx context.Context, name string, args ...string) string {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

// save writes the results as indented JSON.
func (r *results) save(path string) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// percentile is the p-th percentile of xs by linear interpolation between
// the closest ranks; NaN for no samples.
func percentile(xs []float64, p float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := sortedCopy(xs)
	pos := p / 100 * float64(len(s)-1)
	lo := int(math.Floor(pos))
	hi := int(math.Ceil(pos))
	return s[lo] + (s[hi]-s[lo])*(pos-float64(lo))
}

// num formats a number of milliseconds for a table cell.
func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "–"
	case math.Abs(v) >= 1000:
		return fmt.Sprintf("%.0f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// printReport prints the host line and both tables in Markdown.
func printReport(w io.Writer, r *results) {
	h := r.Host
	fmt.Fprintf(w, "\n%s, %d cores; %s, kernel %s; %s; Monit %s; nginx %s; medic %s (%s). %s.\n",
		h.CPU, h.Cores, h.OS, h.Kernel, h.Systemd, h.Monit, h.Nginx, h.Medic, h.Go, r.Started.UTC().Format("2006-01-02"))
	if len(r.MTTR) > 0 {
		printMTTR(w, r)
	}
	if len(r.Scale) > 0 {
		printScale(w, r)
	}
}

func printMTTR(w io.Writer, r *results) {
	floor := math.NaN()
	for _, v := range r.MTTR {
		if v.Name == "systemd" && len(v.MTTRms) > 0 {
			floor = percentile(v.MTTRms, 50)
		}
	}
	fmt.Fprintf(w, "\nMTTR: SIGKILL of the backend's main PID until its port accepts again, in ms (polled every 1 ms); "+
		"502s: a client requesting through nginx every %s during each outage.\n\n", pollPeriod)
	fmt.Fprintln(w, "| watcher | trials | min | median | p95 | max | median − floor | 502s per outage (median) |")
	fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
	var notes []string
	for _, v := range r.MTTR {
		label := variantLabel(v.Name, r.Options)
		if v.NA != "" {
			fmt.Fprintf(w, "| %s | 0 | %s | | | | | |\n", label, v.NA)
		} else {
			trials := fmt.Sprint(len(v.MTTRms))
			if len(v.Failed) > 0 {
				trials += fmt.Sprintf(" (%d failed)", len(v.Failed))
			}
			med := percentile(v.MTTRms, 50)
			fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", label, trials,
				num(percentile(v.MTTRms, 0)), num(med), num(percentile(v.MTTRms, 95)), num(percentile(v.MTTRms, 100)),
				diff(med, floor, v.Name), num502(v.count502()))
		}
		if len(v.Notes) > 0 {
			notes = append(notes, fmt.Sprintf("%s: %s", v.Name, strings.Join(v.Notes, "; ")))
		}
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}

// variantLabel is the first column of an MTTR row.
func variantLabel(name string, o *options) string {
	switch name {
	case "systemd":
		return "systemd Restart=always (floor)"
	case "medic-polling":
		return "medic, polling only (1 s)"
	case "medic-events":
		return "medic, event triggers"
	case "monit":
		return "Monit, set daemon 1"
	case "cron":
		return fmt.Sprintf("cron check_backend.sh (%s)", o.CronPeriod)
	}
	return name
}

func diff(med, floor float64, name string) string {
	if name == "systemd" {
		return "0"
	}
	if math.IsNaN(med) || math.IsNaN(floor) {
		return "–"
	}
	return "+" + num(med-floor)
}

func num502(xs []float64) string {
	if len(xs) == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f", percentile(xs, 50))
}

func printScale(w io.Writer, r *results) {
	fmt.Fprintf(w, "\nScale: TCP checks at a %s interval (medic: jitter %g) against loopback listeners, %s measured after %s of warm-up; "+
		"lateness = time between two probes of a check − %s; cycle = median time between two probes of a check.\n\n",
		scaleInterval, r.Options.ScaleJitter, r.Options.ScaleDuration, r.Options.ScaleWarmup, scaleInterval)
	fmt.Fprintln(w, "| checks | tool | CPU % of one core | CPU per probe (µs) | RSS MB | p99 lateness ms | cycle ms |")
	fmt.Fprintln(w, "|---:|---|---:|---:|---:|---:|---:|")
	var notes []string
	for _, s := range r.Scale {
		if strings.HasPrefix(s.Note, "failed") {
			fmt.Fprintf(w, "| %d | %s | %s | | | | |\n", s.Checks, s.Tool, s.Note)
			continue
		}
		perProbe := math.NaN()
		if s.Probes > 0 {
			perProbe = s.CPUPerProbeUS
		}
		fmt.Fprintf(w, "| %d | %s | %.1f | %s | %.1f | %s | %s |\n", s.Checks, s.Tool, s.CPUPercent, num(perProbe), s.RSSMB, num(s.P99LatenessMS), num(s.CycleMS))
		note := fmt.Sprintf("%s %d: p50 lateness %s ms; %d probes of the listeners in the window (CPU per probe = CPU time / those probes); "+
			"%d failed probes of the listeners logged; the listeners (the bench itself) used %.1f %% of one core meanwhile",
			s.Tool, s.Checks, num(s.P50LatenessMS), s.Probes, s.FailedProbes, s.ListenerCPUPercent)
		if s.Hanging > 0 {
			note += fmt.Sprintf("; %d of the checks probe targets that never answer (HTTP: accepted, never answered; TCP: SYNs dropped), "+
				"every probe running into the 500 ms timeout: the lateness is that of the %d others, and CPU per probe divides all CPU by their probes only", s.Hanging, s.Checks-s.Hanging)
		}
		if s.Goroutines > 0 {
			note += fmt.Sprintf("; at most %d goroutines (go_goroutines)", s.Goroutines)
		}
		if s.Note != "" {
			note += "; " + s.Note
		}
		notes = append(notes, note)
	}
	if len(notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
}
