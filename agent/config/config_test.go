package config

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/probe"
)

func TestLoadInvalid(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"invalid-refused-unit.toml", []string{
			`testdata/invalid-refused-unit.toml:3: check[0].unit: medic refuses to act on dbus.service, by its rule for D-Bus (dbus*): medic talks to systemd over it, and so does every other service; use remedy.action = "none" to only watch it`,
		}},
		{"invalid-tcp-missing-port.toml", []string{
			`testdata/invalid-tcp-missing-port.toml:16: check[1].probe[0].address: missing port`,
		}},
		{"invalid-tcp-port.toml", []string{
			`testdata/invalid-tcp-port.toml:7: check[0].probe[0].address: invalid port "70000": want a number from 1 to 65535`,
			`testdata/invalid-tcp-port.toml:11: check[0].probe[1].address: missing host`,
		}},
		{"invalid-duplicate-check.toml", []string{
			`testdata/invalid-duplicate-check.toml:9: check[1].name: duplicate check name "app" (also check[0])`,
		}},
		{"invalid-duplicate-notifier.toml", []string{
			`testdata/invalid-duplicate-notifier.toml:6: notifier[1].name: duplicate notifier name "ops" (also notifier[0])`,
		}},
		{"invalid-unknown-notifier.toml", []string{
			`testdata/invalid-unknown-notifier.toml:8: check[0].escalate.notify[1]: unknown notifier "pager"`,
		}},
		{"invalid-unit-template.toml", []string{
			`testdata/invalid-unit-template.toml:3: check[0].unit: unit "worker@.service" is a template: name an instance, e.g. "worker@1.service"`,
		}},
		{"invalid-unit-suffix.toml", []string{
			`testdata/invalid-unit-suffix.toml:3: check[0].unit: invalid unit name "app": missing a suffix such as ".service"`,
		}},
		{"invalid-unit-missing.toml", []string{
			// The check does not set unit: the line is its [[check]] header.
			`testdata/invalid-unit-missing.toml:1: check[0].unit: missing unit (required unless remedy.action = "none")`,
		}},
		{"invalid-check-name.toml", []string{
			`testdata/invalid-check-name.toml:2: check[0].name: invalid check name "my app": use only letters, digits, '.', '_' and '-'`,
		}},
		{"invalid-unix-relative.toml", []string{
			`testdata/invalid-unix-relative.toml:6: check[0].probe[0].path: "run/app.sock" is not an absolute path`,
		}},
		{"invalid-http-url.toml", []string{
			`testdata/invalid-http-url.toml:6: check[0].probe[0].url: invalid URL "127.0.0.1:8080/health": want an absolute http:// or https:// URL`,
		}},
		{"invalid-expect-status.toml", []string{
			`testdata/invalid-expect-status.toml:7: check[0].probe[0].expect_status[1]: invalid status "6xx": want a code like 200, a range like "200-299" or a class like "2xx" (100-599)`,
		}},
		{"invalid-probe-type.toml", []string{
			`testdata/invalid-probe-type.toml:5: check[0].probe[0].type: unknown probe type "icmp": want "tcp", "unix" or "http"`,
		}},
		{"invalid-probe-field.toml", []string{
			`testdata/invalid-probe-field.toml:7: check[0].probe[0].url: not used by a tcp probe (only by http)`,
		}},
		{"invalid-no-probes.toml", []string{
			`testdata/invalid-no-probes.toml:4: check[0]: no probes: add at least one [[check.probe]]`,
		}},
		{"invalid-timeout-interval.toml", []string{
			`testdata/invalid-timeout-interval.toml:5: check[0].timeout: timeout (1s) must be shorter than interval (1s)`,
		}},
		{"invalid-timeout-inherited.toml", []string{
			`testdata/invalid-timeout-inherited.toml:4: check[0].timeout: timeout (2s) must be shorter than interval (1s)`,
		}},
		{"invalid-zero-duration.toml", []string{
			`testdata/invalid-zero-duration.toml:8: check[0].remedy.window: must be more than 0`,
		}},
		{"invalid-negative-duration.toml", []string{
			`testdata/invalid-negative-duration.toml:4: check[0].grace: must not be negative, got -5s`,
		}},
		{"invalid-backoff.toml", []string{
			`testdata/invalid-backoff.toml:7: check[0].remedy.backoff_max: backoff_max (5m) must not be shorter than backoff (10m)`,
		}},
		{"invalid-jitter.toml", []string{
			`testdata/invalid-jitter.toml:2: agent.jitter: jitter 0.75 out of range: want a fraction of the interval from 0 to 0.5`,
		}},
		{"invalid-workers.toml", []string{
			`testdata/invalid-workers.toml:2: agent.workers: must be 0 (64 per CPU) to 1024, got 2000`,
		}},
		{"invalid-bus.toml", []string{
			`testdata/invalid-bus.toml:2: agent.bus: invalid bus "session": want "system" or "user"`,
		}},
		{"invalid-metrics-listen.toml", []string{
			`testdata/invalid-metrics-listen.toml:2: agent.metrics_listen: invalid listen address "9464": want host:port, e.g. "127.0.0.1:9464"`,
		}},
		{"invalid-http-listen.toml", []string{
			`testdata/invalid-http-listen.toml:2: agent.http_listen: invalid listen address "127.0.0.1": want host:port, e.g. "127.0.0.1:9465"`,
		}},
		{"invalid-failures.toml", []string{
			`testdata/invalid-failures.toml:4: check[0].failures: must be at least 1, got 0`,
		}},
		{"invalid-retry-interval.toml", []string{
			`testdata/invalid-retry-interval.toml:5: check[0].retry_interval: retry_interval (10s) must not be longer than interval (5s)`,
		}},
		{"invalid-duration-unit.toml", []string{
			// check[0] also sets interval: the line must be check[1]'s.
			`testdata/invalid-duration-unit.toml:7: check[1].interval: invalid duration "5": want a number with a unit (ns, us, ms, s, m, h), e.g. "10s" or "1h30m"`,
		}},
		{"invalid-unknown-key.toml", []string{
			`testdata/invalid-unknown-key.toml:7: check[0].probe[0].address: missing address: want host:port, e.g. "127.0.0.1:8080"`,
			`testdata/invalid-unknown-key.toml:9: check[0].probe[0].adress: unknown key; did you mean "address"?`,
		}},
		{"invalid-syntax.toml", []string{
			`testdata/invalid-syntax.toml:2: agent.interval: strings cannot contain newlines`,
		}},
		{"invalid-wrong-type.toml", []string{
			`testdata/invalid-wrong-type.toml:4: check[0].failures: wrong type: got string, want integer`,
		}},
		{"invalid-check-table.toml", []string{
			`testdata/invalid-check-table.toml:1: check: wrong type: write [[check]] (an array of tables), not [check]`,
		}},
		{"invalid-email.toml", []string{
			`testdata/invalid-email.toml:1: notifier[0].host: missing SMTP host`,
			`testdata/invalid-email.toml:4: notifier[0].tls: invalid tls "ssl": want "starttls", "tls" or "none"`,
			`testdata/invalid-email.toml:5: notifier[0].from: invalid address "medic": mail: missing '@' or angle-addr`,
			`testdata/invalid-email.toml:6: notifier[0].to: missing recipients: want at least one address`,
		}},
		{"invalid-webhook.toml", []string{
			`testdata/invalid-webhook.toml:4: notifier[0].url: invalid URL "hooks.example.com": want an absolute http:// or https:// URL`,
			`testdata/invalid-webhook.toml:5: notifier[0].format: invalid format "xml": want "json" or "slack"`,
		}},
		{"invalid-digest.toml", []string{
			`testdata/invalid-digest.toml:4: notifier[0].digest: must not be negative, got -30s`,
			`testdata/invalid-digest.toml:10: notifier[1].digest: not used by an alertmanager notifier: Alertmanager groups alerts itself (group_by, group_wait in its route)`,
		}},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			cfg, err := Load(filepath.Join("testdata", tt.file))
			if err == nil {
				t.Fatalf("Load() = %+v, nil; want errors", cfg)
			}
			if cfg != nil {
				t.Errorf("Load() returned a config along with its errors")
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Fatalf("Load() error %T is not Errors: %v", err, err)
			}
			got := strings.Split(err.Error(), "\n")
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Load() errors:\n got: %q\nwant: %q", got, tt.want)
			}
			if len(errs) != len(tt.want) {
				t.Errorf("len(Errors) = %d, want %d", len(errs), len(tt.want))
			}
		})
	}
	files, err := filepath.Glob("testdata/invalid-*.toml")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if !covered[filepath.Base(f)] {
			t.Errorf("%s has no expected errors in this test", f)
		}
	}
}

