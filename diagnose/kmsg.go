package diagnose

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/medic-watchdog/medic/unit"
	"golang.org/x/sys/unix"
)

// OOMReport is the kernel's report of one process killed by its OOM killer,
// merged from the lines it logs for the kill (mm/oom_kill.c):
//
//	oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/app,task_memcg=/app,task=app,pid=5797,uid=0
//	Memory cgroup out of memory: Killed process 5797 (app) total-vm:2804320kB, anon-rss:32256kB, ...
//
// The first line exists on Linux 4.19 and later; the second ("Out of
// memory: Killed process" for a global OOM, "Memory cgroup out of memory:"
// for a cgroup's limit) on every kernel medic supports.
type OOMReport struct {
	// PID and Comm name the killed process.
	PID  int    `json:"pid"`
	Comm string `json:"comm,omitempty"`
	// Constraint is the oom-kill line's constraint: CONSTRAINT_NONE for a
	// global OOM (the host ran out of memory), CONSTRAINT_MEMCG for a
	// cgroup's limit, "" when that line was not seen.
	Constraint string `json:"constraint,omitempty"`
	// TaskMemcg is the killed task's memory cgroup (task_memcg=), OOMMemcg
	// the cgroup whose limit was hit (oom_memcg=); "" when not reported.
	TaskMemcg string `json:"task_memcg,omitempty"`
	OOMMemcg  string `json:"oom_memcg,omitempty"`
	// Memcg is true when the kill line says "Memory cgroup out of memory".
	Memcg bool `json:"memcg"`
	// Line is the "Killed process" line as logged.
	Line string `json:"line,omitempty"`
	// At is when the kernel logged the kill; zero when unknown.
	At time.Time `json:"at,omitzero"`
}

// Global reports whether the host as a whole ran out of memory, rather than
// a cgroup reaching its limit.
func (r OOMReport) Global() bool {
	if r.Constraint != "" {
		return r.Constraint == "CONSTRAINT_NONE"
	}
	return !r.Memcg
}

// oomLine is one kernel log line about an OOM kill.
type oomLine struct {
	kill bool // a "Killed process" line; else an "oom-kill:" line
	r    OOMReport
}

// parseOOMLine parses one kernel message (without the /dev/kmsg or
// journal prefix) if it is an "oom-kill:" line or a "... Killed process
// PID (comm) ..." line; ok is false for any other line.
func parseOOMLine(msg string) (l oomLine, ok bool) {
	msg = strings.TrimRight(msg, "\r\n")
	if i := strings.Index(msg, "oom-kill:"); i >= 0 && !strings.Contains(msg, "Killed process") {
		for kv := range strings.SplitSeq(msg[i+len("oom-kill:"):], ",") {
			k, v, found := strings.Cut(kv, "=")
			if !found {
				continue
			}
			switch k {
			case "constraint":
				l.r.Constraint = v
			case "task_memcg":
				l.r.TaskMemcg = v
			case "oom_memcg":
				l.r.OOMMemcg = v
			case "task":
				l.r.Comm = v
			case "pid":
				pid, err := strconv.Atoi(v)
				if err != nil || pid <= 0 {
					return oomLine{}, false
				}
				l.r.PID = pid
			}
		}
		if l.r.PID <= 0 {
			return oomLine{}, false
		}
		return l, true
	}
	const killed = "Killed process "
	i := strings.Index(msg, killed)
	if i < 0 || !strings.Contains(msg[:i], "out of memory") && !strings.Contains(msg[:i], "Out of memory") {
		return oomLine{}, false
	}
	rest := msg[i+len(killed):]
	num, rest, _ := strings.Cut(rest, " ")
	pid, err := strconv.Atoi(num)
	if err != nil || pid <= 0 {
		return oomLine{}, false
	}
	l.kill = true
	l.r.PID = pid
	if strings.HasPrefix(rest, "(") {
		// The comm may hold spaces and parentheses: it ends at the last
		// ") " before the first field with a colon, or at the last ")".
		end := strings.LastIndex(rest, ") total-vm:")
		if end < 0 {
			end = strings.LastIndex(rest, ")")
		}
		if end > 0 {
			l.r.Comm = rest[1:end]
		}
	}
	l.r.Memcg = strings.Contains(msg[:i], "Memory cgroup out of memory")
	l.r.Line = strings.TrimSpace(msg)
	return l, true
}

// kernelLine is one kernel message with its time (zero when unknown).
type kernelLine struct {
	at  time.Time
	msg string
}

