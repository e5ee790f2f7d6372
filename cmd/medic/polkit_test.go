package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dop251/goja"

	"github.com/medic-watchdog/medic/agent/config"
)

// polkitStub is the part of polkitd's JavaScript environment a rule sees:
// polkit.addRule, polkit.Result (values as in polkitd's init.js, where
// NOT_HANDLED is null) and polkit.log.
const polkitStub = `
var rules = [];
var polkit = {
    Result: {NO: "no", YES: "yes", AUTH_SELF: "auth_self", AUTH_SELF_KEEP: "auth_self_keep",
             AUTH_ADMIN: "auth_admin", AUTH_ADMIN_KEEP: "auth_admin_keep", NOT_HANDLED: null},
    addRule: function (f) { rules.push(f); },
    log: function () {}
};
function decide(id, user, details) {
    var action = {id: id, lookup: function (k) { return details[k]; }};
    var subject = {user: user, groups: [], local: false, active: false, pid: 1};
    for (var i = 0; i < rules.length; i++) {
        var r = rules[i](action, subject);
        if (r !== null && r !== undefined) { return r; }
    }
    return "not_handled";
}
`

// polkitEngine evaluates rule in a fresh ECMAScript 5.1 runtime with the
// polkit stub, and returns a function that asks it for a decision.
func polkitEngine(t *testing.T, rule string) func(id, user string, details map[string]string) string {
	t.Helper()
	vm := goja.New()
	if _, err := vm.RunString(polkitStub); err != nil {
		t.Fatalf("stub: %v", err)
	}
	if _, err := vm.RunScript("50-medic.rules", rule); err != nil {
		t.Fatalf("the rule does not run: %v\n%s", err, rule)
	}
	if n := vm.Get("rules").ToObject(vm).Get("length").ToInteger(); n != 1 {
		t.Fatalf("the rule added %d rules, want 1\n%s", n, rule)
	}
	var decide func(string, string, map[string]string) string
	if err := vm.ExportTo(vm.Get("decide"), &decide); err != nil {
		t.Fatal(err)
	}
	return func(id, user string, details map[string]string) string {
		t.Helper()
		return decide(id, user, details)
	}
}

