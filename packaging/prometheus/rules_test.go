package prometheus

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/medic-watchdog/medic/metrics"
)

const (
	rulesFile     = "medic-alerts.yml"
	rulesTestFile = "medic-alerts.test.yml"
)

// promtool returns the path of promtool (Debian package prometheus). It
// skips the test when promtool is missing, and fails it instead under
// MEDIC_REQUIRE_SYSTEMD=1, as in CI.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatalf("promtool not found (apt-get install prometheus): %v", err)
		}
		t.Skipf("promtool not found (apt-get install prometheus): %v", err)
	}
	return p
}

func runPromtool(t *testing.T, stdin []byte, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), promtool(t), args...)
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

func TestCheckRules(t *testing.T) {
	runPromtool(t, nil, "check", "rules", rulesFile)
}

func TestRulesUnitTests(t *testing.T) {
	runPromtool(t, nil, "test", "rules", rulesTestFile)
}

// TestCheckMetrics lints medic's exposition with promtool's naming checks
// (units, _total on counters, help text).
func TestCheckMetrics(t *testing.T) {
	runPromtool(t, scrape(t), "check", "metrics")
}

// TestRulesUseExposedMetrics fails when a rule names a medic metric that
// the metrics package does not expose, for instance after a rename.
func TestRulesUseExposedMetrics(t *testing.T) {
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(bytes.NewReader(scrape(t)))
	if err != nil {
		t.Fatal(err)
	}

	exprRE := regexp.MustCompile(`(?m)^\s*expr:\s*(.*)$`)
	nameRE := regexp.MustCompile(`\bmedic_[a-z_]+\b`)
	used := map[string]bool{}
	for _, m := range exprRE.FindAllStringSubmatch(string(rules), -1) {
		for _, name := range nameRE.FindAllString(m[1], -1) {
			used[name] = true
		}
	}
	if len(used) == 0 {
		t.Fatalf("%s: no medic metric found in any expr", rulesFile)
	}
	var names []string
	for name := range used {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s uses %s, which medic does not expose", rulesFile, name)
		}
	}
}

// scrape returns the text exposition of a metrics.Metrics with every source
// set and every event observed, so that every medic metric is present.
func scrape(t *testing.T) []byte {
	t.Helper()
	m := metrics.New(metrics.Sources{
		Checks: func() []metrics.CheckState {
			return []metrics.CheckState{{Check: "web", State: "healthy"}}
		},
		Outbox: func() []metrics.OutboxStat {
			return []metrics.OutboxStat{{Notifier: "mail"}}
		},
		DBusConnected: func() bool { return true },
	})
	m.ObserveProbe("web", "0-tcp", true, time.Millisecond)
	m.ObserveRemedy("web", "web.service", "restart", "done")
	m.ObserveReload(true, time.Now())

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + metrics.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %s", resp.Status)
	}
	return buf.Bytes()
}
