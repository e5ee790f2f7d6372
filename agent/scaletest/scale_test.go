// Package scaletest holds TestScaleHangingProbes, a test of package agent
// that runs for a minute and measures the whole process's goroutines and
// memory. In a test binary of its own it runs alone in its process (no
// other test's goroutines or heap in its numbers) and, under go test
// ./..., at the same time as the agent package's other tests instead of
// after them.
package scaletest

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime/metrics"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	medicmetrics "github.com/medic-watchdog/medic/metrics"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// noRemedy fails the test if the agent ever tries to act: the checks have
// action "none".
type noRemedy struct{ t *testing.T }

func (n noRemedy) Remedy(context.Context, string, remedy.Action, time.Duration) (remedy.Outcome, error) {
	n.t.Error("Remedy called for a check with action none")
	return remedy.Outcome{}, nil
}

func (n noRemedy) State(_ context.Context, name string) (unit.State, error) {
	return unit.State{Name: name}, nil
}

// nopOutbox drops the messages the agent queues (there are none: no check
// has a notifier).
type nopOutbox struct{}

func (nopOutbox) Enqueue(string, *notify.Message) error { return nil }

// Scale of TestScaleHangingProbes. Under the race detector, which makes
// every goroutine switch and allocation several times dearer, it runs a
// fifth of the checks: the property (hanging probes do not delay the
// others, nothing grows) is the same.
const (
	scaleChecks   = 1000
	scaleInterval = time.Second
	scaleTimeout  = 500 * time.Millisecond
	// scaleRun is the whole run; the first scaleWarmup of it (every check
	// probed a few times, the hanging ones failing) is not measured.
	scaleRun    = 65 * time.Second
	scaleWarmup = 5 * time.Second
	// scaleWindow is the length of the first and last stretch of the run
	// whose peaks of goroutines and memory are compared.
	scaleWindow = 20 * time.Second
)

// lateness collects ObserveLateness samples; every other event is
// dropped.
type lateness struct {
	nopObserver
	mu      sync.Mutex
	from    time.Time // samples before are dropped
	samples []time.Duration
}

func (l *lateness) ObserveLateness(d time.Duration) {
	l.mu.Lock()
	if !l.from.IsZero() && time.Now().After(l.from) {
		l.samples = append(l.samples, d)
	}
	l.mu.Unlock()
}

func (l *lateness) start(at time.Time) {
	l.mu.Lock()
	l.from = at
	l.mu.Unlock()
}

func (l *lateness) sorted() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := slices.Clone(l.samples)
	slices.Sort(s)
	return s
}

// nopObserver implements agent.Observer doing nothing.
type nopObserver struct{}

func (nopObserver) ForCheck(string, []string) *medicmetrics.CheckObserver { return nil }
func (nopObserver) ObserveRemedy(string, string, string, string)          {}
func (nopObserver) ObserveReload(bool, time.Time)                         {}
func (nopObserver) ForgetCheck(string)                                    {}
func (nopObserver) ObserveUpstreamError(string, int)                      {}
func (nopObserver) ObserveLateness(time.Duration)                         {}
func (nopObserver) ObserveIncident(string, string, time.Duration)         {}

var _ agent.Observer = (*lateness)(nil)

// quantile returns the q-quantile (0..1) of sorted, 0 when empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

// stampListener accepts connections, records when each arrived and closes
// it at once: the target of one healthy TCP check, whose probe times
// measure its lateness from the outside.
type stampListener struct {
	ln     net.Listener
	mu     sync.Mutex
	stamps []time.Time
}

func newStampListener(t *testing.T) *stampListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stampListener{ln: ln, stamps: make([]time.Time, 0, 2*int(scaleRun/scaleInterval))}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.stamps = append(s.stamps, time.Now())
			s.mu.Unlock()
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return s
}

// intervals returns the times between consecutive probes that both
// arrived within [from, to].
func (s *stampListener) intervals(from, to time.Time) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []time.Duration
	var prev time.Time
	for _, at := range s.stamps {
		if at.Before(from) || at.After(to) {
			continue
		}
		if !prev.IsZero() {
			out = append(out, at.Sub(prev))
		}
		prev = at
	}
	return out
}

