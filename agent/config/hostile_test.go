package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/notify/webhook"
)

// problems parses text and returns its problems as text, nil when none.
func problems(t *testing.T, text string) []string {
	t.Helper()
	_, err := Parse([]byte(text), "m.toml")
	if err == nil {
		return nil
	}
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error %T: %v", err, err)
	}
	out := make([]string, len(errs))
	for i, e := range errs {
		out[i] = e.Error()
	}
	return out
}

func wantProblem(t *testing.T, text, want string) {
	t.Helper()
	got := problems(t, text)
	for _, g := range got {
		if strings.HasPrefix(g, want) {
			return
		}
	}
	t.Errorf("problems %q, want one starting with %q\n%s", got, want, text)
}

func wantNoProblem(t *testing.T, text string) {
	t.Helper()
	if got := problems(t, text); len(got) > 0 {
		t.Errorf("problems %q, want none\n%s", got, text)
	}
}

func checkWith(name, unit, extra string) string {
	return fmt.Sprintf("[[check]]\nname = %q\nunit = %q\n%s\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:8080\"\n", name, unit, extra)
}

// TestNamesAreFileNames: the notifier names that made `medic run` fail at
// the outbox, and a check name whose state file can never be written, are
// refused by validation, so check-config and reload refuse them too.
func TestNamesAreFileNames(t *testing.T) {
	for _, name := range []string{".hidden", "..", ".", "corrupt", "a/b", "a b", strings.Repeat("n", 65)} {
		wantProblem(t, fmt.Sprintf("[[notifier]]\nname = %q\ntype = \"log\"\n", name), "m.toml:2: notifier[0].name: invalid notifier name")
	}
	for _, name := range []string{".hidden", "..", "corrupt", strings.Repeat("c", 300)} {
		wantProblem(t, checkWith(name, "app.service", ""), "m.toml:2: check[0].name: invalid check name")
	}
	wantProblem(t, checkWith(strings.Repeat("c", 300), "app.service", ""), "m.toml:2: check[0].name: invalid check name of 300 bytes: at most 64")
	wantNoProblem(t, checkWith(strings.Repeat("c", 64), "app.service", "")+"[[notifier]]\nname = \"ops.mail-2_x\"\ntype = \"log\"\n")
}

