package nginx_test

import (
	"flag"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/nginxtest"
	"github.com/medic-watchdog/medic/nginx"
)

// update rewrites testdata/errorlog/*.log from the lines a real nginx
// writes: go test ./nginx -run TestNginxErrorLinesLive -update. The table
// in errorlog_test.go names the values of the committed lines (ports,
// paths, pids) and must be updated with them.
var update = flag.Bool("update", false, "rewrite testdata/errorlog from a real nginx")

// capture is one upstream failure provoked in a real nginx.
type capture struct {
	file     string // testdata/errorlog/<file>.log
	path     string // request path
	match    string // substring of the line to capture
	wantKind string
	wantErr  int
	wantAddr string // "" for a group
	wantGrp  string
	wantLvl  string
}

// TestNginxErrorLinesLive makes Debian's nginx fail to reach its upstreams
// in every way ParseErrorLine knows and checks that it recognises the lines
// nginx writes.
func TestNginxErrorLinesLive(t *testing.T) {
	root := os.Geteuid() == 0

	// A backend that accepts and never answers.
	silent := listenSilent(t)
	// A backend whose accept queue is full, so that SYNs go unanswered.
	full := listenFull(t)

	conf := `
upstream backend {
    server 127.0.0.1:1 max_fails=1 fail_timeout=60s;
    server 127.0.0.1:2 max_fails=1 fail_timeout=60s;
}
server {
    listen {{listen}};
    server_name _;
    location /health { proxy_pass http://127.0.0.1:1/health; }
    location /v6 { proxy_pass http://[::1]:1/; }
    location /group { proxy_pass http://backend; }
    location /perm { proxy_pass http://unix:{{prefix}}/perm.sock:/; }
    location /missing { proxy_pass http://unix:{{prefix}}/missing.sock:/; }
    location /slow { proxy_read_timeout 1s; proxy_pass http://` + silent + `; }
    location /syn { proxy_connect_timeout 1s; proxy_pass http://` + full + `; }
    location /php { fastcgi_pass 127.0.0.1:1; }
}
`
	main := ""
	if root {
		main = "user www-data;"
	}
	s := nginxtest.StartConfig(t, nginxtest.Config{Main: main, HTTP: conf})

	// A unix socket only its owner (root) may connect to; the workers run as
	// www-data.
	perm := filepath.Join(s.Dir, "perm.sock")
	ln, err := net.Listen("unix", perm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := os.Chmod(perm, 0o600); err != nil {
		t.Fatal(err)
	}

	caps := []capture{
		{file: "refused", path: "/health", match: `upstream: "http://127.0.0.1:1/health"`, wantKind: nginx.KindConnectFailed, wantErr: 111, wantAddr: "127.0.0.1:1", wantLvl: "error"},
		{file: "refused-ipv6", path: "/v6", match: `upstream: "http://[::1]:1/"`, wantKind: nginx.KindConnectFailed, wantErr: 111, wantAddr: "[::1]:1", wantLvl: "error"},
		{file: "unix-missing", path: "/missing", match: "missing.sock failed", wantKind: nginx.KindConnectFailed, wantErr: 2, wantAddr: "unix:" + filepath.Join(s.Dir, "missing.sock"), wantLvl: "crit"},
		{file: "read-timeout", path: "/slow", match: "upstream timed out", wantKind: nginx.KindTimedOut, wantErr: 110, wantAddr: silent, wantLvl: "error"},
		{file: "connect-timeout", path: "/syn", match: "while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET /syn", wantKind: nginx.KindTimedOut, wantErr: 110, wantAddr: full, wantLvl: "error"},
		{file: "fastcgi-refused", path: "/php", match: `upstream: "fastcgi://127.0.0.1:1"`, wantKind: nginx.KindConnectFailed, wantErr: 111, wantAddr: "127.0.0.1:1", wantLvl: "error"},
	}
	if root {
		caps = append(caps, capture{file: "unix-permission", path: "/perm", match: "perm.sock failed", wantKind: nginx.KindConnectFailed, wantErr: 13, wantAddr: "unix:" + perm, wantLvl: "crit"})
	} else {
		t.Log("not root: nginx's workers run as this user, so no permission-denied line")
	}
	for _, c := range caps {
		t.Run(c.file, func(t *testing.T) {
			if code := s.Get(t, c.path); code != 502 && code != 504 {
				t.Fatalf("GET %s: status %d, want 502 or 504", c.path, code)
			}
			line := s.WaitLog(t, c.match, 10*time.Second)
			checkCapture(t, c, line)
		})
	}

	// Both servers of the group fail once (max_fails=1); the next request
	// finds no live upstream.
	t.Run("no-live-upstreams", func(t *testing.T) {
		s.Get(t, "/group")
		s.Get(t, "/group")
		line := s.WaitLog(t, "no live upstreams", 10*time.Second)
		checkCapture(t, capture{file: "no-live-upstreams", wantKind: nginx.KindNoLiveUpstreams, wantGrp: "backend", wantLvl: "error"}, line)
		failed := s.WaitLog(t, `request: "GET /group HTTP/1.1", upstream: "http://127.0.0.1:2/group"`, 10*time.Second)
		checkCapture(t, capture{file: "group-member-refused", wantKind: nginx.KindConnectFailed, wantErr: 111, wantAddr: "127.0.0.1:2", wantLvl: "error"}, failed)
	})

	// The whole log, with the lines around the upstream errors (notices,
	// "upstream server temporarily disabled", keepalive closes) that
	// ParseErrorLine must pass over.
	if *update {
		b, err := os.ReadFile(s.ErrorLog())
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join("testdata", "errorlog", "session.log"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestNginxErrorLineNoRoute provokes "No route to host" inside a network
// namespace of nginx's own, where 192.0.2.0/24 (TEST-NET-1, RFC 5737) has an
// unreachable route: no packet leaves the namespace.
func TestNginxErrorLineNoRoute(t *testing.T) {
	s := nginxtest.StartConfig(t, nginxtest.Config{
		Netns: []string{"ip route add unreachable 192.0.2.0/24"},
		HTTP: `
server {
    listen {{listen}};
    server_name _;
    location / { proxy_pass http://192.0.2.10:8080; }
}
`,
	})
	if code := s.Get(t, "/health"); code != 502 {
		t.Fatalf("GET /health: status %d, want 502", code)
	}
	line := s.WaitLog(t, "No route to host", 10*time.Second)
	checkCapture(t, capture{file: "no-route", wantKind: nginx.KindConnectFailed, wantErr: 113, wantAddr: "192.0.2.10:8080", wantLvl: "error"}, line)
}

func checkCapture(t *testing.T, c capture, line string) {
	t.Helper()
	t.Logf("nginx wrote: %s", line)
	e, ok := nginx.ParseErrorLine(line)
	if !ok {
		t.Fatalf("ParseErrorLine(%q) = false", line)
	}
	if e.Kind != c.wantKind || e.Errno != c.wantErr || e.Addr != c.wantAddr || e.Group != c.wantGrp || e.Level != c.wantLvl {
		t.Errorf("ParseErrorLine: kind %q errno %d addr %q group %q level %q; want %q %d %q %q %q",
			e.Kind, e.Errno, e.Addr, e.Group, e.Level, c.wantKind, c.wantErr, c.wantAddr, c.wantGrp, c.wantLvl)
	}
	if e.PID == 0 || e.Conn == 0 || (e.Client != "127.0.0.1" && e.Client != "unix:") || !strings.HasPrefix(e.Request, "GET /") || e.Time.IsZero() {
		t.Errorf("ParseErrorLine: context not read: %+v", e)
	}
	if *update {
		p := filepath.Join("testdata", "errorlog", c.file+".log")
		if err := os.WriteFile(p, []byte(line+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// listenSilent returns the address of a listener that accepts connections
// and never answers them.
func listenSilent(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
	return ln.Addr().String()
}

// listenFull returns the address of a listener with a backlog of 0 whose
// accept queue is filled by one connection that is never accepted: the
// kernel drops further SYNs, so connecting to it times out.
func listenFull(t *testing.T) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatal(err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr := "127.0.0.1:" + strconv.Itoa(sa.(*syscall.SockaddrInet4).Port)
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return addr
}
