package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/internal/fsname"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/nginx"
)

// loadDiscovered pastes the output of discover after an [agent] table and
// loads it with medic's configuration loader.
func loadDiscovered(t *testing.T, out string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte("[agent]\ninterval = \"10s\"\n\n"+out), "medic.toml")
	if err != nil {
		t.Fatalf("the output does not load as medic configuration: %v\n%s", err, out)
	}
	return cfg
}

func TestDiscoverNginxFixture(t *testing.T) {
	out, stderr, err := execute("discover", "nginx", "--config", "../../nginx/testdata/conf/nginx.conf")
	if err != nil {
		t.Fatalf("discover nginx: %v\n%s", err, stderr)
	}
	cfg := loadDiscovered(t, out)

	want := []string{
		"backend-8080 none tcp 127.0.0.1:8080",
		"backend-8081 none tcp 127.0.0.1:8081",
		"backend-8082 none tcp 127.0.0.1:8082",
		"backend-app none unix /run/app/app.sock",
		"api-3000 none tcp localhost:3000",
		"backend-127.0.0.1-9000 none tcp 127.0.0.1:9000",
		"php8.2-fpm none unix /run/php/php8.2-fpm.sock",
		"backend-127.0.0.1-50051 none tcp 127.0.0.1:50051",
		"backend-127.0.0.1-3031 none tcp 127.0.0.1:3031",
		"backend-1-8088 none tcp [::1]:8088",
		"backend-192.0.2.20-80 none tcp 192.0.2.20:80",
	}
	var got []string
	for i, c := range cfg.Checks {
		p := c.Probes[0]
		if c.Unit != "" && i < 11 {
			// Something of this machine listens there now (another test
			// running at the same time): its check is named after its unit.
			t.Logf("%s is served by %s", p.Address+p.Path, c.Unit)
			c.Name, c.Remedy.Action = strings.Fields(want[i])[0], "none"
		}
		got = append(got, fmt.Sprintf("%s %s %s %s", c.Name, c.Remedy.Action, p.Type, p.Address+p.Path))
	}
	if !slices.Equal(got, want) {
		t.Errorf("checks:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !strings.Contains(out, `client_user = "www-data"  # nginx's workers run as this user`) {
		t.Errorf("no client_user for the unix socket checks:\n%s", out)
	}
	for _, s := range []string{
		"#   nginx stops sending requests to it for fail_timeout=30s after max_fails=3 failures within that time.",
		"# A backup server: nginx sends it requests only when the other servers of backend are unavailable.",
		"conf.d/upstreams.conf:2)",
		"#   proxy_pass http://$host:8080 (",
		"# not on this host",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
}

func TestDiscoverNginxMissingConfig(t *testing.T) {
	_, _, err := execute("discover", "nginx", "--config", filepath.Join(t.TempDir(), "nginx.conf"))
	if err == nil || !strings.Contains(err.Error(), "parse nginx config") {
		t.Fatalf("discover nginx of a missing file: %v", err)
	}
}

// TestDiscoverNginxUnit: a backend running as a unit of a real systemd
// user manager gets a check that restarts that unit; a down server is
// commented out; a process in no service gets a probe-only check.
func TestDiscoverNginxUnit(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := fmt.Sprintf("medic-discover-cmd-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = m.Systemctl(ctx, "stop", unit)
	})
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, addr+" to answer")

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte("events {}\nhttp { include conf.d/*.conf; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	app := fmt.Sprintf(`upstream app {
    server %s max_fails=2 fail_timeout=20s;
    server %s backup;
    server 127.0.0.1:1 down;
}
server {
    listen 127.0.0.1:8081;
    location / { proxy_pass http://app; }
}
`, addr, ln.Addr())
	if err := os.WriteFile(filepath.Join(dir, "conf.d", "app.conf"), []byte(app), 0o644); err != nil {
		t.Fatal(err)
	}

	out, stderr, err := execute("discover", "nginx", "--config", conf)
	if err != nil {
		t.Fatalf("discover nginx: %v\n%s", err, stderr)
	}
	cfg := loadDiscovered(t, out)
	if len(cfg.Checks) != 2 {
		t.Fatalf("%d checks, want 2 (the down server commented out):\n%s", len(cfg.Checks), out)
	}
	c := cfg.Checks[0]
	if c.Name != strings.TrimSuffix(unit, ".service") || c.Unit != unit || c.Remedy.Action != "restart" || c.Probes[0].Address != addr {
		t.Errorf("check of the unit's backend: name %q unit %q action %q address %q\n%s", c.Name, c.Unit, c.Remedy.Action, c.Probes[0].Address, out)
	}
	c = cfg.Checks[1]
	if c.Unit != "" || c.Remedy.Action != "none" || c.Probes[0].Address != ln.Addr().String() || c.Name != "app-"+fmt.Sprint(ln.Addr().(*net.TCPAddr).Port) {
		t.Errorf("check of the backup: %+v\n%s", c, out)
	}
	for _, s := range []string{
		"in " + unit + ".",
		"fail_timeout=20s after max_fails=2",
		"which runs in no systemd service",
		"# Marked down in nginx",
		"#   address = \"127.0.0.1:1\"",
	} {
		if !strings.Contains(out, s) {
			t.Errorf("output lacks %q:\n%s", s, out)
		}
	}
	t.Logf("output:\n%s", out)
}

// TestDiscoveredNamesAreValid: whatever nginx's configuration calls its
// upstreams and sockets, the check names discover writes pass the name
// rule check-config applies (length, characters, no leading dot).
func TestDiscoveredNamesAreValid(t *testing.T) {
	long := strings.Repeat("upstream", 40)
	for _, b := range []nginx.Backend{
		{Network: "tcp", Address: "127.0.0.1:8080", Upstreams: []string{long}},
		{Network: "unix", Address: "/run/.hidden/.app.sock"},
		{Network: "unix", Address: "/run/x/corrupt.sock"},
		{Network: "tcp", Address: "[::1]:80"},
		{Network: "unix", Address: "/run/" + long + ".sock"},
	} {
		seen := map[string]int{}
		for range 3 {
			n := uniqueName(seen, checkName(b))
			if err := fsname.Check(n); err != nil {
				t.Errorf("backend %+v: name %q: %v", b, n, err)
			}
		}
	}
}
