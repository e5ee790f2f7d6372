package agent_test

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/policy"
)

// What these tests prove, and what they do not.
//
// A process cannot have its wall clock jumped for a test (that is the whole
// machine's clock; a time namespace shifts only the monotonic and boot
// clocks), so the tests model a machine's two clocks in fakeHost: its
// monotonic clock, and a wall clock that advances with it and jumps when the
// test says. Two Clocks read that host:
//
//   - agent.NewMonotonic, medic's default Clock (the code under test, built
//     on the fake host's wall time at its start and its monotonic elapsed
//     time instead of time.Now and time.Since);
//   - wallClock, which returns the host's wall time with no monotonic
//     reading: what time.Now becomes wherever its monotonic reading is lost
//     (Round(0), UTC(), UnixNano and back as the watchdog's heartbeats do,
//     a JSON round trip as persisted state does), and what every clock was
//     before Go 1.9.
//
// The same scenario runs on both: on the monotonic Clock nothing changes at
// the jump; on the wall clock the jump renews the restart budget, ends a
// verify deadline early, stretches the window, or stops the watchdog. The
// second half is what shows that the scenario can fail, i.e. that it
// exercises what a jump breaks.
//
// The probe schedule itself runs on runtime timers (time.Timer, monotonic
// in the Go runtime), not on the Clock: TestClockJumpAgent counts probes
// before and after the jump, which guards that no later change computes
// the schedule from Clock times, but passes on either Clock today.

// fakeHost is a machine's monotonic clock and its wall clock, which moves
// with the monotonic clock plus every jump so far.
type fakeHost struct {
	mu     sync.Mutex
	base   time.Time // wall time at monotonic 0
	mono   func() time.Duration
	offset time.Duration // sum of the wall clock's jumps
}

// newFakeHost returns a host whose monotonic clock is advanced only by
// advance (manual) or, when real is set, is the process's own monotonic
// clock (so that runtime timers and the host agree).
func newFakeHost(real bool) (h *fakeHost, advance func(time.Duration)) {
	start := time.Now()
	h = &fakeHost{base: time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)}
	if real {
		h.mono = func() time.Duration { return time.Since(start) }
		return h, nil
	}
	var manual atomic.Int64
	h.mono = func() time.Duration { return time.Duration(manual.Load()) }
	return h, func(d time.Duration) { manual.Add(int64(d)) }
}

// jump steps the wall clock by d (an operator's date -s, an NTP step).
func (h *fakeHost) jump(d time.Duration) {
	h.mu.Lock()
	h.offset += d
	h.mu.Unlock()
}

// wall reads the wall clock: a time with no monotonic reading.
func (h *fakeHost) wall() time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.base.Add(h.mono() + h.offset)
}

// wallClock is a Clock that reads the host's wall clock.
type wallClock struct{ h *fakeHost }

func (c wallClock) Now() time.Time { return c.h.wall() }

// monotonicOn is medic's default Clock on the host: it starts at the wall
// time of now and advances with the monotonic clock.
func monotonicOn(h *fakeHost) agent.Clock {
	mono0 := h.mono()
	return agent.NewMonotonic(h.wall(), func() time.Duration { return h.mono() - mono0 })
}

