package agent_test

import (
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/notify"
)

// digest from the configuration reaches the outbox through
// notify.Digester; alertmanager notifiers stay Runners.
func TestBuildNotifiersDigest(t *testing.T) {
	cfg, err := config.Parse([]byte(`
[[notifier]]
name = "log"
type = "log"
digest = "30s"

[[notifier]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:1/hook"

[[notifier]]
name = "fleet"
type = "alertmanager"
url = "http://127.0.0.1:9093"
`), "digest.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	ns, err := agent.BuildNotifiers(cfg, "web1", zaptest.NewLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]time.Duration{"log": 30 * time.Second, "hook": 0, "fleet": 0}
	for _, n := range ns {
		if got := notify.DigestWindow(n); got != want[n.Name()] {
			t.Errorf("%s: digest window %s, want %s", n.Name(), got, want[n.Name()])
		}
	}
	if _, ok := ns[2].(agent.Runner); !ok {
		t.Errorf("alertmanager notifier %T is no longer a Runner", ns[2])
	}
}