// holdListener accepts connections and never answers; it closes each when
// the client does (a probe that timed out), so the test's own goroutines
// and descriptors stay bounded too.
func holdListener(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns[c] = true
			mu.Unlock()
			wg.Go(func() {
				_, _ = io.Copy(io.Discard, c) // until the prober hangs up
				c.Close()
				mu.Lock()
				delete(conns, c)
				mu.Unlock()
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// runtimeSample is one reading of the runtime's metrics.
type runtimeSample struct {
	at         time.Duration // since the agent started
	goroutines uint64
	total      uint64 // /memory/classes/total:bytes: all memory the runtime mapped, less released
	heap       uint64 // /gc/heap/live:bytes: the heap the last GC marked live
}

func readRuntime(at time.Duration) runtimeSample {
	ms := []metrics.Sample{
		{Name: "/sched/goroutines:goroutines"},
		{Name: "/memory/classes/total:bytes"},
		{Name: "/gc/heap/live:bytes"},
	}
	metrics.Read(ms)
	return runtimeSample{at: at, goroutines: ms[0].Value.Uint64(), total: ms[1].Value.Uint64(), heap: ms[2].Value.Uint64()}
}

// peak returns the largest value of f over the samples taken in [from, to).
func peak(ss []runtimeSample, from, to time.Duration, f func(runtimeSample) uint64) uint64 {
	var m uint64
	for _, s := range ss {
		if s.at >= from && s.at < to {
			m = max(m, f(s))
		}
	}
	return m
}

// TestScaleHangingProbes runs one agent with scaleChecks checks at a 1 s
// interval (500 ms timeout, remedy "none"), half of them against targets
// that hang: a quarter HTTP probes against listeners that accept and never
// answer, a quarter TCP probes against a port whose SYNs are dropped. The
// other half are TCP checks, each against its own listener.
//
// Over a minute it asserts that
//   - the p99 lateness of the healthy checks' probes, measured from the
//     outside (time between two probes at the listener minus the interval;
//     jitter is 0) is under 100 ms, and so is the p99 of every scheduled
//     round as the agent reports it (ObserveLateness, all checks: it has no
//     check name to tell them apart);
//   - the goroutines never exceed the test's own, plus one per check, plus
//     four per hanging probe in flight (a generous bound: an HTTP probe
//     holds its own goroutine and the test's listener one for the
//     connection; a TCP probe waiting in the connect poller holds none),
//     plus a small constant, and their peak in the last 20 s is not above
//     their peak in the first 20 s;
//   - memory does not grow: the peak of the runtime's mapped memory and of
//     the live heap in the last 20 s is at most 1.2 times their peak in the
//     first 20 s after the warm-up. (The test's own records, which grow
//     with time, are allocated up front.)
func TestScaleHangingProbes(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for a minute")
	}
	checks := scaleChecks
	if raceEnabled {
		checks /= 5
	}
	healthy, hangHTTP := checks/2, checks/4
	hangTCP := checks - healthy - hangHTTP

	var b strings.Builder
	fmt.Fprintf(&b, "[agent]\nbus = \"user\"\njitter = 0.0\ninterval = %q\ntimeout = %q\nstate_dir = %q\njournal_lines = 0\n",
		scaleInterval, scaleTimeout, t.TempDir())
	check := func(name, probe string) {
		fmt.Fprintf(&b, "\n[[check]]\nname = %q\n  [[check.probe]]\n  %s\n  [check.remedy]\n  action = \"none\"\n", name, probe)
	}
	var stamps []*stampListener
	for i := range healthy {
		s := newStampListener(t)
		stamps = append(stamps, s)
		check(fmt.Sprintf("ok-%04d", i), fmt.Sprintf("type = \"tcp\"\n  address = %q", s.ln.Addr()))
	}
	// A handful of hanging targets serve every hanging check: the hang is
	// in each probe, not in the number of targets.
	var holds, drops []string
	for range 8 {
		holds = append(holds, holdListener(t))
		drops = append(drops, systemdtest.SYNDropListener(t))
	}
	for i := range hangHTTP {
		check(fmt.Sprintf("hang-http-%04d", i), fmt.Sprintf("type = \"http\"\n  url = \"http://%s/health\"", holds[i%len(holds)]))
	}
	for i := range hangTCP {
		check(fmt.Sprintf("hang-tcp-%04d", i), fmt.Sprintf("type = \"tcp\"\n  address = %q", drops[i%len(drops)]))
	}
	cfg, err := config.Parse([]byte(b.String()), "scale.toml")
	if err != nil {
		t.Fatal(err)
	}
	late := &lateness{samples: make([]time.Duration, 0, 2*checks*int(scaleRun/scaleInterval))}
	a, err := agent.New(cfg, zap.NewNop(), noRemedy{t}, nopOutbox{}, agent.WithObserver(late))
	if err != nil {
		t.Fatal(err)
	}

	base := readRuntime(0).goroutines
	started := time.Now()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	var once sync.Once
	stop := func() { once.Do(func() { cancel(); <-done }) }
	defer stop()

	late.start(started.Add(scaleWarmup))
	var samples []runtimeSample
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range tick.C {
		s := readRuntime(time.Since(started))
		samples = append(samples, s)
		if s.at >= scaleRun {
			break
		}
	}
	to := time.Now()
	from := started.Add(scaleWarmup)
	stop()

	// Lateness.
	var outside []time.Duration
	for _, s := range stamps {
		for _, iv := range s.intervals(from, to) {
			outside = append(outside, max(0, iv-scaleInterval))
		}
	}
	slices.Sort(outside)
	inside := late.sorted()
	t.Logf("%d checks (%d healthy, %d hanging HTTP, %d TCP with SYNs dropped), %s measured after %s",
		checks, healthy, hangHTTP, hangTCP, to.Sub(from).Round(time.Second), scaleWarmup)
	t.Logf("healthy checks' lateness from the outside: p50 %s, p99 %s, max %s over %d intervals",
		quantile(outside, .5), quantile(outside, .99), quantile(outside, 1), len(outside))
	t.Logf("every round's lateness (ObserveLateness): p50 %s, p99 %s, max %s over %d rounds",
		quantile(inside, .5), quantile(inside, .99), quantile(inside, 1), len(inside))
	if want := healthy * int(to.Sub(from)/scaleInterval) * 8 / 10; len(outside) < want {
		t.Errorf("the healthy checks were probed %d times, want at least %d (80%% of their schedule)", len(outside), want)
	}
	if p := quantile(outside, .99); p >= 100*time.Millisecond {
		t.Errorf("p99 lateness of the healthy checks is %s, want under 100ms", p)
	}
	if p := quantile(inside, .99); p >= 100*time.Millisecond {
		t.Errorf("p99 lateness of all scheduled rounds is %s, want under 100ms", p)
	}

	// Goroutines and memory.
	goroutines := func(s runtimeSample) uint64 { return s.goroutines }
	total := func(s runtimeSample) uint64 { return s.total }
	heap := func(s runtimeSample) uint64 { return s.heap }
	first, last := scaleWarmup, scaleRun-scaleWindow
	bound := base + uint64(checks) + 4*uint64(hangHTTP+hangTCP) + 50
	gMax := peak(samples, 0, scaleRun+time.Minute, goroutines)
	gFirst, gLast := peak(samples, first, first+scaleWindow, goroutines), peak(samples, last, scaleRun+time.Minute, goroutines)
	t.Logf("goroutines: %d before the agent, peak %d (bound %d), peak %d in the first 20 s, %d in the last 20 s",
		base, gMax, bound, gFirst, gLast)
	if gMax > bound {
		t.Errorf("goroutines peaked at %d, above %d (the test's %d + one per check + 4 per hanging probe + 50)", gMax, bound, base)
	}
	if gLast > gFirst+gFirst/10 {
		t.Errorf("goroutines grow: peak %d in the last 20 s, %d in the first", gLast, gFirst)
	}
	for _, m := range []struct {
		name string
		f    func(runtimeSample) uint64
	}{{"mapped memory (/memory/classes/total)", total}, {"live heap (/gc/heap/live)", heap}} {
		p1, p2 := peak(samples, first, first+scaleWindow, m.f), peak(samples, last, scaleRun+time.Minute, m.f)
		t.Logf("%s: peak %.1f MiB in the first 20 s, %.1f MiB in the last 20 s", m.name, mib(p1), mib(p2))
		if float64(p2) > 1.2*float64(p1) {
			t.Errorf("%s grows: peak %.1f MiB in the last 20 s, more than 1.2 × %.1f MiB in the first", m.name, mib(p2), mib(p1))
		}
	}
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }
