package nginx_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/nginx"
)

func TestDiscoverFixture(t *testing.T) {
	r, err := nginx.Discover(context.Background(), filepath.Join("testdata", "conf", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, b := range r.Backends {
		var where []string
		for _, m := range b.Mentions {
			where = append(where, fmt.Sprintf("%s:%d", filepath.Base(m.File), m.Line))
		}
		got = append(got, fmt.Sprintf("%s %s groups=%s backup=%v down=%v local=%v at %s",
			b.Network, b.Address, strings.Join(b.Upstreams, ","), b.Backup, b.Down, b.Local, strings.Join(where, " ")))
	}
	want := []string{
		"tcp 127.0.0.1:8080 groups=backend backup=false down=false local=true at upstreams.conf:2",
		"tcp 127.0.0.1:8081 groups=backend backup=false down=false local=true at upstreams.conf:3",
		"tcp 127.0.0.1:8082 groups=backend backup=true down=false local=true at upstreams.conf:4",
		"unix /run/app/app.sock groups=backend backup=false down=false local=true at upstreams.conf:5 default:11",
		"tcp localhost:3000 groups=api backup=false down=false local=true at upstreams.conf:10",
		"tcp 127.0.0.1:9000 groups= backup=false down=false local=true at default:10",
		"unix /run/php/php8.2-fpm.sock groups= backup=false down=false local=true at default:14",
		"tcp 127.0.0.1:50051 groups= backup=false down=false local=true at default:17",
		"tcp 127.0.0.1:3031 groups= backup=false down=false local=true at default:18",
		"tcp [::1]:8088 groups= backup=false down=false local=true at default:20",
		"tcp 192.0.2.20:80 groups= backup=false down=false local=false at default:22",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("backends:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if r.User != "www-data" {
		t.Errorf("User = %q", r.User)
	}
	if len(r.Skipped) != 1 || !strings.Contains(r.Skipped[0], "proxy_pass http://$host:8080") {
		t.Errorf("Skipped = %q", r.Skipped)
	}
	for _, b := range r.Backends {
		if b.Address == "192.0.2.20:80" && !strings.HasPrefix(b.Problem, "not on this host") {
			t.Errorf("192.0.2.20:80: Problem %q", b.Problem)
		}
		if b.Address == "/run/php/php8.2-fpm.sock" && b.Owner == nil && b.Problem == "" {
			t.Errorf("%s: neither owner nor problem", b.Address)
		}
	}
}

// writeConf writes an nginx.conf whose http block holds body, with a
// conf.d include, and returns its path.
func writeConf(t *testing.T, body string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "conf.d"), 0o755); err != nil {
		t.Fatal(err)
	}
	main := "events {}\nhttp {\n    include conf.d/*.conf;\n}\n"
	if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "conf.d", "app.conf"), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "nginx.conf")
}

// TestDiscoverFindsListeners: the owner of a TCP and of a unix listener of
// this very process is found, and a closed port is said to have none.
func TestDiscoverFindsListeners(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sock := filepath.Join(t.TempDir(), "app.sock")
	uln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer uln.Close()
	closed := systemdtest.FreePort(t)

	conf := writeConf(t, fmt.Sprintf(`
upstream app {
    server %s max_fails=3 fail_timeout=10s;
    server %s backup;
}
server {
    listen 127.0.0.1:8081;
    location / { proxy_pass http://app; }
    location /sock { proxy_pass http://unix:%s:/; }
}
`, ln.Addr(), closed, sock))
	r, err := nginx.Discover(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Backends) != 3 {
		t.Fatalf("backends: %+v", r.Backends)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	for i, want := range []string{ln.Addr().String(), "unix:" + sock} {
		b := r.Backends[[]int{0, 2}[i]]
		if b.Owner == nil {
			t.Errorf("%s: no owner (%s); unavailable: %q", b.Address, b.Problem, r.Unavailable)
			continue
		}
		if b.Owner.Listener != want || b.Owner.PID != os.Getpid() || b.Owner.Comm != strings.TrimSpace(string(comm)) {
			t.Errorf("%s: owner %+v, want listener %s, pid %d", b.Address, b.Owner, want, os.Getpid())
		}
	}
	if b := r.Backends[1]; b.Owner != nil || b.Problem != "nothing listens on "+closed+" now" || !b.Backup {
		t.Errorf("closed port: %+v", b)
	}
}

// TestDiscoverNginxUnit runs a backend as a unit of a real systemd user
// manager and checks that Discover names that unit as the owner of the
// upstream server's address.
func TestDiscoverNginxUnit(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := fmt.Sprintf("medic-nginx-discover-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, _ = m.Systemctl(ctx, "stop", unit)
	})
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, addr+" to answer")

	conf := writeConf(t, fmt.Sprintf(`
upstream app { server %s; }
server {
    listen 127.0.0.1:8081;
    location / { proxy_pass http://app; }
}
`, addr))
	r, err := nginx.Discover(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Backends) != 1 {
		t.Fatalf("backends: %+v", r.Backends)
	}
	b := r.Backends[0]
	if b.Owner == nil || b.Owner.Unit != unit || b.Owner.Comm != "medic-test-back" {
		t.Fatalf("owner of %s: %+v (problem %q, unavailable %q), want unit %s", addr, b.Owner, b.Problem, r.Unavailable, unit)
	}
	mainPID := systemdtest.Prop(t, m, unit, "MainPID")
	if fmt.Sprint(b.Owner.PID) != strings.TrimSpace(mainPID) {
		t.Errorf("owner pid %d, want MainPID %s", b.Owner.PID, mainPID)
	}
}
