package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// scaleResult is one row of the scale table.
type scaleResult struct {
	Tool       string  `json:"tool"`
	Checks     int     `json:"checks"`
	CPUPercent float64 `json:"cpu_percent_of_one_core"`
	RSSMB      float64 `json:"rss_mb_max"`
	// Lateness is (time between two probes of a check) - interval, over
	// every check, from the listeners' accept times.
	P50LatenessMS float64 `json:"p50_lateness_ms"`
	P99LatenessMS float64 `json:"p99_lateness_ms"`
	// CycleMS is the median time between two probes of a check.
	CycleMS float64 `json:"cycle_ms"`
	// Probed is how many checks' listeners saw at least two probes.
	Probed    int     `json:"probed"`
	Intervals int     `json:"intervals"`
	Seconds   float64 `json:"seconds"`
	// ListenerCPUPercent is the bench's own CPU use (the listeners) in the
	// same window, on the same cores.
	ListenerCPUPercent float64 `json:"listener_cpu_percent_of_one_core"`
	// Probes is how many connections the listeners accepted in the
	// sampled window: the probes of the healthy checks that the tool
	// completed.
	Probes int `json:"probes"`
	// CPUPerProbeUS is the tool's CPU time in the sampled window (utime +
	// stime) divided by Probes, in µs. In a hang row it also carries the
	// CPU of the hanging probes, which are not counted in Probes.
	CPUPerProbeUS float64 `json:"cpu_per_probe_us"`
	// FailedProbes is how many failed probes of the healthy checks the
	// tool logged during the whole run (warm-up included, the tool stopped
	// before its listeners closed); each one skews the lateness.
	FailedProbes int `json:"failed_probes"`
	// Hanging is how many of the checks probe targets that never answer
	// (the "hang" scenario); the lateness is then that of the others.
	Hanging int `json:"hanging,omitempty"`
	// Goroutines is the largest go_goroutines medic's /metrics reported
	// while measuring (0: not read).
	Goroutines int    `json:"goroutines_max,omitempty"`
	Note       string `json:"note,omitempty"`
}

// scaleInterval is the probe interval of every scale run.
const scaleInterval = time.Second

// scaleTool is medic or Monit watching K TCP ports.
type scaleTool interface {
	name() string
	// start runs the tool with one TCP check per port, its files in dir.
	start(dir string, ports []int) (*exec.Cmd, error)
	// failedProbes counts the failed probes the tool logged in dir.
	failedProbes(dir string) int
}