func writeTOML(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "medic.toml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

const polkitTestConfig = `
[[check]]
name = "app"
unit = "my-app.service"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:8080"

[[check]]
name = "worker"
unit = "worker@1.service"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:8081"
  [check.remedy]
  action = "start"

[[check]]
name = "db"
unit = "postgresql.service"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:5432"
  [check.remedy]
  action = "none"
`

// TestPolkitRuleUnits wants the printed rule to name exactly the units of
// checks whose remedy is not "none", each once.
func TestPolkitRuleUnits(t *testing.T) {
	out, _, err := execute("polkit-rule", "-c", writeTOML(t, polkitTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range regexp.MustCompile(`"([^"]+\.service)":`).FindAllStringSubmatch(out, -1) {
		got = append(got, m[1])
	}
	want := []string{"my-app.service", "worker@1.service"}
	if !slices.Equal(got, want) {
		t.Errorf("units in the rule = %q, want %q\n%s", got, want, out)
	}
	if strings.Contains(out, "postgresql") {
		t.Errorf("the rule names the unit of a check with action none:\n%s", out)
	}
}

// TestPolkitRuleDecides runs the printed rule in a JavaScript engine with
// polkitd's API and checks its decision for each kind of request.
func TestPolkitRuleDecides(t *testing.T) {
	out, _, err := execute("polkit-rule", "-c", writeTOML(t, polkitTestConfig))
	if err != nil {
		t.Fatal(err)
	}
	decide := polkitEngine(t, out)
	unit := func(u, verb string) map[string]string { return map[string]string{"unit": u, "verb": verb} }
	for _, tt := range []struct {
		name    string
		id      string
		user    string
		details map[string]string
		want    string
	}{
		{"restart a restart check's unit", manageUnits, "medic", unit("my-app.service", "restart"), "yes"},
		{"reset-failed a restart check's unit", manageUnits, "medic", unit("my-app.service", "reset-failed"), "yes"},
		{"start a restart check's unit", manageUnits, "medic", unit("my-app.service", "start"), "no"},
		{"stop a restart check's unit", manageUnits, "medic", unit("my-app.service", "stop"), "no"},
		{"try-restart a restart check's unit", manageUnits, "medic", unit("my-app.service", "try-restart"), "no"},
		{"start a start check's unit", manageUnits, "medic", unit("worker@1.service", "start"), "yes"},
		{"reset-failed a start check's unit", manageUnits, "medic", unit("worker@1.service", "reset-failed"), "yes"},
		{"restart a start check's unit", manageUnits, "medic", unit("worker@1.service", "restart"), "no"},
		{"restart an action none check's unit", manageUnits, "medic", unit("postgresql.service", "restart"), "no"},
		{"restart another unit", manageUnits, "medic", unit("sshd.service", "restart"), "no"},
		{"restart a prototype property", manageUnits, "medic", unit("constructor", "restart"), "no"},
		{"no unit detail", manageUnits, "medic", map[string]string{}, "no"},
		{"another user restarts a configured unit", manageUnits, "alice", unit("my-app.service", "restart"), "not_handled"},
		{"medic asks for another action", "org.freedesktop.systemd1.manage-unit-files", "medic", map[string]string{}, "not_handled"},
		{"medic asks to reboot", "org.freedesktop.login1.reboot", "medic", map[string]string{}, "not_handled"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := decide(tt.id, tt.user, tt.details); got != tt.want {
				t.Errorf("decision = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestPolkitRuleUser wants --user to replace the user the rule applies to.
func TestPolkitRuleUser(t *testing.T) {
	out, _, err := execute("polkit-rule", "-c", writeTOML(t, polkitTestConfig), "--user", "watch")
	if err != nil {
		t.Fatal(err)
	}
	decide := polkitEngine(t, out)
	details := map[string]string{"unit": "my-app.service", "verb": "restart"}
	if got := decide(manageUnits, "watch", details); got != "yes" {
		t.Errorf("--user watch: decision for watch = %q, want yes", got)
	}
	if got := decide(manageUnits, "medic", details); got != "not_handled" {
		t.Errorf("--user watch: decision for medic = %q, want not_handled", got)
	}
}

// TestPolkitRuleQuotes wants names that are not plain identifiers to stay
// inside their string literals.
func TestPolkitRuleQuotes(t *testing.T) {
	user := `me"); polkit.addRule(function () { return "yes"; }); ("` + "\u2028"
	out, _, err := execute("polkit-rule", "-c", writeTOML(t, polkitTestConfig), "--user", user)
	if err != nil {
		t.Fatal(err)
	}
	decide := polkitEngine(t, out)
	if got := decide(manageUnits, "medic", map[string]string{"unit": "sshd.service", "verb": "restart"}); got != "not_handled" {
		t.Errorf("decision = %q, want not_handled: the user name escaped its literal\n%s", got, out)
	}
	if got := decide(manageUnits, user, map[string]string{"unit": "my-app.service", "verb": "restart"}); got != "yes" {
		t.Errorf("decision for the odd user = %q, want yes", got)
	}
}

// TestPolkitRuleNoChecks wants a rule that refuses everything to the user
// when no check has a remedy, and the example configuration to give a rule
// that runs.
func TestPolkitRuleNoChecks(t *testing.T) {
	out, _, err := execute("polkit-rule", "-c", writeTOML(t, "[agent]\n"))
	if err != nil {
		t.Fatal(err)
	}
	decide := polkitEngine(t, out)
	if got := decide(manageUnits, "medic", map[string]string{"unit": "my-app.service", "verb": "restart"}); got != "no" {
		t.Errorf("decision = %q, want no", got)
	}

	out, _, err = execute("polkit-rule", "-c", "../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	decide = polkitEngine(t, out)
	if got := decide(manageUnits, "medic", map[string]string{"unit": "my-app.service", "verb": "restart"}); got != "yes" {
		t.Errorf("example: decision = %q, want yes", got)
	}
}

// TestPolkitRuleBadConfig wants exit status 1 and the problems on stderr.
func TestPolkitRuleBadConfig(t *testing.T) {
	out, stderr, err := execute("polkit-rule", "-c", "testdata/bad.toml")
	var ec exitCode
	if !asExit(err, &ec) || ec != 1 {
		t.Fatalf("error = %v, want exit status 1", err)
	}
	if out != "" || !strings.Contains(stderr, "testdata/bad.toml:") {
		t.Errorf("stdout %q, stderr %q", out, stderr)
	}
}

// injected is JavaScript that, run as a rule, says YES to everything.
const injected = `polkit.addRule(function () { return polkit.Result.YES; });`

// TestPolkitRuleHostilePath writes the rule for configuration paths that
// hold a line break, U+2028 or U+2029 followed by code: the path stays in
// its comment, and the rule still says NO to everything it does not allow.
func TestPolkitRuleHostilePath(t *testing.T) {
	for _, sep := range []string{"\n", "\r", "\u2028", "\u2029", "\r\n", "\x00", "*/\n"} {
		dir := filepath.Join(t.TempDir(), "x"+sep+injected+sep+"//")
		if err := os.MkdirAll(dir, 0o700); err != nil {
			if sep == "\x00" {
				continue // no such file name on Linux
			}
			t.Fatal(err)
		}
		path := filepath.Join(dir, "medic.toml")
		if err := os.WriteFile(path, []byte(polkitTestConfig), 0o600); err != nil {
			t.Fatal(err)
		}
		out, _, err := execute("polkit-rule", "-c", path)
		if err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(out, "\r\u2028\u2029") {
			t.Errorf("separator %q: the rule holds a line terminator other than \\n:\n%s", sep, out)
		}
		checkOnlyAllowed(t, polkitEngine(t, out), "my-app.service")
	}
}

// TestPolkitRuleHostileUnits writes the rule for unit names validation
// would refuse (writePolkitRule is given them directly): each stays inside
// its string literal.
func TestPolkitRuleHostileUnits(t *testing.T) {
	units := []string{
		`a"]}; ` + injected + `; //.service`,
		"b\u2028" + injected + "\u2029.service",
		"c\n" + injected + "\n.service",
		`d\"` + injected + `.service`,
		"__proto__",
		"constructor",
		"hasOwnProperty",
	}
	cfg := &config.Config{File: "/etc/medic/medic.toml\n" + injected}
	for i, u := range units {
		cfg.Checks = append(cfg.Checks, config.Check{Name: fmt.Sprint("c", i), Unit: u, Remedy: config.Remedy{Action: "restart"}})
	}
	var b bytes.Buffer
	if err := writePolkitRule(&b, cfg, "medic"); err != nil {
		t.Fatal(err)
	}
	decide := polkitEngine(t, b.String())
	checkOnlyAllowed(t, decide, "")
	for _, u := range units[:4] {
		if got := decide(manageUnits, "medic", map[string]string{"unit": u, "verb": "restart"}); got != "yes" {
			t.Errorf("restart %q = %q, want yes (the name as written)", u, got)
		}
	}
}

// checkOnlyAllowed asks the rule what it must refuse or leave alone.
func checkOnlyAllowed(t *testing.T, decide func(id, user string, details map[string]string) string, allowedUnit string) {
	t.Helper()
	for _, tt := range []struct {
		id, user, unit, verb, want string
	}{
		{manageUnits, "medic", "sshd.service", "restart", "no"},
		{manageUnits, "medic", "system.slice", "stop", "no"},
		{manageUnits, "medic", "", "restart", "no"},
		{manageUnits, "alice", "sshd.service", "restart", "not_handled"},
		{"org.freedesktop.login1.reboot", "medic", "", "", "not_handled"},
		{"org.freedesktop.login1.reboot", "alice", "", "", "not_handled"},
	} {
		if got := decide(tt.id, tt.user, map[string]string{"unit": tt.unit, "verb": tt.verb}); got != tt.want {
			t.Errorf("%s by %s on %q (%s) = %q, want %q", tt.id, tt.user, tt.unit, tt.verb, got, tt.want)
		}
	}
	if allowedUnit != "" {
		if got := decide(manageUnits, "medic", map[string]string{"unit": allowedUnit, "verb": "restart"}); got != "yes" {
			t.Errorf("restart %s = %q, want yes", allowedUnit, got)
		}
	}
}
