package main

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/dop251/goja"
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
