package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/nginxtest"
	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// okHandler answers every request with 200 "ok".
var okHandler = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })

// socketDir returns a directory nginx's workers (www-data) may search,
// removed when the test ends.
func socketDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "medic-diagnose-nginx-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// serveUnix serves okHandler on a unix socket at path with mode.
func serveUnix(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: okHandler}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// needRoot skips (or fails, under MEDIC_REQUIRE_SYSTEMD=1) a test that
// needs nginx's workers to run as another user than the test.
func needRoot(t *testing.T) {
	t.Helper()
	if err := nginxtest.Available(); err != nil {
		nginxtest.Unavailable(t, err.Error())
	}
	if os.Geteuid() != 0 {
		nginxtest.Unavailable(t, "needs root: nginx's workers must run as www-data, so that a root-only socket is a real permission failure")
	}
}

// lineWith returns the one line of out that contains every one of subs.
func lineWith(t *testing.T, out string, subs ...string) string {
	t.Helper()
	for line := range strings.Lines(out) {
		ok := true
		for _, s := range subs {
			ok = ok && strings.Contains(line, s)
		}
		if ok {
			return strings.TrimRight(line, "\n")
		}
	}
	t.Errorf("no line with %q in:\n%s", subs, out)
	return ""
}

// writeNginxConf writes DIR/nginx.conf, whose every file nginx -t opens or
// creates (pid, logs, temp directories) lies under dir: main goes into the
// main context, httpBody into http{}. It returns the file's path.
func writeNginxConf(t *testing.T, dir, main, httpBody string) string {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "pid %s/nginx.pid;\n%s\nevents { worker_connections 16; }\nhttp {\n    access_log %s/access.log;\n", dir, main, dir)
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "    %s_temp_path %s/%s_temp;\n", p, dir, p)
	}
	b.WriteString(httpBody + "\n}\n")
	conf := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return conf
}

// nginxDiagnosisJSON is the part of --json the tests read.
type nginxDiagnosisJSON struct {
	OK         bool `json:"ok"`
	ConfigTest struct {
		Status, Command, Message string
	} `json:"config_test"`
	ErrorLog struct {
		Status string
		Files  []string
	} `json:"error_log"`
	Upstreams []struct {
		Name    string
		Servers []struct {
			Address      string
			Backup, Down bool
			OK           bool
			Problem      string
			Cause        string
			Diagnosis    *struct {
				Checklist []struct{ Name, Status string }
			}
			LogErrors []struct {
				Errno       int
				Message     string
				Count       int
				First, Last time.Time
			} `json:"log_errors"`
		}
	}
}

