package agent_test

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/agent/sched"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// noRemedy fails the test if the agent ever tries to act: the checks in
// these tests have action "none".
type noRemedy struct{ t *testing.T }

func (n noRemedy) Remedy(context.Context, string, remedy.Action, time.Duration) (remedy.Outcome, error) {
	n.t.Error("Remedy called for a check with action none")
	return remedy.Outcome{}, nil
}

func (n noRemedy) State(_ context.Context, name string) (unit.State, error) {
	return unit.State{Name: name}, nil
}

// memOutbox records the messages the agent queues, in order. The durable
// outbox has its own tests; these tests look at what the agent decides to
// send.
type memOutbox struct {
	mu   sync.Mutex
	msgs []queued
}

type queued struct {
	notifier string
	m        *notify.Message
}

func (o *memOutbox) Enqueue(notifier string, m *notify.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.msgs = append(o.msgs, queued{notifier, m})
	return nil
}

func (o *memOutbox) all() []queued {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]queued(nil), o.msgs...)
}

// countingListener accepts TCP connections and counts them; hang makes it
// accept and never answer (so an HTTP probe waits for its timeout).
func countingListener(t *testing.T) (addr string, accepted *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted = new(atomic.Int64)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			accepted.Add(1)
			conns = append(conns, c) // never answered, closed at the end
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), accepted
}

func checkTOML(name, probe string, interval, timeout string) string {
	return fmt.Sprintf(`
[[check]]
name = %q
interval = %q
timeout = %q
  [[check.probe]]
%s
  [check.remedy]
  action = "none"
`, name, interval, timeout, probe)
}

func newAgent(t *testing.T, text string) *agent.Agent {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf("[agent]\nbus = \"user\"\njitter = 0.0\nstate_dir = %q\n", t.TempDir())+text), "test.toml")
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	a, err := agent.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), noRemedy{t}, &memOutbox{})
	if err != nil {
		t.Fatalf("new agent: %v", err)
	}
	return a
}

// TestRunStopsCleanly cancels Run while an HTTP probe hangs on a server that
// never answers: the probe is cancelled, Run returns long before the probe's
// timeout, and no goroutine is left behind.
func TestRunStopsCleanly(t *testing.T) {
	t.Cleanup(func() { goleak.VerifyNone(t) }) // runs last, after the listener closed
	addr, accepted := countingListener(t)
	a := newAgent(t, checkTOML("hangs", fmt.Sprintf("  type = \"http\"\n  url = \"http://%s/health\"", addr), "1m", "50s"))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for accepted.Load() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return 10s after cancel while a probe with a 50s timeout hung")
	}
}

// TestHangingProbeDoesNotDelayOthers runs a check whose probe hangs until its
// timeout next to a fast check: the fast check keeps its own schedule.
func TestHangingProbeDoesNotDelayOthers(t *testing.T) {
	hangAddr, _ := countingListener(t)
	fastLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var fast atomic.Int64
	go func() {
		for {
			c, err := fastLn.Accept()
			if err != nil {
				return
			}
			fast.Add(1)
			c.Close()
		}
	}()
	defer fastLn.Close()

	a := newAgent(t,
		checkTOML("hangs", fmt.Sprintf("  type = \"http\"\n  url = \"http://%s/\"", hangAddr), "20s", "10s")+
			checkTOML("fast", fmt.Sprintf("  type = \"tcp\"\n  address = %q", fastLn.Addr().String()), "100ms", "50ms"))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	time.Sleep(1500 * time.Millisecond)
	cancel()
	<-done
	// 15 intervals passed while the other check's probe hung the whole time.
	if n := fast.Load(); n < 8 {
		t.Errorf("fast check probed %d times in 1.5s at a 100ms interval, want at least 8", n)
	}
	if st := a.Statuses(); st[0].LastProbe.IsZero() == false {
		t.Errorf("hanging check finished a probe (%+v), want it still waiting for its 10s timeout", st[0])
	}
}

// TestIdleChecksCostNoGoroutine runs 1,000 checks with a long interval:
// between probes a check has no goroutine and no timer of its own (the
// scheduler's heap holds its next round), so the agent's goroutines are
// its pool of workers and a few more, however many checks there are.
func TestIdleChecksCostNoGoroutine(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	const n = 1000
	var b strings.Builder
	for i := range n {
		b.WriteString(checkTOML(fmt.Sprintf("c%d", i), fmt.Sprintf("  type = \"tcp\"\n  address = %q", ln.Addr().String()), "1h", "1s"))
	}
	a := newAgent(t, b.String())
	before := runtime.NumGoroutine()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	// jitter 0: every check probes at once, then sleeps for an hour.
	deadline := time.Now().Add(20 * time.Second)
	for {
		probed := 0
		for _, s := range a.Statuses() {
			if !s.LastProbe.IsZero() {
				probed++
			}
		}
		if probed == n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d checks probed within 20s", probed, n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	got := runtime.NumGoroutine() - before
	cancel()
	<-done
	if want := sched.AutoWorkers() + 10; got > want {
		t.Errorf("%d goroutines for %d idle checks, want at most %d (the workers and a few more)", got, n, want)
	}
}
