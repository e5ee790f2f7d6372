package agent_test

import (
	"context"
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/logging"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

// blockingRemedy is a Remedier whose restarts block, ignoring their
// context, until release is closed: a manager that does not answer.
type blockingRemedy struct {
	started chan struct{} // closed at the first restart
	once    atomic.Bool
	release chan struct{}
}

func (b *blockingRemedy) Remedy(context.Context, string, remedy.Action, time.Duration) (remedy.Outcome, error) {
	if b.once.CompareAndSwap(false, true) {
		close(b.started)
	}
	<-b.release
	return remedy.Outcome{JobResult: "done"}, nil
}

func (b *blockingRemedy) State(_ context.Context, name string) (unit.State, error) {
	return unit.State{Name: name, ActiveState: "active", SubState: "running"}, nil
}

// TestReloadDoesNotHoldTheLock reloads a check whose restart hangs (the old
// runner cannot stop before its remedy returns): while the reload waits,
// statuses and triggers of the other checks keep working.
func TestReloadDoesNotHoldTheLock(t *testing.T) {
	t.Parallel() // its own agent, listeners and state directory
	upAddr, _ := countingListenerAnswering(t)
	down := closedAddr(t)
	checks := func(interval string) string {
		return fmt.Sprintf(`
[[check]]
name = "down"
unit = "down.service"
interval = %q
timeout = "50ms"
failures = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
`, interval, down) + checkTOML("up", fmt.Sprintf("  type = \"tcp\"\n  address = %q", upAddr), "1h", "50ms")
	}
	rem := &blockingRemedy{started: make(chan struct{}), release: make(chan struct{})}
	a, err := agent.New(parse(t, t.TempDir(), checks("100ms")), zap.NewNop(), rem, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	defer stop()
	select {
	case <-rem.started:
	case <-time.After(10 * time.Second):
		t.Fatal("no restart of the failing check")
	}

	reloaded := make(chan error, 1)
	go func() { reloaded <- a.Reload(context.Background(), parse(t, t.TempDir(), checks("200ms"))) }()
	time.Sleep(100 * time.Millisecond) // the reload waits for the old runner
	select {
	case err := <-reloaded:
		t.Fatalf("reload returned (%v) while the old runner's restart still hangs", err)
	default:
	}

	got := make(chan []agent.Status, 1)
	go func() { got <- a.Statuses() }()
	select {
	case st := <-got:
		if len(st) != 2 {
			t.Errorf("Statuses during the reload: %d checks, want 2", len(st))
		}
	case <-time.After(time.Second):
		close(rem.release) // let the reload go, then fail
		t.Fatal("Statuses blocked while the reload waited for the old runner")
	}
	waitFor(t, func() bool { s, _ := statusOf(a, "up"); return !s.LastProbe.IsZero() }, "the first probe of up")
	first, _ := statusOf(a, "up")
	if !a.Trigger("up", "test") {
		t.Fatal("Trigger(up) = false")
	}
	waitFor(t, func() bool { s, _ := statusOf(a, "up"); return s.LastProbe.After(first.LastProbe) }, "a triggered probe of up during the reload")

	close(rem.release)
	select {
	case err := <-reloaded:
		if err != nil {
			t.Fatalf("reload: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("reload did not return after the restart did")
	}
}

// countingListenerAnswering accepts TCP connections, counts them and
// closes them at once.
func countingListenerAnswering(t *testing.T) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := new(atomic.Int64)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n.Add(1)
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String(), n
}

// TestOneRoundPerCheck triggers a check many times while its probe hangs:
// the probe of the same target never runs twice at once, and the triggers
// merge into one round after it.
func TestOneRoundPerCheck(t *testing.T) {
	t.Parallel() // its own agent, listener and state directory
	hangAddr, accepted := countingListener(t)
	a := newAgent(t, checkTOML("hangs", fmt.Sprintf("  type = \"http\"\n  url = \"http://%s/\"", hangAddr), "1h", "600ms"))
	stop := startRun(t, a)
	defer stop()
	waitFor(t, func() bool { return accepted.Load() == 1 }, "the first probe")
	for range 20 {
		a.Trigger("hangs", "test")
		time.Sleep(10 * time.Millisecond)
	}
	if n := accepted.Load(); n != 1 {
		t.Errorf("%d connections while the first probe hangs, want 1", n)
	}
	// The first round times out; the merged triggers make one more.
	waitFor(t, func() bool { return accepted.Load() == 2 }, "the round the triggers asked for")
	time.Sleep(300 * time.Millisecond)
	if n := accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2: the triggers made more than one round", n)
	}
}

// TestFailureLogsRateLimited: a check that keeps failing writes its "probe
// failed" line for the first failure, then at most one every 10 s.
func TestFailureLogsRateLimited(t *testing.T) {
	t.Parallel() // its own agent, logger and state directory
	core, logs := observer.New(zapcore.DebugLevel)
	cfg := parse(t, t.TempDir(), checkTOML("down", fmt.Sprintf("  type = \"tcp\"\n  address = %q", closedAddr(t)), "100ms", "50ms"))
	a, err := agent.New(cfg, zap.New(core), noRemedy{t}, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	waitFor(t, func() bool { s, _ := statusOf(a, "down"); return s.Failures >= 10 }, "ten failed rounds")
	stop()
	if n := logs.FilterField(zap.String(logging.EventField, "probe failed")).Len(); n != 1 {
		t.Errorf("%d probe failed lines for 10 failed rounds within a second, want 1", n)
	}
}