// TestDiagnoseNginx runs a real nginx, as root with workers as www-data,
// whose upstream has a TCP server that answers, a port nothing listens
// on, a unix socket that answers, a root-only unix socket, a backup and a
// server marked down. Requests through nginx fill its error log with
// refused and permission-denied lines. diagnose nginx names each server's
// state and cause, counts the log's errors per server and exits 1; with
// only servers that answer it exits 0.
func TestDiagnoseNginx(t *testing.T) {
	needRoot(t)
	up := httptest.NewServer(okHandler)
	defer up.Close()
	backup := httptest.NewServer(okHandler)
	defer backup.Close()
	refused := closedPort(t)
	markedDown := closedPort(t)
	dir := socketDir(t)
	appSock := filepath.Join(dir, "app.sock")
	permSock := filepath.Join(dir, "perm.sock")
	serveUnix(t, appSock, 0o666)
	serveUnix(t, permSock, 0o600) // root's: www-data may not connect
	upAddr := up.Listener.Addr().String()
	backupAddr := backup.Listener.Addr().String()

	// max_fails=0: nginx keeps trying every server, so that each request
	// that lands on a failing one writes its line.
	conf := fmt.Sprintf(`
upstream app {
    server %s max_fails=0;
    server %s max_fails=0;
    server unix:%s max_fails=0;
    server unix:%s max_fails=0;
    server %s backup;
    server %s down;
}
server {
    listen {{listen}};
    location / { proxy_pass http://app; }
}
`, upAddr, refused, appSock, permSock, backupAddr, markedDown)
	ngx := nginxtest.StartConfig(t, nginxtest.Config{Main: "user www-data;", HTTP: conf})
	for range 12 {
		if code := ngx.Get(t, "/"); code != 200 {
			t.Fatalf("GET through nginx: %d, want 200 (the upstream has servers that answer)", code)
		}
	}
	ngx.WaitLog(t, "(111: Connection refused) while connecting to upstream", 10*time.Second)
	ngx.WaitLog(t, "perm.sock failed (13: Permission denied)", 10*time.Second)
	logText, err := os.ReadFile(ngx.ErrorLog())
	if err != nil {
		t.Fatal(err)
	}
	wantRefused := strings.Count(string(logText), `upstream: "http://`+refused+`/"`)
	wantDenied := strings.Count(string(logText), "perm.sock failed (13: Permission denied)")
	if wantRefused == 0 || wantDenied == 0 {
		t.Fatalf("nginx logged %d refused and %d denied lines:\n%s", wantRefused, wantDenied, logText)
	}

	// A diagnosis reuses the host's socket listing for 250ms: one an
	// earlier test took would not hold this test's sockets.
	time.Sleep(300 * time.Millisecond)
	out, stderr, err := execute("diagnose", "nginx", "-c", ngx.ConfPath, "--timeout", "1s")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("diagnose nginx with two servers down: err %v, want exit status 1\n%s%s", err, out, stderr)
	}
	t.Logf("output:\n%s", out)

	if l := lineWith(t, out, "app", upAddr+" "); l != "" && (!strings.Contains(l, " up") || strings.Contains(l, "DOWN")) {
		t.Errorf("the server that answers: %q", l)
	}
	if l := lineWith(t, out, "app", refused+" ", "DOWN"); l != "" && !strings.Contains(l, "backend not running") {
		t.Errorf("the refused port: %q, want backend not running", l)
	}
	if l := lineWith(t, out, "app", "unix:"+appSock); l != "" && (!strings.Contains(l, " up") || strings.Contains(l, "DOWN")) {
		t.Errorf("the unix socket that answers: %q", l)
	}
	if l := lineWith(t, out, "app", "unix:"+permSock, "DOWN"); l != "" && !strings.Contains(l, "socket permissions") {
		t.Errorf("the root-only socket: %q, want socket permissions", l)
	}
	if l := lineWith(t, out, "app", backupAddr); l != "" && (!strings.Contains(l, "backup") || !strings.Contains(l, " up")) {
		t.Errorf("the backup: %q", l)
	}
	if l := lineWith(t, out, "app", markedDown); l != "" && (!strings.Contains(l, "down") || !strings.Contains(l, "marked down") || !strings.Contains(l, "not counted")) {
		t.Errorf("the server marked down: %q", l)
	}
	for _, want := range []string{
		"2 of 6 servers down; workers run as www-data",
		"✓ nginx -t",
		"✗ upstream errors",
		// The checklists of the two failing servers.
		"\napp " + refused + ":\n" + refused + " connection refused\n  cause:   backend not running",
		"\napp unix:" + permSock + ":\n",
		"www-data cannot connect to " + permSock,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	lineWith(t, out, "app", refused+" ", fmt.Sprintf("111: Connection refused ×%d, first at ", wantRefused), ", last at ")
	lineWith(t, out, "app", "unix:"+permSock+" ", fmt.Sprintf("13: Permission denied ×%d, first at ", wantDenied))
	if strings.Contains(out, "\napp "+markedDown+":") {
		t.Errorf("the server marked down got a checklist: it is not counted")
	}

	out, _, err = execute("diagnose", "nginx", "--config", ngx.ConfPath, "--timeout", "1s", "--json")
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("--json: err %v, want exit status 1", err)
	}
	var d nginxDiagnosisJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if d.OK || d.ConfigTest.Status != "pass" || d.ErrorLog.Status != "fail" || len(d.ErrorLog.Files) != 1 || len(d.Upstreams) != 1 || len(d.Upstreams[0].Servers) != 6 {
		t.Fatalf("--json: %+v", d)
	}
	for _, s := range d.Upstreams[0].Servers {
		if s.Diagnosis == nil || len(s.Diagnosis.Checklist) != 5 {
			t.Errorf("%s: no diagnosis with its checklist", s.Address)
		}
		switch s.Address {
		case refused:
			if s.OK || s.Cause != "backend not running" || len(s.LogErrors) != 1 || s.LogErrors[0].Errno != 111 || s.LogErrors[0].Message != "Connection refused" || s.LogErrors[0].Count != wantRefused || s.LogErrors[0].First.After(s.LogErrors[0].Last) {
				t.Errorf("refused server: %+v", s)
			}
		case "unix:" + permSock:
			if s.OK || s.Cause != "socket permissions" || len(s.LogErrors) != 1 || s.LogErrors[0].Errno != 13 || s.LogErrors[0].Count != wantDenied {
				t.Errorf("root-only socket: %+v", s)
			}
		case backupAddr:
			if !s.OK || !s.Backup || s.Down || len(s.LogErrors) != 0 {
				t.Errorf("backup: %+v", s)
			}
		case markedDown:
			if s.OK || !s.Down {
				t.Errorf("marked down: %+v", s)
			}
		case upAddr, "unix:" + appSock:
			if !s.OK || s.Problem != "" || len(s.LogErrors) != 0 {
				t.Errorf("server that answers: %+v", s)
			}
		default:
			t.Errorf("unexpected server %q", s.Address)
		}
	}

	// Only servers that answer (and one marked down): exit 0.
	healthy := nginxtest.StartConfig(t, nginxtest.Config{Main: "user www-data;", HTTP: fmt.Sprintf(`
upstream app {
    server %s;
    server unix:%s;
    server %s down;
}
server {
    listen {{listen}};
    location / { proxy_pass http://app; }
}
`, upAddr, appSock, markedDown)})
	if code := healthy.Get(t, "/"); code != 200 {
		t.Fatalf("GET through the healthy nginx: %d", code)
	}
	out, _, err = execute("diagnose", "nginx", "-c", healthy.ConfPath)
	if err != nil {
		t.Fatalf("diagnose nginx with every server up: %v, want exit status 0\n%s", err, out)
	}
	for _, want := range []string{"0 of 3 servers down", "✓ nginx -t", "✓ upstream errors  none in " + healthy.ErrorLog()} {
		if !strings.Contains(out, want) {
			t.Errorf("healthy: output lacks %q:\n%s", want, out)
		}
	}
}

