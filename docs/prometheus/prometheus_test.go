package prometheus

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/medic-watchdog/medic/metrics"
)

const (
	configFile = "prometheus.yml"
	rulesFile  = "medic.rules.yml"
	// alertsFile is medic's per-host alerting rules, which configFile
	// loads as medic-alerts.yml from the same directory.
	alertsFile = "../../packaging/prometheus/medic-alerts.yml"
)

// ruleTests are the promtool unit tests of rulesFile.
var ruleTests = []string{"medic.rules.test.yml", "medic.rules.ttr.test.yml"}

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

func runPromtool(t *testing.T, dir string, args ...string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	t.Logf("promtool %s:\n%s", strings.Join(args, " "), out)
}

// TestCheckConfig installs the example as its comments say (this
// directory's files with medic's alerting rules beside them) and checks it
// with promtool check config, which also checks the rule files and the
// file_sd target files.
func TestCheckConfig(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	targets, err := filepath.Glob("targets/*.json")
	if err != nil || len(targets) == 0 {
		t.Fatalf("no targets/*.json: %v", err)
	}
	if err := os.Mkdir(filepath.Join(dir, "targets"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range append(targets, configFile, rulesFile) {
		copyFile(t, f, filepath.Join(dir, f))
	}
	copyFile(t, alertsFile, filepath.Join(dir, "medic-alerts.yml"))
	runPromtool(t, dir, "check", "config", configFile)
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckRules(t *testing.T) {
	t.Parallel()
	runPromtool(t, ".", "check", "rules", rulesFile)
}

func TestRulesUnitTests(t *testing.T) {
	t.Parallel()
	runPromtool(t, ".", append([]string{"test", "rules"}, ruleTests...)...)
}

var recordRE = regexp.MustCompile(`(?m)^\s*- record:\s*(\S+)\s*$`)

// TestEveryRecordTested fails when a recording rule has no promtool test
// asserting its value.
func TestEveryRecordTested(t *testing.T) {
	t.Parallel()
	rules := readFile(t, rulesFile)
	var tests strings.Builder
	for _, f := range ruleTests {
		tests.WriteString(readFile(t, f))
	}
	exprRE := regexp.MustCompile(`(?m)^\s*- expr:\s*([a-zA-Z0-9_:]+)`)
	tested := map[string]bool{}
	for _, m := range exprRE.FindAllStringSubmatch(tests.String(), -1) {
		tested[m[1]] = true
	}
	records := recordRE.FindAllStringSubmatch(rules, -1)
	if len(records) == 0 {
		t.Fatalf("%s: no recording rules", rulesFile)
	}
	for _, m := range records {
		if !tested[m[1]] {
			t.Errorf("%s records %s, which no test in %v asserts", rulesFile, m[1], ruleTests)
		}
	}
}

// TestRulesUseExposedMetrics fails when a rule names a medic metric that
// the metrics package does not expose (after a rename, say), or matches on
// a label that metric does not have, or on a state medic_check_state
// never takes.
func TestRulesUseExposedMetrics(t *testing.T) {
	t.Parallel()
	rules := readFile(t, rulesFile)
	families := exposed(t)

	// Selectors: a medic metric name and its label matchers, if any.
	selRE := regexp.MustCompile(`\b(medic_[a-z_]+?)(_bucket|_sum|_count)?\b(\{[^}]*\})?`)
	matcherRE := regexp.MustCompile(`([a-zA-Z_]+)\s*(=~|!~|!=|=)\s*"([^"]*)"`)
	// Recorded series (level:metric:operations) are not medic's.
	recordedRE := regexp.MustCompile(`[a-zA-Z0-9_]*:[a-zA-Z0-9_:]+`)
	used := 0
	for _, line := range strings.Split(rules, "\n") {
		code, _, _ := strings.Cut(line, "#")
		if strings.Contains(code, "record:") || strings.Contains(code, "alert:") {
			continue
		}
		code = recordedRE.ReplaceAllString(code, " ")
		for _, m := range selRE.FindAllStringSubmatch(code, -1) {
			name, suffix, matchers := m[1], m[2], m[3]
			labels, ok := labelNames(families, name, suffix)
			if !ok {
				t.Errorf("%s uses %s%s, which medic does not expose", rulesFile, name, suffix)
				continue
			}
			used++
			// Prometheus adds job and instance at scrape time.
			labels = append(slices.Clone(labels), "job", "instance")
			if suffix == "_bucket" {
				labels = append(labels, "le")
			}
			for _, mm := range matcherRE.FindAllStringSubmatch(matchers, -1) {
				label, value := mm[1], mm[3]
				if !slices.Contains(labels, label) {
					t.Errorf("%s matches %s on label %q; its labels are %v", rulesFile, name, label, labels)
				}
				if name == "medic_check_state" && label == "state" {
					checkStates(t, families[name], value)
				}
			}
		}
	}
	if used == 0 {
		t.Fatalf("%s: no medic metric found", rulesFile)
	}
}

// labelNames returns the label names of the exposed series of name,
// sorted; ok is false when medic does not expose name, or name is not a
// histogram but suffix is set.
func labelNames(families map[string]*dto.MetricFamily, name, suffix string) (labels []string, ok bool) {
	mf, ok := families[name]
	if !ok {
		// A name the selector's regexp cut too short: medic_foo_count.
		if mf, ok = families[name+suffix]; !ok {
			return nil, false
		}
		suffix = ""
	}
	if suffix != "" && mf.GetType() != dto.MetricType_HISTOGRAM {
		return nil, false
	}
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(labels, l.GetName()) {
				labels = append(labels, l.GetName())
			}
		}
	}
	slices.Sort(labels)
	return labels, true
}

// checkStates fails when the regexp alternatives in value name a state
// medic_check_state does not take.
func checkStates(t *testing.T, mf *dto.MetricFamily, value string) {
	t.Helper()
	var states []string
	for _, m := range mf.GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "state" {
				states = append(states, l.GetValue())
			}
		}
	}
	for _, s := range strings.Split(value, "|") {
		if !slices.Contains(states, s) {
			t.Errorf("%s matches medic_check_state on state %q; its states are %v", rulesFile, s, states)
		}
	}
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// exposed returns the metric families of a metrics.Metrics with every
// source set and every event observed, so that every medic metric is
// present.
func exposed(t *testing.T) map[string]*dto.MetricFamily {
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
	m.ObserveIncident("web", "resolved", 3*time.Second)

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
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// TestReadmeNamesRecords fails when the README's Fleet section names a
// recorded series that medic.rules.yml does not record, after a rename.
func TestReadmeNamesRecords(t *testing.T) {
	t.Parallel()
	readme := readFile(t, filepath.Join("..", "..", "README.md"))
	start := strings.Index(readme, "\n## Fleet\n")
	if start < 0 {
		t.Fatal("README.md has no Fleet section")
	}
	section := readme[start+1:]
	if end := strings.Index(section[1:], "\n## "); end >= 0 {
		section = section[:end+1]
	}
	recorded := map[string]bool{}
	for _, m := range recordRE.FindAllStringSubmatch(readFile(t, rulesFile), -1) {
		recorded[m[1]] = true
	}
	named := regexp.MustCompile("`((?:instance|instance_check|job|job_check|job_le):[a-zA-Z0-9_:]+)`").FindAllStringSubmatch(section, -1)
	if len(named) == 0 {
		t.Fatal("README.md's Fleet section names no recorded series")
	}
	for _, m := range named {
		if !recorded[m[1]] {
			t.Errorf("README.md's Fleet section names %s, which %s does not record", m[1], rulesFile)
		}
	}
	if !strings.Contains(section, "MedicCheckFailingFleetWide") {
		t.Error("README.md's Fleet section does not name the fleet alert")
	}
}
