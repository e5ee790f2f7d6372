package ostest_test

import (
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/ostest"
)

// adminConfig is a configuration as an admin edits it: a comment and a
// changed interval, so that the file differs from the package's.
const adminConfig = `# edited by the admin: probe every 5s
[agent]
bus = "system"

[[check]]
name = "backend"
unit = "backend.service"
interval = "5s"

  [[check.probe]]
  type = "http"
  url = "http://127.0.0.1:8080/health"
`

// TestUpgrade installs version A, lets the admin edit the configuration and
// pause a check, then installs version B over it: the configuration stays
// byte for byte, the state stays (the pause is still in force), and medic
// runs version B in a new process.
func TestUpgrade(t *testing.T) {
	if ostest.Available() == nil {
		go ostest.BuildPackage(versionB) // while A is built and installed
	}
	forEachSuite(t, func(t *testing.T, m *ostest.Machine) {
		start := time.Now()
		defer func() { t.Logf("%s/upgrade took %s", m.Suite, time.Since(start).Round(100*time.Millisecond)) }()
		setUp(t, m, versionA, adminConfig)

		out := m.Sh(t, "medic pause backend --for 1h --reason x 2>&1")
		t.Logf("medic pause backend --for 1h --reason x: %s", out)
		status := medicStatus(t, m)
		if !strings.Contains(status, "paused") {
			t.Fatalf("medic status after medic pause does not show the pause:\n%s", status)
		}
		conf := m.Sh(t, "sha256sum "+configPath+" && stat -c '%a %U:%G' "+configPath)
		state := m.Sh(t, "find /var/lib/medic -type f | sort")
		oldPID := m.Prop(t, "medic.service", "MainPID")
		t.Logf("before the upgrade: MainPID %s, state files:\n%s", oldPID, state)

		out = install(t, m, versionB)
		t.Logf("apt-get install of %s over %s:\n%s", versionB, versionA, out)

		if got := m.Sh(t, "dpkg-query -W -f='${Version}' medic"); got != versionB+"-1" {
			t.Errorf("dpkg-query -W medic: %q, want %s-1", got, versionB)
		}
		if got := m.Sh(t, "sha256sum "+configPath+" && stat -c '%a %U:%G' "+configPath); got != conf {
			t.Errorf("the upgrade changed %s:\nbefore: %s\nafter:  %s\ncontent now:\n%s", configPath, conf, got, m.Sh(t, "cat "+configPath))
		}
		if got := m.Sh(t, "ls /etc/medic"); got != "medic.toml" {
			t.Errorf("ls /etc/medic after the upgrade: %q, want only medic.toml (no .dpkg-dist or .dpkg-new)", got)
		}
		after := m.Sh(t, "find /var/lib/medic -type f | sort")
		for f := range strings.SplitSeq(state, "\n") {
			if f != "" && !strings.Contains("\n"+after+"\n", "\n"+f+"\n") {
				t.Errorf("the upgrade lost %s; state files now:\n%s", f, after)
			}
		}

		waitReady(t, m)
		newPID := m.Prop(t, "medic.service", "MainPID")
		if newPID == oldPID {
			t.Errorf("medic was not restarted by the upgrade: MainPID still %s", oldPID)
		}
		if got := m.Sh(t, "readlink /proc/"+newPID+"/exe"); got != "/usr/bin/medic" {
			t.Errorf("medic's main process runs %q, want /usr/bin/medic (the new binary)", got)
		}
		if got := m.Sh(t, "medic version"); !strings.Contains(got, versionB) {
			t.Errorf("medic version: %q, want %s", got, versionB)
		}
		status = medicStatus(t, m)
		t.Logf("medic status after the upgrade:\n%s", status)
		if !strings.HasPrefix(status, "medic "+versionB+" ") {
			t.Errorf("the running medic is not version %s; medic status says:\n%s", versionB, status)
		}
		if !regexp.MustCompile(`paused until .*\(x\)`).MatchString(status) {
			t.Errorf("the pause (reason x) did not survive the upgrade; medic status says:\n%s", status)
		}
	})
}

// TestPurge installs and runs medic, then purges it: the unit, the
// binary, the state and the configuration are gone.
func TestPurge(t *testing.T) {
	forEachSuite(t, func(t *testing.T, m *ostest.Machine) {
		start := time.Now()
		defer func() { t.Logf("%s/purge took %s", m.Suite, time.Since(start).Round(100*time.Millisecond)) }()
		setUp(t, m, versionA, minimalConfig)
		if got := fileInfo(t, m, "/var/lib/medic/checks"); got != "700 medic:medic" {
			t.Logf("stat /var/lib/medic/checks before the purge: %s", got)
		}

		out := m.Sh(t, "DEBIAN_FRONTEND=noninteractive apt-get purge -y medic 2>&1")
		t.Logf("apt-get purge -y medic:\n%s", out)

		if got := m.Sh(t, "dpkg-query -W -f='${db:Status-Status}' medic 2>&1 || true"); got != "not-installed" && !strings.Contains(got, "no packages found") {
			t.Errorf("dpkg-query -W medic after the purge: %q, want not-installed", got)
		}
		p := show(t, m, "medic.service", "LoadState", "ActiveState")
		if p["LoadState"] != "not-found" || p["ActiveState"] != "inactive" {
			t.Errorf("systemctl show medic after the purge: %v, want LoadState=not-found ActiveState=inactive", p)
		}
		for _, path := range []string{
			"/usr/bin/medic",
			"/lib/systemd/system/medic.service",
			"/usr/lib/systemd/system/medic.service",
			"/etc/systemd/system/multi-user.target.wants/medic.service",
			"/usr/lib/sysusers.d/medic.conf",
			"/var/lib/medic",
			"/run/medic",
			"/etc/medic",
		} {
			if got := m.Sh(t, fmt.Sprintf("if [ -e %[1]s ] || [ -L %[1]s ]; then ls -ld %[1]s; fi", path)); got != "" {
				t.Errorf("%s is still there after the purge: %s", path, got)
			}
		}
		if got := m.Sh(t, "pgrep -u medic -a || true"); got != "" {
			t.Errorf("processes of user medic still run after the purge: %s", got)
		}
		// Left on purpose: the user (Debian keeps system users) and the
		// admin's own polkit rule.
		t.Logf("after the purge: %s; %s", m.Sh(t, "id medic 2>&1 || true"), m.Sh(t, "ls "+rulePath+" 2>&1 || true"))
	})
}