// jumpBreakage runs one check's policy Machine on clock c, driven by the
// host's manual monotonic clock: a restart that heals, then (1 minute
// later) the wall clock jumps by jump, then a second incident whose restart
// waits for verification. It returns what went wrong, "" if nothing did:
// with a correct clock, time after the jump is exactly the monotonic time
// that passed.
func jumpBreakage(c agent.Clock, h *fakeHost, advanceHost func(time.Duration), jump time.Duration) []string {
	var at time.Duration // monotonic time since the start
	advance := func(d time.Duration) { advanceHost(d); at += d }
	m := policy.New(policy.Params{
		Failures: 1, Successes: 1, Remediate: true, VerifyTimeout: 30 * time.Second,
		MaxRestarts: 3, Window: 10 * time.Minute, Backoff: 5 * time.Second, BackoffMax: time.Minute,
		RetryAfter: 30 * time.Minute,
	}, c.Now())
	var broken []string
	// Incident 1: fail, restart, verified.
	if d := m.Probe(c.Now(), false, "refused"); !d.Restart {
		return []string{"setup: no restart"}
	}
	advance(time.Second)
	m.JobDone(c.Now(), "done", nil)
	advance(time.Second)
	m.Probe(c.Now(), true, "")
	advance(time.Minute)
	if got := m.RestartsInWindow(c.Now()); got != 1 {
		return []string{fmt.Sprintf("setup: %d restarts in the window", got)}
	}

	// Incident 2 starts; its restart finishes just before the jump.
	m.Probe(c.Now(), false, "refused")
	advance(time.Second)
	m.JobDone(c.Now(), "done", nil)
	if m.State() != policy.Verifying {
		return []string{"setup: not verifying"}
	}
	h.jump(jump)
	advance(time.Second)

	// One second later: the budget holds both restarts, and the 30 s
	// verify deadline has not passed.
	if got := m.RestartsInWindow(c.Now()); got != 2 {
		broken = append(broken, fmt.Sprintf("1s after the jump: %d restarts in the window, want 2 (budget reset)", got))
	}
	if d := m.Tick(c.Now()); len(d.Transitions) > 0 {
		broken = append(broken, fmt.Sprintf("1s after the jump: %s → %s (%s), want still verifying", d.Transitions[0].From, d.Transitions[0].To, d.Transitions[0].Reason))
	}
	// 30 s after the job the deadline has passed.
	advance(29 * time.Second)
	if d := m.Tick(c.Now()); len(d.Transitions) == 0 || d.Transitions[0].To != policy.Restarting {
		broken = append(broken, fmt.Sprintf("30s after the job: state %s, want the verify deadline passed (restarting)", m.State()))
	}
	// 10 minutes after the first restart it has left the window; the
	// other two (the second incident's restart and the retry after its
	// backoff, if it ran) have not.
	advance(5 * time.Second)
	m.Tick(c.Now())
	advance(10*time.Minute + time.Second - at)
	if got, want := m.RestartsInWindow(c.Now()), 2; got != want {
		broken = append(broken, fmt.Sprintf("10m after the first restart: %d restarts in the window, want %d (window stretched or cut)", got, want))
	}
	return broken
}

func TestClockJumpPolicy(t *testing.T) {
	for _, jump := range []time.Duration{time.Hour, -time.Hour} {
		t.Run(fmt.Sprintf("monotonic/%s", jump), func(t *testing.T) {
			h, advance := newFakeHost(false)
			c := monotonicOn(h)
			for _, b := range jumpBreakage(c, h, advance, jump) {
				t.Error(b)
			}
		})
		// The control: the same scenario on a clock that follows the wall
		// clock must break, or the scenario does not test anything.
		t.Run(fmt.Sprintf("wall/%s", jump), func(t *testing.T) {
			h, advance := newFakeHost(false)
			broken := jumpBreakage(wallClock{h}, h, advance, jump)
			if len(broken) == 0 {
				t.Fatal("a wall-clock-driven Machine went through the jump unharmed: the scenario proves nothing")
			}
			t.Logf("as expected, on the wall clock: %q", broken)
		})
	}
}

// TestClockJumpPolicyNoJump runs the scenario without a jump on both
// clocks: it is correct as written, so what breaks above is the jump.
func TestClockJumpPolicyNoJump(t *testing.T) {
	for name, mk := range map[string]func(*fakeHost) agent.Clock{
		"monotonic": monotonicOn,
		"wall":      func(h *fakeHost) agent.Clock { return wallClock{h} },
	} {
		h, advance := newFakeHost(false)
		for _, b := range jumpBreakage(mk(h), h, advance, 0) {
			t.Errorf("%s: %s", name, b)
		}
	}
}

// TestMonotonicClockIgnoresJumps reads the default Clock across jumps: its
// times advance by the monotonic time that passed, also once their
// monotonic reading is stripped.
func TestMonotonicClockIgnoresJumps(t *testing.T) {
	h, advance := newFakeHost(false)
	c := monotonicOn(h)
	t0 := c.Now()
	for _, j := range []time.Duration{time.Hour, -2 * time.Hour, 24 * time.Hour} {
		h.jump(j)
		advance(time.Second)
	}
	if got := c.Now().Round(0).Sub(t0.Round(0)); got != 3*time.Second {
		t.Errorf("3 s of monotonic time with jumps of +1h, -2h, +24h between: the Clock advanced %s", got)
	}
	if got := h.wall().Sub(t0); got != 23*time.Hour+3*time.Second {
		t.Errorf("the host's wall clock advanced %s, want 23h0m3s", got)
	}
}