// matchOOM merges the OOM lines of lines (oldest first) into reports and
// returns the last one that killed pid or a process whose task_memcg is
// cgroup or below it; nil when none did. pid 0 or cgroup "" match nothing.
func matchOOM(lines []kernelLine, pid int, cgroup string) *OOMReport {
	var last *OOMReport
	pending := map[int]OOMReport{} // oom-kill lines waiting for their kill line
	for _, kl := range lines {
		l, ok := parseOOMLine(kl.msg)
		if !ok {
			continue
		}
		r := l.r
		if !l.kill {
			pending[r.PID] = r
			continue
		}
		if p, ok := pending[r.PID]; ok {
			delete(pending, r.PID)
			r.Constraint, r.TaskMemcg, r.OOMMemcg = p.Constraint, p.TaskMemcg, p.OOMMemcg
			if r.Comm == "" {
				r.Comm = p.Comm
			}
		}
		r.At = kl.at
		if (pid > 0 && r.PID == pid) || inCgroup(r.TaskMemcg, cgroup) {
			last = &r
		}
	}
	return last
}

// inCgroup reports whether memcg is cgroup or one of its descendants.
func inCgroup(memcg, cgroup string) bool {
	if memcg == "" || cgroup == "" || cgroup == "/" {
		return false
	}
	cgroup = strings.TrimSuffix(cgroup, "/")
	return memcg == cgroup || strings.HasPrefix(memcg, cgroup+"/")
}

// parseKmsgRecord splits one /dev/kmsg record, "prio,seq,usec,flags;text"
// followed by continuation lines that start with a space
// (Documentation/ABI/testing/dev-kmsg), into the microseconds since boot
// and the text; ok is false for a malformed record.
func parseKmsgRecord(rec string) (usec uint64, msg string, ok bool) {
	head, text, found := strings.Cut(rec, ";")
	if !found {
		return 0, "", false
	}
	f := strings.Split(head, ",")
	if len(f) < 3 {
		return 0, "", false
	}
	usec, err := strconv.ParseUint(f[2], 10, 64)
	if err != nil {
		return 0, "", false
	}
	msg, _, _ = strings.Cut(text, "\n")
	return usec, msg, true
}

// parseJournalShortUnix reads journalctl's "-o short-unix" output, lines
// of "SECONDS.MICROS HOST IDENTIFIER: MESSAGE", into kernel lines.
func parseJournalShortUnix(out []byte) []kernelLine {
	var lines []kernelLine
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		ts, rest, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		_, msg, ok := strings.Cut(rest, ": ")
		if !ok {
			continue
		}
		lines = append(lines, kernelLine{at: time.Unix(0, int64(sec*1e9)), msg: msg})
	}
	return lines
}

// KernelOOMReport searches the kernel's log of the current boot for the
// OOM killer's report of process pid (a unit's ExecMainPID) or of a
// process in cgroup (a unit's ControlGroup, matched against task_memcg).
// It reads the kernel messages in the journal (journalctl -k, which needs
// membership in group systemd-journal or adm) and, when the journal gives
// no kernel line, /dev/kmsg (readable by root, or by anyone when
// kernel.dmesg_restrict is 0; see proc(5) /proc/sys/kernel/dmesg_restrict).
//
// Outcomes:
//   - (report, source, nil): the last kill of pid or in cgroup;
//   - (nil, source, nil): the log was read and reports no such kill;
//   - (nil, "", err): neither the journal nor /dev/kmsg could be read; err
//     joins both reasons.
func KernelOOMReport(ctx context.Context, pid int, cgroup string) (*OOMReport, string, error) {
	jl, jerr := journalKernel(ctx)
	if jerr == nil && len(jl) > 0 {
		return matchOOM(jl, pid, cgroup), "journal (journalctl -k)", nil
	}
	kl, kerr := readKmsg()
	if kerr == nil {
		return matchOOM(kl, pid, cgroup), "/dev/kmsg", nil
	}
	if jerr == nil {
		jerr = errors.New("no kernel messages in the journal")
	}
	return nil, "", fmt.Errorf("read the kernel's OOM reports: %w", errors.Join(jerr, kerr))
}