func TestAllProblemsAtOnce(t *testing.T) {
	_, err := Load("testdata/five-errors.toml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Load() error = %v, want Errors", err)
	}
	want := []struct {
		line int
		key  string
	}{
		{2, "agent.bus"},
		{3, "agent.jitter"},
		{8, "check[0].failures"},
		{11, "check[0].probe[0].address"},
		{13, "check[0].escalate.notify[0]"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i, w := range want {
		if e := errs[i]; e.Line != w.line || e.Key != w.key || e.File != "testdata/five-errors.toml" {
			t.Errorf("error %d = {%s %d %s}, want {testdata/five-errors.toml %d %s}", i, e.File, e.Line, e.Key, w.line, w.key)
		}
	}
	var one *Error
	if !errors.As(err, &one) || one != errs[0] {
		t.Errorf("errors.As(err, *Error) = %v, want the first error", one)
	}
}

func TestUnknownKeys(t *testing.T) {
	src := `[agent]
intervall = "5s"

[metrics]
listen = ":9464"

[[check]]
name = "a"
unit = "a.service"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:2"
  timeout = "1s"
`
	_, err := Parse([]byte(src), "medic.toml")
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("Parse() error = %v, want Errors", err)
	}
	want := []Error{
		{"medic.toml", 2, "agent.intervall", `unknown key; did you mean "interval"?`},
		{"medic.toml", 4, "metrics", "unknown key"}, // once for the table, not for each key in it
		{"medic.toml", 16, "check[0].probe[1].timeout", "unknown key"},
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), err)
	}
	for i := range want {
		if *errs[i] != want[i] {
			t.Errorf("error %d = %+v, want %+v", i, *errs[i], want[i])
		}
	}
}