// runScale runs every scale configuration not skipped.
func runScale(ctx context.Context, o *options, res *results) error {
	type run struct {
		t scaleTool
		k int
	}
	var runs []run
	if !o.skipped("scale-medic") {
		for _, k := range o.Scale {
			runs = append(runs, run{medicScale{bin: o.MedicBin, jitter: o.ScaleJitter, pprof: o.PProf}, k})
		}
	}
	if !o.skipped("scale-hang") {
		for _, k := range o.HangScale {
			runs = append(runs, run{&medicHang{medicScale: medicScale{bin: o.MedicBin, jitter: o.ScaleJitter, pprof: o.PProf}}, k})
		}
	}
	if !o.skipped("scale-monit") {
		for _, k := range o.MonitScale {
			runs = append(runs, run{monitScale{}, k})
		}
	}
	for _, r := range runs {
		logf("scale: %s with %d TCP checks (%s warm-up, %s measured)", r.t.name(), r.k, o.ScaleWarmup, o.ScaleDuration)
		sr, err := scaleRun(ctx, r.t, r.k, o)
		if err != nil {
			sr = scaleResult{Tool: r.t.name(), Checks: r.k, Note: "failed: " + err.Error()}
			logf("scale %s %d: %v", r.t.name(), r.k, err)
		}
		res.Scale = append(res.Scale, sr)
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// scaleRun starts k listeners and the tool, lets it warm up, then samples
// its CPU and RSS for dur and computes lateness from the accept times.
func scaleRun(ctx context.Context, t scaleTool, k int, o *options) (scaleResult, error) {
	r := scaleResult{Tool: t.name(), Checks: k}
	dir, err := os.MkdirTemp("", "medic-bench-scale-")
	if err != nil {
		return r, err
	}
	defer removeDir(dir, o.Keep)
	healthy := k
	if p, ok := t.(partialTool); ok {
		healthy = p.healthy(k)
		r.Hanging = k - healthy
	}
	ls, err := listen(healthy)
	if err != nil {
		return r, err
	}
	defer ls.close()
	cmd, err := t.start(dir, ls.ports())
	if c, ok := t.(io.Closer); ok {
		defer c.Close()
	}
	if err != nil {
		return r, err
	}
	// The tool stops before its listeners close (the deferred calls run
	// last in, first out, and the measured path stops it explicitly):
	// probes refused by closed listeners are not failures of the tool.
	stop := sync.OnceFunc(func() { stopChild(cmd) })
	defer stop()
	pid := cmd.Process.Pid
	if err := sleepCtx(ctx, o.ScaleWarmup); err != nil {
		return r, err
	}
	from := time.Now()
	self0, _ := cpuTicks(os.Getpid())
	cpu0, err := cpuTicks(pid)
	if err != nil {
		return r, fmt.Errorf("%s exited during warm-up: %w (files in %s)", t.name(), err, dir)
	}
	var goroutines func() int
	if p, ok := t.(partialTool); ok {
		goroutines = sampleGoroutines(ctx, p.metricsURL(), o.ScaleDuration)
	}
	rss, err := sampleRSS(ctx, pid, o.ScaleDuration)
	if err != nil {
		return r, err
	}
	if goroutines != nil {
		r.Goroutines = goroutines()
	}
	cpu1, err := cpuTicks(pid)
	if err != nil {
		return r, fmt.Errorf("%s exited: %w", t.name(), err)
	}
	self1, _ := cpuTicks(os.Getpid())
	to := time.Now()
	r.Seconds = to.Sub(from).Seconds()
	r.ListenerCPUPercent = 100 * float64(self1-self0) / clockTicks / r.Seconds
	r.CPUPercent = 100 * float64(cpu1-cpu0) / clockTicks / r.Seconds
	r.RSSMB = float64(rss) / 1024
	stop()
	ls.close()
	r.fill(ls.intervals(from, to))
	r.Probes = ls.accepted(from, to)
	if r.Probes > 0 {
		r.CPUPerProbeUS = 1e6 * float64(cpu1-cpu0) / clockTicks / float64(r.Probes)
	}
	r.FailedProbes = t.failedProbes(dir)
	if r.Probed < healthy {
		r.Note = fmt.Sprintf("only %d of %d checks probed twice in the window", r.Probed, healthy)
	}
	return r, nil
}

// fill computes the lateness and cycle columns from per-check intervals.
func (r *scaleResult) fill(perCheck [][]time.Duration) {
	var late, all []float64
	for _, iv := range perCheck {
		if len(iv) > 0 {
			r.Probed++
		}
		for _, d := range iv {
			all = append(all, ms(d))
			late = append(late, ms(d-scaleInterval))
		}
	}
	r.Intervals = len(all)
	r.P50LatenessMS = percentile(late, 50)
	r.P99LatenessMS = percentile(late, 99)
	r.CycleMS = percentile(all, 50)
}

// listeners are loopback TCP listeners that record when each connection
// arrived (accepted) and close it at once.
type listeners struct {
	lns    []net.Listener
	stamps [][]time.Time // per listener, written only by its goroutine
	wg     sync.WaitGroup
	once   sync.Once
}

// Listener ports come from below the kernel's ephemeral range
// (32768-60999 on Linux by default): thousands of probes a second leave
// their client ports in TIME_WAIT there, and kernel-chosen ports would run
// out. A port already taken is skipped.
const (
	firstListenPort = 12000
	lastListenPort  = 32767
)

// listen opens k loopback listeners.
func listen(k int) (*listeners, error) {
	ls := &listeners{stamps: make([][]time.Time, k)}
	port := firstListenPort
	for i := range k {
		var ln net.Listener
		var err error
		for ; port <= lastListenPort; port++ {
			if ln, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port)); err == nil {
				break
			}
		}
		port++
		if ln == nil {
			ls.close()
			return nil, fmt.Errorf("listener %d of %d: no free port in %d-%d: %v", i+1, k, firstListenPort, lastListenPort, err)
		}
		ls.lns = append(ls.lns, ln)
		ls.wg.Add(1)
		go ls.accept(i)
	}
	return ls, nil
}

