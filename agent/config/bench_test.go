package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

// bigConfig returns a configuration with n checks, each with a TCP and an
// HTTP probe, a unit, a remedy and an escalation to one of two notifiers:
// the size of a large fleet host's file.
func bigConfig(n int) []byte {
	var b strings.Builder
	b.WriteString("[agent]\nbus = \"user\"\ninterval = \"1s\"\ntimeout = \"500ms\"\n")
	b.WriteString("\n[[notifier]]\nname = \"ops-webhook\"\ntype = \"webhook\"\nurl = \"https://hooks.example.com/medic\"\n")
	b.WriteString("\n[[notifier]]\nname = \"fleet\"\ntype = \"alertmanager\"\nurl = \"http://127.0.0.1:9093\"\n")
	for i := range n {
		port := 10000 + i%50000
		fmt.Fprintf(&b, `
[[check]]
name = "app-%05d"
unit = "app-%05d.service"
interval = "2s"
timeout = "1s"
failures = 3
grace = "10s"

  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:%d"

  [[check.probe]]
  type = "http"
  url = "http://127.0.0.1:%d/health"
  expect_status = [200, "2xx"]
  expect_body = "ok"

  [check.remedy]
  action = "restart"
  max_restarts = 3
  window = "10m"

  [check.escalate]
  notify = ["ops-webhook", "fleet"]
`, i, i, port, port)
	}
	return []byte(b.String())
}

// BenchmarkParse10000Checks loads and validates a file of 10,000 checks
// (the target: under a second).
func BenchmarkParse10000Checks(b *testing.B) {
	data := bigConfig(10000)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		cfg, err := Parse(data, "big.toml")
		if err != nil {
			b.Fatal(err)
		}
		if len(cfg.Checks) != 10000 {
			b.Fatalf("got %d checks", len(cfg.Checks))
		}
	}
}

// BenchmarkParse10000ChecksInvalid is BenchmarkParse10000Checks with one
// unknown key and one invalid value in every check: 20,000 errors, each
// with its line, must not take quadratic time.
func BenchmarkParse10000ChecksInvalid(b *testing.B) {
	data := []byte(strings.ReplaceAll(strings.ReplaceAll(string(bigConfig(10000)),
		"failures = 3", "failures = 3\nfailurs = 3"), "max_restarts = 3", "max_restarts = -1"))
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		_, err := Parse(data, "big.toml")
		var errs Errors
		if !errors.As(err, &errs) || len(errs) != 20000 {
			b.Fatalf("got %d errors, want 20000: %.300v", len(errs), err)
		}
	}
}

// TestUnknownKeyInEveryCheckOnce is the regression test of a bug the
// benchmark above found: an unknown key set in n checks was reported n
// times at each of its n places (n² errors, and minutes of work for a
// large file).
func TestUnknownKeyInEveryCheckOnce(t *testing.T) {
	data := []byte(strings.ReplaceAll(string(bigConfig(3)), "failures = 3", "failures = 3\nfailurs = 3"))
	_, err := Parse(data, "big.toml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		`big.toml:22: check[0].failurs: unknown key; did you mean "failures"?`,
		`big.toml:49: check[1].failurs: unknown key; did you mean "failures"?`,
		`big.toml:76: check[2].failurs: unknown key; did you mean "failures"?`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