func TestExample(t *testing.T) {
	const path = "../../config.example.toml"
	cfg, err := Load(path)
	if err != nil {
		t.Fatalf("Load(%s): %v", path, err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate(): %v", err)
	}

	// Every value the example writes out is the default, except the values
	// that describe the example's own backend and routing.
	if cfg.Agent != DefaultAgent {
		t.Errorf("[agent] = %+v\nwant DefaultAgent %+v", cfg.Agent, DefaultAgent)
	}
	if len(cfg.Checks) != 1 {
		t.Fatalf("got %d checks, want 1", len(cfg.Checks))
	}
	got := cfg.Checks[0]
	want := DefaultCheck
	want.Name, want.Unit, want.Probes = "my-app", "my-app.service", got.Probes
	want.Escalate.Notify = []string{"log"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("check[0] = %+v\nwant defaults %+v", got, want)
	}
	if len(got.Probes) != 2 || got.Probes[0].Type != "tcp" || got.Probes[1].Type != "http" {
		t.Errorf("probes = %+v, want a tcp and an http probe", got.Probes)
	}

	byType := map[NotifierType]Notifier{}
	for _, n := range cfg.Notifiers {
		byType[n.Type] = n
	}
	for _, typ := range NotifierTypes() {
		if _, ok := byType[typ]; !ok {
			t.Errorf("no %s notifier in the example", typ)
		}
	}
	if n := byType[NotifierEmail].Settings.(*EmailNotifier); n.Port != DefaultEmailPort || n.TLS != DefaultEmailTLS {
		t.Errorf("email port, tls = %d, %q; want defaults %d, %q", n.Port, n.TLS, DefaultEmailPort, DefaultEmailTLS)
	}
	if n := byType[NotifierWebhook].Settings.(*WebhookNotifier); n.Format != DefaultWebhookFormat {
		t.Errorf("webhook format = %q, want default %q", n.Format, DefaultWebhookFormat)
	}

	// The example with nothing but what is not a default decodes to the
	// same config: the written defaults are the real ones.
	var kept []string
	defaultLine := regexp.MustCompile(`^\s*(bus|interval|timeout|jitter|state_dir|status_socket|metrics_listen|http_listen|max_concurrent_remedies|workers|retry_interval|failures|successes|grace|action|job_timeout|verify_timeout|max_restarts|window|backoff|backoff_max|retry_after|repeat_interval|notify_on_recovery|port|tls|format|method|digest) =`)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(src), "\n") {
		if !defaultLine.MatchString(l) {
			kept = append(kept, l)
		}
	}
	bare, err := Parse([]byte(strings.Join(kept, "\n")), "bare.toml")
	if err != nil {
		t.Fatalf("Parse(example without defaults): %v", err)
	}
	cfg.File, bare.File = "", ""
	cfg.loc, bare.loc = nil, nil
	cfg.Checks[0].Probes[1].Method = "" // "GET" is written out; empty means GET
	if !reflect.DeepEqual(cfg, bare) {
		t.Errorf("example without its default lines decodes differently:\n got %+v\nwant %+v", bare, cfg)
	}

	// Every option appears in the example, set or commented out.
	for table, keys := range knownKeys {
		for _, k := range keys {
			if table == "" {
				continue // the tables themselves
			}
			if !regexp.MustCompile(`(?m)^\s*#?\s*(` + k + ` =|\[\[?` + table + `\.` + k + `\]\]?)`).Match(src) {
				t.Errorf("option %s.%s is not in the example", table, k)
			}
		}
	}
}