func (ls *listeners) accept(i int) {
	defer ls.wg.Done()
	for {
		c, err := ls.lns[i].Accept()
		if err != nil {
			return
		}
		ls.stamps[i] = append(ls.stamps[i], time.Now())
		c.Close()
	}
}

func (ls *listeners) ports() []int {
	out := make([]int, len(ls.lns))
	for i, ln := range ls.lns {
		out[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return out
}

// close closes every listener and waits for the accept goroutines.
func (ls *listeners) close() {
	ls.once.Do(func() {
		for _, ln := range ls.lns {
			ln.Close()
		}
		ls.wg.Wait()
	})
}

// intervals returns, per listener, the times between consecutive
// connections that both arrived within [from, to]. Call after close.
func (ls *listeners) intervals(from, to time.Time) [][]time.Duration {
	out := make([][]time.Duration, len(ls.stamps))
	for i, st := range ls.stamps {
		var prev time.Time
		for _, t := range st {
			if t.Before(from) || t.After(to) {
				continue
			}
			if !prev.IsZero() {
				out[i] = append(out[i], t.Sub(prev))
			}
			prev = t
		}
	}
	return out
}

// accepted returns how many connections arrived within [from, to], over
// every listener. Call after close.
func (ls *listeners) accepted(from, to time.Time) int {
	n := 0
	for _, st := range ls.stamps {
		for _, t := range st {
			if !t.Before(from) && !t.After(to) {
				n++
			}
		}
	}
	return n
}

// medicScale runs medic with one TCP check (remedy "none") per port.
type medicScale struct {
	bin    string
	jitter float64
	pprof  string // medic's --pprof address; empty: none
}

// args is medic's command line for the config file conf.
func (m medicScale) args(conf string) []string {
	args := []string{"run", "-c", conf, "--log-format", "json"}
	if m.pprof != "" {
		args = append(args, "--pprof", m.pprof)
	}
	return args
}

func (medicScale) name() string { return "medic" }

func (m medicScale) start(dir string, ports []int) (*exec.Cmd, error) {
	var b strings.Builder
	// jitter = 0 (the default of -scale-jitter): every probe's schedule is
	// exactly one interval after the previous probe, so lateness can be
	// measured from the outside.
	fmt.Fprintf(&b, "[agent]\ninterval = %q\ntimeout = \"500ms\"\njitter = %g\nstate_dir = %q\nstatus_socket = %q\njournal_lines = 0\n",
		scaleInterval.String(), m.jitter, filepath.Join(dir, "state"), filepath.Join(dir, "medic.sock"))
	for i, p := range ports {
		fmt.Fprintf(&b, "\n[[check]]\nname = \"c%05d\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:%d\"\n  [check.remedy]\n  action = \"none\"\n  [check.escalate]\n  notify = []\n", i, p)
	}
	conf := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	return startChild(m.bin, m.args(conf), os.Environ(), filepath.Join(dir, "medic.log"))
}

// failedProbes counts the "probe failed" lines (JSON, "event":"probe
// failed") of the checks that probe the listeners ("check":"c00042"; the
// hanging ones of medicHang are h00000, ...).
func (medicScale) failedProbes(dir string) int {
	b, _ := os.ReadFile(filepath.Join(dir, "medic.log"))
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if strings.Contains(line, `"event":"probe failed"`) && healthyCheckRE.MatchString(line) {
			n++
		}
	}
	return n
}

// healthyCheckRE matches the check field of a check that probes a listener.
var healthyCheckRE = regexp.MustCompile(`"check":"c[0-9]{5}"`)

// partialTool is a scale tool whose checks probe the listeners only in
// part: the others probe targets of its own.
type partialTool interface {
	// healthy returns how many of k checks probe the listeners.
	healthy(k int) int
	// metricsURL is the tool's Prometheus endpoint.
	metricsURL() string
}

// medicHang is medicScale where half the checks probe targets that hang
// (the "hang" scenario): a quarter are HTTP probes against listeners that
// accept and never answer, a quarter TCP probes against ports whose accept
// queue is full, so that the kernel drops their SYNs and the handshake never
// completes. Every hanging probe runs into the 500 ms timeout, every
// interval. The lateness is measured on the healthy half, from the
// outside; medic's goroutines are read from its /metrics (metrics_listen).
type medicHang struct {
	medicScale
	holds   []*holdListener
	drops   []int      // fds of the full-queue sockets
	fill    []net.Conn // the connections that fill their queues
	metrics string
}

// hangTargets is how many hold listeners and full-queue ports the hanging
// checks share: the hang is in each probe, not in the number of targets.
const hangTargets = 8

func (*medicHang) name() string { return "medic, half hanging" }

func (*medicHang) healthy(k int) int { return k - k/2 }

func (m *medicHang) metricsURL() string { return "http://" + m.metrics + "/metrics" }

func (m *medicHang) start(dir string, ports []int) (*exec.Cmd, error) {
	hanging := len(ports) // as many as healthy ones, give or take one
	for range hangTargets {
		h, err := newHoldListener()
		if err != nil {
			return nil, err
		}
		m.holds = append(m.holds, h)
		fd, conns, err := fullQueuePort()
		if fd >= 0 {
			m.drops = append(m.drops, fd)
		}
		m.fill = append(m.fill, conns...)
		if err != nil {
			return nil, err
		}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	m.metrics = ln.Addr().String()
	ln.Close()

	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\ninterval = %q\ntimeout = \"500ms\"\njitter = %g\nstate_dir = %q\nstatus_socket = %q\njournal_lines = 0\nmetrics_listen = %q\n",
		scaleInterval.String(), m.jitter, filepath.Join(dir, "state"), filepath.Join(dir, "medic.sock"), m.metrics)
	for i, p := range ports {
		fmt.Fprintf(&b, "\n[[check]]\nname = \"c%05d\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:%d\"\n  [check.remedy]\n  action = \"none\"\n  [check.escalate]\n  notify = []\n", i, p)
	}
	for i := range hanging {
		probe := fmt.Sprintf("type = \"http\"\n  url = \"http://%s/health\"", m.holds[i%len(m.holds)].addr())
		if i%2 == 1 {
			probe = fmt.Sprintf("type = \"tcp\"\n  address = \"127.0.0.1:%d\"", m.dropPort(i/2%len(m.drops)))
		}
		fmt.Fprintf(&b, "\n[[check]]\nname = \"h%05d\"\n  [[check.probe]]\n  %s\n  [check.remedy]\n  action = \"none\"\n  [check.escalate]\n  notify = []\n", i, probe)
	}
	conf := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(conf, []byte(b.String()), 0o600); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "state"), 0o700); err != nil {
		return nil, err
	}
	return startChild(m.bin, m.args(conf), os.Environ(), filepath.Join(dir, "medic.log"))
}