// journalKernel returns the kernel messages of the current boot from the
// journal that mention an OOM kill.
func journalKernel(ctx context.Context) ([]kernelLine, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "journalctl", "-k", "-b", "-q", "--no-pager", "-o", "short-unix",
		"--grep", "Killed process|oom-kill:")
	out, err := cmd.Output()
	var exit *exec.ExitError
	if errors.As(err, &exit) && exit.ExitCode() == 1 && len(bytes.TrimSpace(exit.Stderr)) == 0 {
		// --grep with no match exits 1; without pcre2 support journalctl
		// says so on stderr.
		return nil, nil
	}
	if err != nil {
		if errors.As(err, &exit) && len(exit.Stderr) > 0 {
			return nil, fmt.Errorf("journalctl -k: %w: %s", err, strings.TrimSpace(string(exit.Stderr)))
		}
		return nil, fmt.Errorf("journalctl -k: %w", err)
	}
	return parseJournalShortUnix(out), nil
}

// readKmsg reads every record /dev/kmsg still holds, without blocking.
func readKmsg() ([]kernelLine, error) {
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/kmsg: %w", err)
	}
	defer func() { _ = unix.Close(fd) }()
	var mono unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono); err != nil {
		return nil, fmt.Errorf("read /dev/kmsg: clock_gettime: %w", err)
	}
	boot := time.Now().Add(-time.Duration(mono.Nano()))
	var lines []kernelLine
	buf := make([]byte, 8192) // a record is at most 1 KiB of text plus its dictionary
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, syscall.EAGAIN):
			return lines, nil
		case errors.Is(err, syscall.EPIPE):
			continue // records were overwritten while reading: go on
		case errors.Is(err, syscall.EINTR):
			continue
		case err != nil:
			return nil, fmt.Errorf("read /dev/kmsg: %w", err)
		case n == 0:
			return lines, nil
		}
		usec, msg, ok := parseKmsgRecord(string(buf[:n]))
		if !ok {
			continue
		}
		lines = append(lines, kernelLine{at: boot.Add(time.Duration(usec) * time.Microsecond), msg: msg})
	}
}

// oomByKernel reads the kernel's OOM report for u's last main process when
// systemd reports a SIGKILL (Result=signal) rather than oom-kill: on cgroup
// v1 or hybrid hosts and for a global OOM, systemd cannot tell.
func (d *run) oomByKernel(ctx context.Context) {
	u := d.in.Unit
	if u == nil || u.Result == "oom-kill" || u.Started() || u.ExecMainStatus != int32(syscall.SIGKILL) ||
		(u.ExecMainCode != 2 && u.ExecMainCode != 3) {
		return
	}
	r, _, err := KernelOOMReport(ctx, int(u.ExecMainPID), u.ControlGroup)
	if err != nil {
		d.unavailable("kernel OOM report: %v (add medic's user to group systemd-journal)", err)
		return
	}
	if r != nil && !oomOfThisRun(r.At, u) {
		return // an older kill of the same cgroup or a reused PID
	}
	d.kernelOOM = r
}

// oomSlack absorbs the skew between kernel timestamps (converted from the
// monotonic clock) and systemd's wall-clock ones.
const oomSlack = 2 * time.Second

// oomOfThisRun reports whether an OOM kill at "at" may have ended u's last
// run: after the unit last became active and not after it went down, when
// those times are known.
func oomOfThisRun(at time.Time, u *unit.State) bool {
	if at.IsZero() {
		return true
	}
	if !u.ActiveEnterTimestamp.IsZero() && at.Before(u.ActiveEnterTimestamp.Add(-oomSlack)) {
		return false
	}
	down := u.InactiveEnterTimestamp
	if down.IsZero() || down.Before(u.ActiveEnterTimestamp) {
		down = u.StateChangeTimestamp
	}
	return down.IsZero() || down.Before(u.ActiveEnterTimestamp) || !at.After(down.Add(oomSlack))
}

// oomKernelEvidence adds the kernel's OOM report, if read, to ev and says
// what killed the unit.
func (d *run) oomKernelEvidence(ev map[string]any) string {
	r := d.kernelOOM
	if r == nil {
		return ""
	}
	ev["kernel_oom"] = r.Line
	ev["oom_pid"] = r.PID
	if r.TaskMemcg != "" {
		ev["oom_task_memcg"] = r.TaskMemcg
	}
	what := "its cgroup's memory limit"
	if r.Global() {
		what = "the host ran out of memory"
		ev["oom_global"] = true
	} else if r.OOMMemcg != "" {
		what = "the memory limit of " + r.OOMMemcg
	}
	s := fmt.Sprintf("; the kernel killed process %d (%s): %s", r.PID, r.Comm, what)
	if !r.At.IsZero() {
		s += " at " + r.At.UTC().Format(time.RFC3339)
	}
	return s
}