func TestCheckDefaults(t *testing.T) {
	src := `[agent]
interval = "30s"
timeout = "5s"

[[check]]
name = "inherits"
unit = "a.service"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"

[[check]]
name = "fast"
unit = "b.service"
interval = "500ms"
timeout = "200ms"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:2"

[[check]]
name = "explicit"
unit = "c.service"
retry_interval = "3s"
remedy.action = "none"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:3"
`
	cfg, err := Parse([]byte(src), "medic.toml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name                         string
		wantInterval, wantTimeout    time.Duration
		wantRetry                    time.Duration
		wantAction                   string
		wantFailures, wantMaxRestart int
	}{
		{"inherits", 30 * time.Second, 5 * time.Second, time.Second, "restart", 3, 3},
		{"fast", 500 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond, "restart", 3, 3},
		{"explicit", 30 * time.Second, 5 * time.Second, 3 * time.Second, "none", 3, 3},
	}
	for i, tt := range tests {
		c := cfg.Checks[i]
		if c.Name != tt.name || c.Interval.Duration != tt.wantInterval || c.Timeout.Duration != tt.wantTimeout ||
			c.RetryInterval.Duration != tt.wantRetry || c.Remedy.Action != tt.wantAction ||
			c.Failures != tt.wantFailures || c.Remedy.MaxRestarts != tt.wantMaxRestart {
			t.Errorf("check %q = %+v, want interval %v timeout %v retry %v action %s", c.Name, c,
				tt.wantInterval, tt.wantTimeout, tt.wantRetry, tt.wantAction)
		}
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.toml"))
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	var errs Errors
	if errors.As(err, &errs) {
		t.Errorf("Load(missing) returned Errors; want a plain error")
	}
}

// TestValidateInCode checks a Config built in code: no source, so no lines.
func TestValidateInCode(t *testing.T) {
	c := DefaultConfig
	ch := DefaultCheck
	ch.Name, ch.Unit = "app", "app.service"
	ch.Probes = []Probe{{Type: "tcp", TCPProbe: TCPProbe{Address: "127.0.0.1"}}}
	c.Checks = []Check{ch}
	if got, want := c.Validate().Error(), "check[0].probe[0].address: missing port"; got != want {
		t.Errorf("Validate() = %q, want %q", got, want)
	}
	c.File = "medic.toml"
	if got, want := c.Validate().Error(), "medic.toml: check[0].probe[0].address: missing port"; got != want {
		t.Errorf("Validate() = %q, want %q", got, want)
	}
	c.Checks[0].Probes[0].Address = "127.0.0.1:80"
	if err := c.Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
	if err := DefaultConfig.Validate(); err != nil {
		t.Errorf("DefaultConfig.Validate() = %v, want nil", err)
	}
}

func TestErrorFormat(t *testing.T) {
	tests := []struct {
		err  Error
		want string
	}{
		{Error{"medic.toml", 12, "check[2].probe[0].address", "missing port"}, "medic.toml:12: check[2].probe[0].address: missing port"},
		{Error{"/etc/medic/medic.toml", 0, "agent.bus", "bad"}, "/etc/medic/medic.toml: agent.bus: bad"},
		{Error{"medic.toml", 3, "", "syntax"}, "medic.toml:3: syntax"},
		{Error{"", 3, "k", "m"}, "line 3: k: m"},
		{Error{"", 0, "k", "m"}, "k: m"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
	errs := Errors{&tests[0].err, &tests[1].err}
	if got, want := errs.Error(), tests[0].want+"\n"+tests[1].want; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
}

func TestUnitName(t *testing.T) {
	tests := []struct {
		unit    string
		wantErr string // substring; "" means valid
	}{
		{"my-app.service", ""},
		{"worker@1.service", ""},
		{"getty@tty1.service", ""},
		{"dev-sda1.device", ""},
		{`foo\x2dbar.mount`, ""},
		{"a:b_c.d.socket", ""},
		{"x.target", ""},
		{"x.automount", ""},
		{"x.swap", ""},
		{"x.timer", ""},
		{"x.path", ""},
		{"x.slice", ""},
		{"x.scope", ""},
		{"worker@.service", "is a template"},
		{"app", "missing a suffix"},
		{"app.servic", `unknown unit type ".servic"`},
		{".service", "empty name"},
		{"my app.service", "use letters"},
		{"app/x.service", "use letters"},
		{"a@b@c.service", "instance may hold"},
		{strings.Repeat("a", 248) + ".service", "256 characters long"},
		{strings.Repeat("a", 247) + ".service", ""},
	}
	for _, tt := range tests {
		got := checkUnitName(tt.unit)
		if tt.wantErr == "" && got != "" || !strings.Contains(got, tt.wantErr) {
			t.Errorf("checkUnitName(%q) = %q, want %q", tt.unit, got, tt.wantErr)
		}
	}
}

func TestProbeValidation(t *testing.T) {
	tests := []struct {
		probe   Probe
		wantErr string // the whole message list; "" means valid
	}{
		{Probe{Type: "tcp", TCPProbe: TCPProbe{Address: "db.internal:5432"}}, ""},
		{Probe{Type: "tcp", TCPProbe: TCPProbe{Address: "[::1]:8080"}}, ""},
		{Probe{Type: "tcp", TCPProbe: TCPProbe{Address: "::1:8080"}}, `p.address: invalid address "::1:8080": too many colons in address`},
		{Probe{Type: "tcp", TCPProbe: TCPProbe{Address: "host:http"}}, `p.address: invalid port "http": want a number from 1 to 65535`},
		{Probe{Type: "tcp", TCPProbe: TCPProbe{Address: "host:0"}}, `p.address: invalid port "0": want a number from 1 to 65535`},
		{Probe{Type: "tcp"}, `p.address: missing address: want host:port, e.g. "127.0.0.1:8080"`},
		{Probe{Type: "unix", UnixProbe: UnixProbe{Path: "/run/app.sock"}}, ""},
		{Probe{Type: "unix", UnixProbe: UnixProbe{Path: "/" + strings.Repeat("x", 107)}}, "p.path: socket path is 108 bytes long: at most 107 fit in a Unix socket address"},
		{Probe{Type: "unix", UnixProbe: UnixProbe{Path: "/run/a.sock"}, TCPProbe: TCPProbe{Address: "x:1"}}, "p.address: not used by a unix probe (only by tcp)"},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "https://127.0.0.1:8443/health", TLSSkipVerify: true, ServerName: "app", CAFile: "/etc/ca.pem",
			Method: "HEAD", Headers: map[string]string{"Host": "app.example.com"}, ExpectStatus: []any{int64(204), "2xx", "300-302"}}}, ""},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http://127.0.0.1/", TLSSkipVerify: true}}, "p.tls_skip_verify: only used with an https:// URL"},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http:///health"}}, `p.url: invalid URL "http:///health": missing host`},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http://h:99999/"}}, `p.url: invalid URL "http://h:99999/": invalid port "99999": want a number from 1 to 65535`},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http://h/", Method: "GE T"}}, `p.method: invalid method "GE T"`},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http://h/", Headers: map[string]string{"X-A": "a\r\nX-B: b"}}}, `p.headers: header "X-A": value contains a line break or NUL`},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http://h/", ExpectStatus: []any{int64(99)}}}, `p.expect_status[0]: invalid status 99: want a code in 100-599`},
		{Probe{Type: "http", HTTPProbe: HTTPProbe{URL: "http://h/", ExpectStatus: []any{true}}}, `p.expect_status[0]: invalid status true: want a code like 200, a range like "200-299" or a class like "2xx"`},
		{Probe{TCPProbe: TCPProbe{Address: "x:1"}}, `p.type: missing probe type: want "tcp", "unix" or "http"`},
	}
	for _, tt := range tests {
		v := &validator{}
		v.probe("p", &tt.probe)
		got := ""
		if len(v.errs) > 0 {
			got = v.errs.Error()
		}
		if got != tt.wantErr {
			t.Errorf("probe %+v:\n got %q\nwant %q", tt.probe, got, tt.wantErr)
		}
	}
}