// dropPort returns the port of the i-th full-queue socket.
func (m *medicHang) dropPort(i int) int {
	sa, err := syscall.Getsockname(m.drops[i])
	if err != nil {
		return 0
	}
	return sa.(*syscall.SockaddrInet4).Port
}

// Close closes the hanging targets.
func (m *medicHang) Close() error {
	for _, h := range m.holds {
		h.close()
	}
	for _, c := range m.fill {
		c.Close()
	}
	for _, fd := range m.drops {
		_ = syscall.Close(fd)
	}
	m.holds, m.drops, m.fill = nil, nil, nil
	return nil
}

// holdListener accepts connections and never answers; it closes each
// when the client hangs up (the probe timed out).
type holdListener struct {
	ln net.Listener
	wg sync.WaitGroup
	mu sync.Mutex
	cs map[net.Conn]bool
}

func newHoldListener() (*holdListener, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &holdListener{ln: ln, cs: map[net.Conn]bool{}}
	h.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.mu.Lock()
			h.cs[c] = true
			h.mu.Unlock()
			h.wg.Go(func() {
				_, _ = io.Copy(io.Discard, c)
				c.Close()
				h.mu.Lock()
				delete(h.cs, c)
				h.mu.Unlock()
			})
		}
	})
	return h, nil
}

func (h *holdListener) addr() string { return h.ln.Addr().String() }

func (h *holdListener) close() {
	h.ln.Close()
	h.mu.Lock()
	for c := range h.cs {
		c.Close()
	}
	h.mu.Unlock()
	h.wg.Wait()
}

