package agent_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
)

// notifierConfig is a check routed to the log notifier name, and that
// notifier.
func notifierConfig(check, name string) string {
	return fmt.Sprintf(`
[[check]]
name = %q
interval = "1h"
timeout = "100ms"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"
  [check.remedy]
  action = "none"
  [check.escalate]
  notify = [%q]
[[notifier]]
name = %q
type = "log"
`, check, name, name)
}

// TestReloadOfNotifiersIsWholeOrNothing: a reload that changes the
// notifiers goes through the notifier hook, applied between the stop of
// the old runners and the start of the new ones; when the hook refuses,
// or there is none, nothing of the new configuration is in force.
func TestReloadOfNotifiersIsWholeOrNothing(t *testing.T) {
	state := t.TempDir()
	log := zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
	var applied []string
	refuse := errors.New("secret file unreadable")
	hook := func(cfg *config.Config) (func(), error) {
		if cfg.Notifiers[0].Name == "broken" {
			return nil, refuse
		}
		return func() { applied = append(applied, cfg.Notifiers[0].Name) }, nil
	}
	a, err := agent.New(parse(t, state, notifierConfig("web", "ops")), log, noRemedy{t}, &memOutbox{}, agent.WithNotifierReload(hook))
	if err != nil {
		t.Fatal(err)
	}
	defer startRun(t, a)()

	if err := a.Reload(context.Background(), parse(t, state, notifierConfig("api", "broken"))); !errors.Is(err, refuse) {
		t.Fatalf("reload with a refused notifier: %v", err)
	}
	if _, ok := statusOf(a, "api"); ok || len(applied) != 0 {
		t.Errorf("a refused reload started check api or applied notifiers %v", applied)
	}
	if err := a.Reload(context.Background(), parse(t, state, notifierConfig("api", "ops-renamed"))); err != nil {
		t.Fatal(err)
	}
	if _, ok := statusOf(a, "api"); !ok || len(applied) != 1 || applied[0] != "ops-renamed" {
		t.Errorf("reload: check api running %v, notifiers applied %v", ok, applied)
	}

	// Without a hook, the agent cannot swap notifiers: refused whole.
	b, err := agent.New(parse(t, t.TempDir(), notifierConfig("web", "ops")), log, noRemedy{t}, &memOutbox{})
	if err != nil {
		t.Fatal(err)
	}
	defer startRun(t, b)()
	if err := b.Reload(context.Background(), parse(t, state, notifierConfig("api", "ops-renamed"))); err == nil || !strings.Contains(err.Error(), "notifier") {
		t.Errorf("reload changing notifiers without a hook: %v", err)
	}
	if _, ok := statusOf(b, "api"); ok {
		t.Error("the refused reload started check api")
	}
}