func TestProbeSpec(t *testing.T) {
	p := Probe{Type: "http", HTTPProbe: HTTPProbe{
		URL: "https://127.0.0.1:8443/health", Method: "HEAD",
		Headers:      map[string]string{"Host": "app"},
		ExpectStatus: []any{int64(200), "3xx", "bogus"},
		ExpectBody:   "ok", TLSSkipVerify: true, CAFile: "/ca.pem", ServerName: "app",
	}}
	want := probe.Spec{Type: "http", HTTP: probe.HTTPOptions{
		URL: "https://127.0.0.1:8443/health", Method: "HEAD",
		Headers:      map[string]string{"Host": "app"},
		ExpectStatus: []probe.StatusRange{{Min: 200, Max: 200}, {Min: 300, Max: 399}},
		ExpectBody:   "ok", InsecureSkipVerify: true, CAFile: "/ca.pem", ServerName: "app",
	}}
	if got := p.Spec(); !reflect.DeepEqual(got, want) {
		t.Errorf("Spec() = %+v, want %+v", got, want)
	}
	if _, err := p.StatusRanges(); err == nil || !strings.Contains(err.Error(), `expect_status[2]: invalid status "bogus"`) {
		t.Errorf("StatusRanges() error = %v, want one naming expect_status[2]", err)
	}
	tcp := Probe{Type: "tcp", TCPProbe: TCPProbe{Address: "127.0.0.1:80"}}
	if got, want := tcp.Spec(), (probe.Spec{Type: "tcp", Address: "127.0.0.1:80"}); !reflect.DeepEqual(got, want) {
		t.Errorf("Spec() = %+v, want %+v", got, want)
	}
}

// TestLoadRefusesInlinePasswordReadableByOthers: an inline SMTP password in
// a world-readable file is refused with its line; 0640 is accepted.
func TestLoadRefusesInlinePasswordReadableByOthers(t *testing.T) {
	text := `[[notifier]]
name = "mail"
type = "email"
host = "smtp.example.com"
username = "medic"
password = "hunter2"
from = "medic@example.com"
to = ["ops@example.com"]
`
	path := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	want := path + ":6: notifier[0].password: password written inline in a file that others can read (mode 0644)"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("Load(0644) error = %v, want it to contain %q", err, want)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error shows the password: %v", err)
	}
	if err := os.Chmod(path, 0o640); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(path); err != nil {
		t.Errorf("Load(0640) = %v, want no error", err)
	}
}
