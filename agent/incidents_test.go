package agent_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	medicmetrics "github.com/medic-watchdog/medic/metrics"
	"github.com/medic-watchdog/medic/remedy"
)

// nopObserver implements agent.Observer doing nothing.
type nopObserver struct{}

func (nopObserver) ForCheck(string, []string) *medicmetrics.CheckObserver { return nil }
func (nopObserver) ObserveRemedy(string, string, string, string)          {}
func (nopObserver) ObserveReload(bool, time.Time)                         {}
func (nopObserver) ForgetCheck(string)                                    {}
func (nopObserver) ObserveUpstreamError(string, int)                      {}
func (nopObserver) ObserveLateness(time.Duration)                         {}
func (nopObserver) ObserveIncident(string, string, time.Duration)         {}

// incidentObserver records ObserveIncident calls; every other event is
// dropped.
type incidentObserver struct {
	nopObserver
	mu    sync.Mutex
	calls []string
}

func (o *incidentObserver) ObserveIncident(check, outcome string, ttr time.Duration) {
	o.mu.Lock()
	o.calls = append(o.calls, fmt.Sprintf("%s %s %t", check, outcome, ttr > 0))
	o.mu.Unlock()
}

func (o *incidentObserver) all() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]string(nil), o.calls...)
}

// TestIncidentHistoryHealKilledBackend kills a backend with SIGKILL under
// a real user manager; medic heals it quietly and, once the check stayed
// healthy for the stable period, keeps the incident in state_dir. After
// medic stopped, the history that `medic incidents` reads holds one record:
// resolved, quiet, one restart, a time to recovery, the diagnosed cause and
// the timeline.
func TestIncidentHistoryHealKilledBackend(t *testing.T) {
	m := systemdtest.Start(t)
	unit := "medic-history-killed.service"
	addr := startBackend(t, m, unit)
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	stateDir := t.TempDir()
	text := fmt.Sprintf("[agent]\nbus = \"user\"\ninterval = \"1s\"\ntimeout = \"300ms\"\nstate_dir = %q\n", stateDir) +
		faultCheck("backend", unit, addr, `  verify_timeout = "5s"
  window = "2s"
  backoff = "200ms"`, "") + "\n[[notifier]]\nname = \"log\"\ntype = \"log\"\n"
	cfg, err := config.Parse([]byte(text), "history.toml")
	if err != nil {
		t.Fatalf("parse config: %v", err)
	}
	obs := &incidentObserver{}
	h := runAgent(t, m, cfg, []string{unit}, zaptest.NewLogger(t, zaptest.Level(zap.InfoLevel)), nil,
		agent.WithUnitWatch(remedy.DialSignals("user")), agent.WithObserver(obs))
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.agent.Statuses()[0].LastOK }, "a first passing probe")

	killed := time.Now()
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	dir := history.Dir(stateDir)
	systemdtest.WaitFor(t, 30*time.Second, func() bool {
		recs, _, _ := history.List(dir)
		return len(recs) > 0
	}, "the incident to be kept in the history")
	kept := time.Since(killed)
	h.stop()

	recs, bad, err := history.List(dir)
	if err != nil || len(bad) != 0 || len(recs) != 1 {
		t.Fatalf("history: %d records, bad %v, err %v; want 1", len(recs), bad, err)
	}
	r := recs[0]
	t.Logf("kept %s after the kill: %s %s, ttr %s, restarts %d, cause %q, escalated %t, %d timeline entries",
		kept.Round(time.Millisecond), r.ID, r.Outcome, r.TimeToRecovery(), r.Restarts, r.Cause, r.Escalated, len(r.Timeline))
	if r.Outcome != history.Resolved || r.Restarts != 1 || r.Escalated || r.Check != "backend" || r.Unit != unit {
		t.Errorf("record %+v: want backend resolved quietly after 1 restart", r)
	}
	if ttr := r.TimeToRecovery(); ttr <= 0 || ttr > kept {
		t.Errorf("time to recovery %s, want more than 0 and at most %s", ttr, kept)
	}
	if r.Cause != "backend crashed" || r.Diagnosis == nil {
		t.Errorf("cause %q (diagnosis %v), want backend crashed", r.Cause, r.Diagnosis)
	}
	if len(r.Timeline) < 3 || r.Timeline[len(r.Timeline)-1].What != "recovered" {
		t.Errorf("timeline %+v: want it to end with the recovery", r.Timeline)
	}
	if g, err := history.Get(dir, r.ID); err != nil || g.ID != r.ID {
		t.Errorf("Get(%s) = %v", r.ID, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, r.ID+".json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("record file %v mode %v, want 0600", err, fi.Mode())
	}
	if got := obs.all(); len(got) != 1 || got[0] != "backend resolved true" {
		t.Errorf("ObserveIncident calls %v, want one resolved with a time to recovery", got)
	}
}
