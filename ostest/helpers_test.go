package ostest_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/ostest"
)

// The two package versions: A is installed by every test, B upgrades A.
const (
	versionA = "1.0.0"
	versionB = "1.0.1"
)

// The backend medic watches in every machine, and where things live.
const (
	backendUnit = "backend.service"
	backendAddr = "127.0.0.1:8080"
	healthURL   = "http://" + backendAddr + "/health"
	configPath  = "/etc/medic/medic.toml"
	rulePath    = "/etc/polkit-1/rules.d/50-medic.rules"
)

// minimalConfig is the configuration a user writes first: one check with a
// name, a unit and one HTTP probe, the defaults for everything else.
const minimalConfig = `[agent]
bus = "system"

[[check]]
name = "backend"
unit = "backend.service"

  [[check.probe]]
  type = "http"
  url = "http://127.0.0.1:8080/health"
`

// forEachSuite runs test as a parallel subtest per Debian suite, each with
// a freshly booted machine.
func forEachSuite(t *testing.T, test func(t *testing.T, m *ostest.Machine)) {
	t.Helper()
	if err := ostest.Available(); err != nil {
		ostest.Unavailable(t, err.Error())
	}
	for _, suite := range ostest.Suites {
		t.Run(suite, func(t *testing.T) {
			t.Parallel()
			test(t, ostest.Boot(t, suite))
		})
	}
}

// install copies the medic package of version into the machine and
// installs it with apt-get, as a user would; it returns apt-get's output.
func install(t testing.TB, m *ostest.Machine, version string) string {
	t.Helper()
	deb, err := os.ReadFile(ostest.Package(t, version))
	if err != nil {
		t.Fatal(err)
	}
	path := "/root/medic_" + version + ".deb"
	m.WriteFile(t, path, deb, 0o644)
	return m.Sh(t, "DEBIAN_FRONTEND=noninteractive apt-get install -y "+path+" 2>&1")
}

// setUp installs version, starts the backend, writes config and the polkit
// rule for it, restarts medic and waits until it is ready.
func setUp(t *testing.T, m *ostest.Machine, version, config string) {
	t.Helper()
	install(t, m, version)
	m.StartBackend(t, backendUnit, backendAddr)
	configure(t, m, config)
}

// configure writes config as /etc/medic/medic.toml (root:medic 0640, as
// the package installs it), writes the polkit rule `medic polkit-rule`
// makes for it, restarts medic and waits until it is ready.
func configure(t testing.TB, m *ostest.Machine, config string) {
	t.Helper()
	m.WriteFile(t, configPath, []byte(config), 0o640)
	m.Sh(t, "chown root:medic "+configPath)
	m.Sh(t, "medic polkit-rule -c "+configPath+" > "+rulePath)
	m.Sh(t, "systemctl restart medic")
	waitReady(t, m)
}

// waitReady waits until `systemctl show medic` says active/running, which
// for Type=notify means medic sent READY=1.
func waitReady(t testing.TB, m *ostest.Machine) {
	t.Helper()
	waitFor(t, 30*time.Second, "medic.service active/running", func() (bool, string) {
		props := show(t, m, "medic.service", "ActiveState", "SubState", "StatusText")
		return props["ActiveState"] == "active" && props["SubState"] == "running", fmt.Sprint(props)
	})
}

// show returns unit properties as `systemctl show -p P1,P2 unit` prints them.
func show(t testing.TB, m *ostest.Machine, unit string, props ...string) map[string]string {
	t.Helper()
	out := m.Sh(t, "systemctl show -p "+strings.Join(props, ",")+" "+unit)
	got := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			got[k] = v
		}
	}
	return got
}

// waitFor polls cond every 100 ms until it reports done, failing the test
// after timeout with what it waited for and what cond saw last.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (done bool, seen string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		done, seen := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s; last seen:\n%s", timeout, what, seen)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// get requests url inside the machine (python3, as curl is not in a
// minimal Debian) and returns "STATUS BODY", or an error.
func get(m *ostest.Machine, url string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, errOut, err := m.Run(ctx, "python3", "-c", `
import sys, urllib.request
r = urllib.request.urlopen(sys.argv[1], timeout=1)
sys.stdout.write("%d %s" % (r.status, r.read().decode()))
`, url)
	if err != nil {
		msg := strings.TrimSpace(string(errOut))
		if i := strings.LastIndex(msg, "\n"); i >= 0 {
			msg = msg[i+1:] // the exception, without the traceback
		}
		return "", fmt.Errorf("GET %s: %s", url, msg)
	}
	return string(out), nil
}

// activeFor returns how long unit has been active, from its
// ActiveEnterTimestampMonotonic and the machine's CLOCK_MONOTONIC.
func activeFor(t testing.TB, m *ostest.Machine, unit string) time.Duration {
	t.Helper()
	out := m.Sh(t, "systemctl show -p ActiveEnterTimestampMonotonic --value "+unit+
		` && python3 -c 'import time; print(int(time.monotonic() * 1e6))'`)
	f := strings.Fields(out)
	if len(f) != 2 {
		t.Fatalf("ActiveEnterTimestampMonotonic and now: %q", out)
	}
	entered, err1 := strconv.ParseInt(f[0], 10, 64)
	now, err2 := strconv.ParseInt(f[1], 10, 64)
	if err1 != nil || err2 != nil || entered == 0 {
		t.Fatalf("%s has not been active: %q", unit, out)
	}
	return time.Duration(now-entered) * time.Microsecond
}

// journalEntries returns the journal entries `journalctl -o json args...`
// prints, each as its fields (values that are not strings, i.e. binary
// data, are left out).
func journalEntries(t testing.TB, m *ostest.Machine, args ...string) []map[string]string {
	t.Helper()
	out := m.Journal(t, append([]string{"-o", "json"}, args...)...)
	var entries []map[string]string
	for line := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		var raw map[string]any
		if err := json.Unmarshal([]byte(line), &raw); err != nil {
			t.Fatalf("journalctl -o json: %v in %q", err, line)
		}
		e := map[string]string{}
		for k, v := range raw {
			if s, ok := v.(string); ok {
				e[k] = s
			}
		}
		entries = append(entries, e)
	}
	return entries
}

// medicStatus returns what `medic status` prints, stdout and stderr, with
// its exit status on a last line ("exit 0"); it exits 1 when a check is not
// healthy, which is not an error here.
func medicStatus(t testing.TB, m *ostest.Machine, args ...string) string {
	t.Helper()
	return m.Sh(t, "medic status "+strings.Join(args, " ")+` 2>&1; echo "exit $?"`)
}

// fileInfo returns "MODE USER:GROUP" of path inside the machine, or the
// error stat printed.
func fileInfo(t testing.TB, m *ostest.Machine, path string) string {
	t.Helper()
	return m.Sh(t, "stat -c '%a %U:%G' "+path+" 2>&1 || true")
}

// fileLine matches the file:line a configuration error names.
var fileLine = regexp.MustCompile(`/etc/medic/medic\.toml:[0-9]+`)