// TestWebhookHeaders: headers the webhook notifier refuses when medic runs
// are refused by validation, with the same rule.
func TestWebhookHeaders(t *testing.T) {
	for _, tt := range []struct {
		name, value string
		wantErr     string
	}{
		{"Authorization", "Bearer x", ""},
		{"User-Agent", "mine", ""},
		{"Content-Type", "text/plain", "set by medic"},
		{"content-length", "1", "set by medic"},
		{"Host", "evil", "set by medic"},
		{"Webhook-Signature", "v1,x", "set by medic"},
		{"webhook-id", "x", "set by medic"},
		{"webhook-timestamp", "1", "set by medic"},
		{"Transfer-Encoding", "chunked", "set by medic"},
		{"X-A", "a\r\nX-Injected: 1", "control characters"},
		{"X-A", "a\x00b", "control characters"},
		{"X-A", "a\nb", "control characters"},
		{"X A", "a", "invalid webhook header name"},
	} {
		text := fmt.Sprintf("[[notifier]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"https://h.example/x\"\nheaders = { %q = %q }\n", tt.name, tt.value)
		_, runErr := webhook.New(webhook.Config{Name: "hook", URL: "https://h.example/x", Headers: map[string]string{tt.name: tt.value}})
		if tt.wantErr == "" {
			wantNoProblem(t, text)
			if runErr != nil {
				t.Errorf("webhook.New refuses what validation accepts: %v", runErr)
			}
			continue
		}
		wantProblem(t, text, "m.toml:5: notifier[0].headers: invalid webhook header")
		if got := strings.Join(problems(t, text), "\n"); !strings.Contains(got, tt.wantErr) {
			t.Errorf("header %q: %s, want %q", tt.name, got, tt.wantErr)
		}
		if strings.Contains(tt.value, "\n") && strings.Contains(strings.Join(problems(t, text), "\n"), tt.value) {
			t.Errorf("the error shows the header's value")
		}
		if runErr == nil {
			t.Errorf("validation refuses header %q that webhook.New accepts", tt.name)
		}
	}
}

// TestMinimumDurations: intervals and timeouts that would keep a CPU busy.
func TestMinimumDurations(t *testing.T) {
	wantProblem(t, "[agent]\ninterval = \"2ns\"\n", "m.toml:2: agent.interval: 2ns is too short: at least 100ms")
	wantProblem(t, "[agent]\ninterval = \"1s\"\ntimeout = \"1ms\"\n", "m.toml:3: agent.timeout: 1ms is too short: at least 10ms")
	wantProblem(t, checkWith("app", "app.service", "interval = \"99ms\"\ntimeout = \"50ms\""), "m.toml:4: check[0].interval: 99ms is too short: at least 100ms")
	wantProblem(t, checkWith("app", "app.service", "interval = \"1s\"\ntimeout = \"9ms\""), "m.toml:5: check[0].timeout: 9ms is too short: at least 10ms")
	wantProblem(t, checkWith("app", "app.service", "retry_interval = \"2ns\""), "m.toml:4: check[0].retry_interval: 2ns is too short: at least 10ms")
	wantNoProblem(t, checkWith("app", "app.service", "interval = \"100ms\"\ntimeout = \"10ms\"\nretry_interval = \"10ms\""))
}

// TestRefusedUnitClasses: classes of units, not only names, are refused
// with the rule that refuses them; remedy.action = "none" may watch them.
func TestRefusedUnitClasses(t *testing.T) {
	for _, tt := range []struct{ unit, rule string }{
		{"system.slice", "slices (*.slice)"},
		{"-.slice", "slices (*.slice)"},
		{"user-1000.slice", "slices (*.slice)"},
		{"init.scope", "scopes (*.scope)"},
		{"session-1.scope", "scopes (*.scope)"},
		{"multi-user.target", "targets (*.target)"},
		{"reboot.target", "targets (*.target)"},
		{"dev-sda.device", "devices, mounts and swap"},
		{"home.mount", "devices, mounts and swap"},
		{"-.mount", "devices, mounts and swap"},
		{"proc-sys-fs-binfmt_misc.automount", "devices, mounts and swap"},
		{"dev-zram0.swap", "devices, mounts and swap"},
		{"user@0.service", "user managers"},
		{"user@1000.service", "user managers"},
		{"user-runtime-dir@0.service", "user managers"},
		{"systemd-logind.service", "systemd's own units"},
		{"systemd-journald.service", "systemd's own units"},
		{"systemd-udevd-kernel.socket", "systemd's own units"},
		{"systemd-networkd.service", "systemd's own units"},
		{"dbus.service", "D-Bus"},
		{"dbus.socket", "D-Bus"},
		{"dbus-broker.service", "D-Bus"},
		{"dbus-org.freedesktop.login1.service", "D-Bus"},
		{"polkit.service", "polkit"},
		{"polkitd.service", "polkit"},
		{"medic.service", "medic itself"},
		{"medic@test.service", "medic itself"},
		{"messagebus.service", "the ways in"},
		{"ssh.service", "the ways in"},
		{"sshd.service", "the ways in"},
		{"ssh.socket", "the ways in"},
		{"rescue.service", "the ways in"},
	} {
		wantProblem(t, checkWith("c", tt.unit, ""), fmt.Sprintf("m.toml:3: check[0].unit: medic refuses to act on %s, by its rule for %s", tt.unit, tt.rule))
		wantNoProblem(t, checkWith("c", tt.unit, "  [check.remedy]\n  action = \"none\""))
	}
	for _, unit := range []string{"my-app.service", "user.service", "usersvc@1.service", "medical.service", "nginx.service", "app.socket", "backup.timer", "worker@1.service", "systemd.service"} {
		if r := RefusedUnit(unit); r != "" {
			t.Errorf("RefusedUnit(%q) = %q, want \"\"", unit, r)
		}
	}
}

// TestURLErrorsRedacted: a wrong URL's credentials do not show in the error.
func TestURLErrorsRedacted(t *testing.T) {
	for _, u := range []string{"ftp://user:s3cret@h/?token=s3cret", "http://user:s3cret@h:99999/?token=s3cret", "http://:s3cret@/x?token=s3cret"} {
		text := checkWith("app", "app.service", "") + fmt.Sprintf("  [[check.probe]]\n  type = \"http\"\n  url = %q\n", u)
		got := strings.Join(problems(t, text), "\n")
		if got == "" || strings.Contains(got, "s3cret") {
			t.Errorf("url %q: problems %q, want some without the secret", u, got)
		}
	}
}
