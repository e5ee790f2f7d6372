package agent_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"net"
	"sync"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/remedy"
	"github.com/medic-watchdog/medic/unit"
)

func parse(t *testing.T, state, checks string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf("[agent]\nbus = \"user\"\njitter = 0.0\nstate_dir = %q\n%s", state, checks)), "test.toml")
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func startRun(t *testing.T, a *agent.Agent) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() { cancel(); <-done }
}

func statusOf(a *agent.Agent, check string) (agent.Status, bool) {
	for _, s := range a.Statuses() {
		if s.Check == check {
			return s, true
		}
	}
	return agent.Status{}, false
}

// TestReloadKeepsUnchangedChecks reloads with one check unchanged, one
// removed and one added: the unchanged check keeps its state and counters,
// the removed one is gone, the new one runs.
func TestReloadKeepsUnchangedChecks(t *testing.T) {
	state := t.TempDir()
	closed := closedAddr(t)
	check := func(name, interval string) string {
		return strings.Replace(checkTOML(name, fmt.Sprintf("  type = \"tcp\"\n  address = %q", closed), interval, "50ms"),
			"[[check]]\n", "[[check]]\nfailures = 1\ngrace = \"0s\"\n", 1)
	}
	keep, gone, added := check("keep", "100ms"), check("gone", "1h"), check("added", "100ms")

	cfg := parse(t, state, keep+gone)
	a, err := agent.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel)), noRemedy{t}, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	defer stop()
	waitFor(t, func() bool { s, _ := statusOf(a, "keep"); return s.State == "failing" }, "keep to be failing")
	before, _ := statusOf(a, "keep")

	if err := a.Reload(context.Background(), parse(t, state, keep+added)); err != nil {
		t.Fatalf("Reload: %v", err)
	}
	after, _ := statusOf(a, "keep")
	if after.State != "failing" || !after.Since.Equal(before.Since) || after.Incident != before.Incident || after.Failures < before.Failures {
		t.Errorf("unchanged check lost its state: before %+v\nafter %+v", before, after)
	}
	if _, ok := statusOf(a, "gone"); ok {
		t.Error("removed check still reported")
	}
	waitFor(t, func() bool { s, ok := statusOf(a, "added"); return ok && s.State == "failing" }, "the added check to fail")
	if line := a.StatusLine(); line != "2 checks, 2 failing, 0 gave up" {
		t.Errorf("status line = %q", line)
	}
}

// TestReloadFailureKeepsConfig: a failed reload is reported in the status
// line until a good one succeeds.
func TestReloadFailureKeepsConfig(t *testing.T) {
	state := t.TempDir()
	cfg := parse(t, state, checkTOML("web", "  type = \"tcp\"\n  address = \"127.0.0.1:1\"", "1h", "50ms"))
	a, err := agent.New(cfg, zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), noRemedy{t}, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	defer stop()
	a.ReloadFailed(errors.New("medic.toml:3: check[0].interval: invalid duration \"soon\""))
	if line := a.StatusLine(); !strings.Contains(line, "config reload failed, old config kept: medic.toml:3: check[0].interval") {
		t.Errorf("status line = %q", line)
	}
	if _, ok := statusOf(a, "web"); !ok {
		t.Error("the running check is gone after a failed reload")
	}
	if err := a.Reload(context.Background(), cfg); err != nil {
		t.Fatal(err)
	}
	if a.ReloadError() != nil || strings.Contains(a.StatusLine(), "failed") {
		t.Errorf("a good reload did not clear the error: %q", a.StatusLine())
	}
}

// TestPauseSurvivesRestart pauses a failing check: it is not remedied, the
// pause is in state_dir, and a new agent on the same state_dir (medic
// restarted) still has it. Resume ends it and the check is remedied.
func TestPauseSurvivesRestart(t *testing.T) {
	state := t.TempDir()
	text := fmt.Sprintf(`
[[check]]
name = "web"
unit = "web.service"
interval = "100ms"
timeout = "50ms"
failures = 3
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
`, closedAddr(t))
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	rem := &countingRemedy{}
	a, err := agent.New(parse(t, state, text), log, rem, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	stop := startRun(t, a)
	p, err := a.Pause(context.Background(), "web", time.Hour, "deploy 4.2")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.Pause(context.Background(), "nope", time.Hour, ""); !errors.Is(err, agent.ErrNoCheck) {
		t.Errorf("Pause(nope) = %v, want ErrNoCheck", err)
	}
	waitFor(t, func() bool { s, _ := statusOf(a, "web"); return s.State == "failing" }, "the paused check to be failing")
	time.Sleep(300 * time.Millisecond)
	if n := rem.count(); n != 0 {
		t.Errorf("%d remedies while paused, want 0", n)
	}
	s, _ := statusOf(a, "web")
	if s.Paused == nil || s.Paused.Reason != "deploy 4.2" || !s.Paused.Until.Equal(p.Until) {
		t.Errorf("status paused = %+v", s.Paused)
	}
	stop()
	if _, err := os.Stat(filepath.Join(state, "paused.json")); err != nil {
		t.Fatalf("pause not recorded: %v", err)
	}

	// medic restarts: the pause is still in force.
	a2, err := agent.New(parse(t, state, text), log, rem, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	stop2 := startRun(t, a2)
	defer stop2()
	waitFor(t, func() bool { s, _ := statusOf(a2, "web"); return s.State == "failing" }, "failing after the restart")
	if s, _ := statusOf(a2, "web"); s.Paused == nil || s.Paused.Reason != "deploy 4.2" {
		t.Fatalf("pause lost across a restart: %+v", s.Paused)
	}
	if n := rem.count(); n != 0 {
		t.Errorf("%d remedies while paused after the restart", n)
	}
	if err := a2.Resume(context.Background(), "web"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return rem.count() > 0 }, "a remedy after resume")
}

// countingRemedy counts remedies and reports every job as failed (no unit
// exists): this test is about whether medic acts, not what systemd does.
type countingRemedy struct {
	mu sync.Mutex
	n  int
}

func (c *countingRemedy) Remedy(context.Context, string, remedy.Action, time.Duration) (remedy.Outcome, error) {
	c.mu.Lock()
	c.n++
	c.mu.Unlock()
	return remedy.Outcome{JobResult: "failed"}, nil
}

func (c *countingRemedy) State(_ context.Context, name string) (unit.State, error) {
	return unit.State{Name: name}, nil
}

func (c *countingRemedy) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func waitFor(t *testing.T, cond func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