// TestClockJumpAgent runs an agent on the fake host's clocks (its
// monotonic clock is the real one, so the agent's timers agree with it)
// with a check that gave up (restart budget 1, retry_after 30m), a healthy
// check probed every 100 ms, and a healthy check probed every 10 s, then
// jumps the wall clock. On the monotonic Clock: no further restart, the
// budget still spent, the healthy check's probe rate unchanged (no storm),
// the watchdog still pinged. On the wall clock, +1h renews the budget (a
// second restart) and stops the watchdog (the 10 s check's heartbeat looks
// an hour old).
func TestClockJumpAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("runs for several seconds")
	}
	t.Parallel() // its own fake hosts, agents and listeners
	type variant struct {
		name      string
		wall      bool
		jump      time.Duration
		wantHarms bool
	}
	for _, v := range []variant{
		{"monotonic/+1h", false, time.Hour, false},
		{"monotonic/-1h", false, -time.Hour, false},
		{"wall/+1h", true, time.Hour, true},
	} {
		t.Run(v.name, func(t *testing.T) {
			// Each variant has its own fake host, listeners and agent.
			t.Parallel()
			h, _ := newFakeHost(true)
			var c agent.Clock = monotonicOn(h)
			if v.wall {
				c = wallClock{h}
			}
			harms := clockJumpAgent(t, h, c, v.jump)
			switch {
			case v.wantHarms && len(harms) == 0:
				t.Fatal("the wall-clock agent went through the jump unharmed: the scenario proves nothing")
			case v.wantHarms:
				t.Logf("as expected, on the wall clock: %q", harms)
			default:
				for _, m := range harms {
					t.Error(m)
				}
			}
		})
	}
}

// clockJumpAgent runs the agent scenario of TestClockJumpAgent on c and
// returns what the jump broke.
func clockJumpAgent(t *testing.T, h *fakeHost, c agent.Clock, jump time.Duration) []string {
	refused, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := refused.Addr().String()
	refused.Close()
	upAddr, upProbes := countingListener(t)
	slowAddr, slowProbes := countingListener(t)
	checks := fmt.Sprintf(`
[[check]]
name = "down"
unit = "down.service"
interval = "100ms"
timeout = "50ms"
failures = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  max_restarts = 1
  window = "10m"
  retry_after = "30m"
  verify_timeout = "200ms"
  backoff = "100ms"
`, down) + checkTOML("up", fmt.Sprintf("type = \"tcp\"\naddress = %q", upAddr), "100ms", "50ms") +
		checkTOML("slow", fmt.Sprintf("type = \"tcp\"\naddress = %q", slowAddr), "10s", "100ms")
	cfg := parse(t, t.TempDir(), checks)
	rem := &countingRemedy{}
	var pings atomic.Int64
	a, err := agent.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel+1)), rem, &memOutbox{},
		agent.WithClock(c.Now), agent.WithWatchdog(50*time.Millisecond, func() { pings.Add(1) }))
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	defer stop()

	waitFor(t, func() bool {
		s, _ := statusOf(a, "down")
		return s.State == string(policy.GaveUp) && s.RestartsInWindow == 1
	}, "check down gave up")
	waitFor(t, func() bool {
		s, _ := statusOf(a, "slow")
		return slowProbes.Load() > 0 && !s.LastProbe.IsZero()
	}, "check slow probed once")
	if n := rem.count(); n != 1 {
		t.Fatalf("before the jump: %d remedies, want 1", n)
	}
	p0, w0 := upProbes.Load(), pings.Load()
	time.Sleep(time.Second)
	before, pingsBefore := upProbes.Load()-p0, pings.Load()-w0

	h.jump(jump)
	p0, w0 = upProbes.Load(), pings.Load()
	time.Sleep(time.Second)
	after, pingsAfter := upProbes.Load()-p0, pings.Load()-w0

	var harms []string
	if n := rem.count(); n != 1 {
		harms = append(harms, fmt.Sprintf("%d remedies after the jump, want still 1 (budget renewed)", n))
	}
	if s, _ := statusOf(a, "down"); s.RestartsInWindow != 1 || s.State != string(policy.GaveUp) {
		harms = append(harms, fmt.Sprintf("after the jump: state %s, %d restarts in the window; want gave_up, 1", s.State, s.RestartsInWindow))
	}
	if after > before+before/2+2 {
		harms = append(harms, fmt.Sprintf("probe storm: %d probes in the second after the jump, %d in the second before", after, before))
	}
	if pingsAfter < pingsBefore/2 {
		harms = append(harms, fmt.Sprintf("watchdog: %d pings in the second after the jump, %d before", pingsAfter, pingsBefore))
	}
	t.Logf("probes of up: %d/s before, %d/s after; watchdog pings: %d/s before, %d/s after", before, after, pingsBefore, pingsAfter)
	return harms
}