// fullQueuePort returns a loopback TCP socket that listens, never accepts,
// and whose accept queue (backlog 0) is full, with the connections that
// fill it: the kernel drops the SYNs of further connections (unless
// net.ipv4.tcp_abort_on_overflow is set).
func fullQueuePort() (fd int, conns []net.Conn, err error) {
	fd, err = syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, nil, err
	}
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		return fd, nil, err
	}
	if err := syscall.Listen(fd, 0); err != nil {
		return fd, nil, err
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		return fd, nil, err
	}
	addr := fmt.Sprintf("127.0.0.1:%d", sa.(*syscall.SockaddrInet4).Port)
	var d net.Dialer
	for range 16 {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		c, err := d.DialContext(ctx, "tcp", addr)
		cancel()
		switch {
		case err == nil:
			conns = append(conns, c)
		case ctx.Err() != nil:
			return fd, conns, nil // the handshake did not complete: full
		default:
			return fd, conns, fmt.Errorf("fill the accept queue of %s: %w (net.ipv4.tcp_abort_on_overflow set?)", addr, err)
		}
	}
	return fd, conns, fmt.Errorf("the accept queue of %s did not fill after 16 connections", addr)
}

// sampleGoroutines reads go_goroutines from url every 5 s (a scrape of
// 10,000 checks costs medic CPU; Prometheus scrapes every 15 s) for dur in
// the background; the returned func waits for the end and returns the
// largest value read (0 if none).
func sampleGoroutines(ctx context.Context, url string, dur time.Duration) func() int {
	done := make(chan int, 1)
	go func() {
		peak := 0
		client := &http.Client{Timeout: 2 * time.Second}
		end := time.Now().Add(dur)
		for time.Now().Before(end) {
			if resp, err := client.Get(url); err == nil {
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				for line := range strings.SplitSeq(string(b), "\n") {
					if v, ok := strings.CutPrefix(line, "go_goroutines "); ok {
						if n, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
							peak = max(peak, int(n))
						}
					}
				}
			}
			if sleepCtx(ctx, min(5*time.Second, time.Until(end))) != nil {
				break
			}
		}
		done <- peak
	}()
	return func() int { return <-done }
}

// countInFile counts the occurrences of s in the file at path.
func countInFile(path, s string) int {
	b, _ := os.ReadFile(path)
	return strings.Count(string(b), s)
}

// monitScale runs Monit (`set daemon 1`) with one `check host` per port.
type monitScale struct{}

func (monitScale) name() string { return "monit" }

func (monitScale) start(dir string, ports []int) (*exec.Cmd, error) {
	var b strings.Builder
	for i, p := range ports {
		fmt.Fprintf(&b, "\ncheck host c%05d with address 127.0.0.1\n  if failed port %d type tcp then alert\n", i, p)
	}
	rc, err := writeMonitrc(dir, b.String())
	if err != nil {
		return nil, err
	}
	return startMonit(dir, rc)
}

func (monitScale) failedProbes(dir string) int {
	return countInFile(filepath.Join(dir, "monit.log"), "failed protocol test")
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat
// (100 on every Linux architecture Go supports).
const clockTicks = 100

// cpuTicks returns utime+stime of pid from /proc/PID/stat.
func cpuTicks(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	// After "pid (comm) ": state is field 3; utime and stime are 14 and 15.
	f := strings.Fields(s[i+2:])
	if len(f) < 13 {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("malformed /proc/%d/stat", pid)
	}
	return ut + st, nil
}

// rssKB returns VmRSS of pid in KiB.
func rssKB(pid int) (uint64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			return strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// sampleRSS reads VmRSS every 500 ms for dur and returns the largest value.
func sampleRSS(ctx context.Context, pid int, dur time.Duration) (uint64, error) {
	var peak uint64
	end := time.Now().Add(dur)
	for time.Now().Before(end) {
		v, err := rssKB(pid)
		if err != nil {
			return 0, fmt.Errorf("pid %d exited: %w", pid, err)
		}
		peak = max(peak, v)
		if err := sleepCtx(ctx, min(500*time.Millisecond, time.Until(end))); err != nil {
			return 0, err
		}
	}
	return peak, nil
}

// sortedCopy returns xs sorted, leaving xs alone.
func sortedCopy(xs []float64) []float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s
}