// TestDiagnoseNginxConfigError: nginx -t rejects the configuration (an
// unknown directive medic's parser does not judge); diagnose nginx quotes
// nginx's [emerg] line and still diagnoses the servers. A configuration
// medic cannot parse is an error naming file and line.
func TestDiagnoseNginxConfigError(t *testing.T) {
	if err := nginxtest.Available(); err != nil {
		nginxtest.Unavailable(t, err.Error())
	}
	up := httptest.NewServer(okHandler)
	defer up.Close()
	dir := t.TempDir()
	conf := writeNginxConf(t, dir, "error_log "+dir+"/error.log;", fmt.Sprintf(`    upstream app { server %s; }
    server {
        listen 127.0.0.1:1;
        proxy_pas http://app;
    }`, up.Listener.Addr()))
	text, err := os.ReadFile(conf)
	if err != nil {
		t.Fatal(err)
	}
	badLine := 1 + strings.Count(string(text[:strings.Index(string(text), "proxy_pas ")]), "\n")
	out, stderr, err := execute("diagnose", "nginx", "-c", conf)
	if err != nil {
		t.Fatalf("diagnose nginx with a broken configuration and its server up: %v, want exit status 0\n%s%s", err, out, stderr)
	}
	for _, want := range []string{
		`✗ nginx -t`,
		fmt.Sprintf(`emerg: unknown directive "proxy_pas" in %s:%d`, conf, badLine),
		"0 of 1 servers down",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = execute("diagnose", "nginx", "-c", conf, "--json")
	var d nginxDiagnosisJSON
	if err := json.Unmarshal([]byte(out), &d); err != nil || d.ConfigTest.Status != "fail" || !strings.Contains(d.ConfigTest.Message, `unknown directive "proxy_pas"`) || !strings.HasSuffix(d.ConfigTest.Command, " -t -c "+conf) {
		t.Errorf("--json config_test: %+v (%v)\n%s", d.ConfigTest, err, out)
	}

	if err := os.WriteFile(conf, []byte("events {}\nhttp {\n    upstream app { server 127.0.0.1:1; }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, _, err = execute("diagnose", "nginx", "-c", conf)
	if err == nil || !strings.Contains(err.Error(), conf) || !strings.Contains(err.Error(), "expecting \"}\"") {
		t.Errorf("unparsable configuration: %v, want an error naming %s", err, conf)
	}
	if _, _, err := execute("diagnose", "nginx", "-c", conf, "--since", "0s"); err == nil || !strings.Contains(err.Error(), "must be positive") {
		t.Errorf("--since 0s: %v", err)
	}
	_, _, err = execute("diagnose", "nginx", "-c", filepath.Join(dir, "missing.conf"))
	if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "missing.conf")) {
		t.Errorf("missing configuration: %v", err)
	}
}

// TestDiagnoseNginxUnavailable: an error log medic cannot read and a
// destination that is no file are "unavailable", never a ✓.
func TestDiagnoseNginxUnavailable(t *testing.T) {
	up := httptest.NewServer(okHandler)
	defer up.Close()
	dir := t.TempDir()
	conf := writeNginxConf(t, dir, "error_log "+dir+"/missing/error.log;\nerror_log stderr;", fmt.Sprintf("upstream app { server %s; }", up.Listener.Addr()))
	out, _, err := execute("diagnose", "nginx", "-c", conf)
	if err != nil {
		t.Fatalf("diagnose nginx: %v\n%s", err, out)
	}
	for _, want := range []string{
		"? upstream errors  unavailable: no error log could be read",
		"unavailable: read error log " + dir + "/missing/error.log: ",
		"unavailable: error_log stderr (" + conf + ":3) is not a file",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "✓ upstream errors") {
		t.Errorf("unread logs shown as passing:\n%s", out)
	}
}

// TestDiscoverNginxShorthand: -c is --config, as for diagnose nginx.
func TestDiscoverNginxShorthand(t *testing.T) {
	long, _, err := execute("discover", "nginx", "--config", "../../nginx/testdata/conf/nginx.conf")
	if err != nil {
		t.Fatal(err)
	}
	short, _, err := execute("discover", "nginx", "-c", "../../nginx/testdata/conf/nginx.conf")
	if err != nil {
		t.Fatalf("discover nginx -c: %v", err)
	}
	if short != long {
		t.Errorf("-c and --config differ:\n%s\n---\n%s", short, long)
	}
}

// TestDiagnoseNginxHostile: text from nginx's configuration and its error
// log reaches the terminal escaped.
func TestDiagnoseNginxHostile(t *testing.T) {
	dir := t.TempDir()
	addr := closedPort(t)
	conf := writeNginxConf(t, dir, "error_log "+dir+"/error.log;", fmt.Sprintf("upstream \"app%s\" { server %s; }", hostile, addr))
	line := time.Now().Format("2006/01/02 15:04:05") + " [error] 1#1: *1 connect() failed (111: refused" + hostile + ") while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://" + addr + "/\", host: \"x\"\n"
	if err := os.WriteFile(filepath.Join(dir, "error.log"), []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	out, _, err := execute("diagnose", "nginx", "-c", conf, "--timeout", "1s")
	var ec exitCode
	if !errors.As(err, &ec) || ec != 1 {
		t.Fatalf("diagnose nginx: err %v, want exit status 1\n%s", err, out)
	}
	assertInert(t, "diagnose nginx", out)
	t.Logf("output:\n%s", out)
	if !strings.Contains(out, "111: refused"+hostileEscaped+" ×1") {
		t.Errorf("the log's text is not shown escaped:\n%s", out)
	}
}

// TestDiagnoseNginxUnit: a server whose listener belongs to a unit of a
// real systemd user manager is diagnosed with that unit's state, read over
// --bus; a bus where the unit cannot be read leaves the checklist's
// "backend running" unknown or failed, never passing.
func TestDiagnoseNginxUnit(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := fmt.Sprintf("medic-diagnose-nginx-%d.service", os.Getpid())
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	for _, kv := range m.Env() {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	systemdtest.Systemctl(t, m, "start", unit)
	t.Cleanup(func() { _, _ = m.Systemctl(t.Context(), "stop", unit) })
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, unit+" listening on "+addr)
	time.Sleep(300 * time.Millisecond) // the host's socket listing is shared for 250ms

	dir := t.TempDir()
	conf := writeNginxConf(t, dir, "error_log "+dir+"/error.log;", fmt.Sprintf("upstream app { server %s; }", addr))
	type checklist = []struct{ Name, Status, Evidence string }
	read := func(bus string) (string, checklist) {
		t.Helper()
		out, _, err := execute("diagnose", "nginx", "-c", conf, "--bus", bus, "--json")
		if err != nil {
			t.Fatalf("diagnose nginx --bus %s: %v, want exit status 0 (%s answers)\n%s", bus, err, addr, out)
		}
		var d struct {
			Upstreams []struct {
				Servers []struct {
					Address, Unit string
					Diagnosis     struct{ Checklist checklist }
				}
			}
		}
		if err := json.Unmarshal([]byte(out), &d); err != nil || len(d.Upstreams) != 1 || len(d.Upstreams[0].Servers) != 1 {
			t.Fatalf("--json: %v\n%s", err, out)
		}
		s := d.Upstreams[0].Servers[0]
		return s.Unit, s.Diagnosis.Checklist
	}
	running := func(c checklist) (string, string) {
		for _, it := range c {
			if it.Name == "backend running" {
				return it.Status, it.Evidence
			}
		}
		return "", ""
	}

	u, c := read("user")
	if u != unit {
		t.Fatalf("unit %q, want %s (its process listens on %s)", u, unit, addr)
	}
	if st, ev := running(c); st != "pass" || !strings.Contains(ev, unit+": active/running") {
		t.Errorf("backend running: %s %q, want pass with %s active/running", st, ev, unit)
	}

	// The user manager's units are not on the system bus (or there is no
	// system bus at all).
	_, c = read("system")
	if st, ev := running(c); st == "pass" || st == "" {
		t.Errorf("backend running read over the system bus: %s %q, want unknown or fail", st, ev)
	} else {
		t.Logf("backend running read over the system bus: %s %q", st, ev)
	}
}
