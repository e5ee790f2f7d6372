package nginx

import (
	"bufio"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The lines under testdata/errorlog were written by Debian's nginx 1.22.1
// (TestNginxErrorLinesLive and TestNginxErrorLineNoRoute rewrite them with
// -update; the values below must then follow).
const tmp = "/tmp/TestNginxErrorLinesLive2465452027/001"

func TestParseErrorLine(t *testing.T) {
	tests := []struct {
		file        string
		wantTime    string
		wantLevel   string
		wantPID     int
		wantConn    int64
		wantErrno   int
		wantKind    string
		wantMessage string
		wantUp      string
		wantAddr    string
		wantGroup   string
		wantClient  string
		wantRequest string
	}{
		{"refused", "2026/11/21 09:00:41", "error", 8151, 2, 111, KindConnectFailed,
			"connect() failed (111: Connection refused) while connecting to upstream",
			"http://127.0.0.1:1/health", "127.0.0.1:1", "", "127.0.0.1", "GET /health HTTP/1.1"},
		{"refused-ipv6", "2026/11/21 09:00:41", "error", 8151, 4, 111, KindConnectFailed,
			"connect() failed (111: Connection refused) while connecting to upstream",
			"http://[::1]:1/", "[::1]:1", "", "127.0.0.1", "GET /v6 HTTP/1.1"},
		{"unix-missing", "2026/11/21 09:00:41", "crit", 8151, 6, 2, KindConnectFailed,
			"connect() to unix:" + tmp + "/missing.sock failed (2: No such file or directory) while connecting to upstream",
			"http://unix:" + tmp + "/missing.sock:/", "unix:" + tmp + "/missing.sock", "", "127.0.0.1", "GET /missing HTTP/1.1"},
		{"unix-permission", "2026/11/21 09:00:43", "crit", 8151, 14, 13, KindConnectFailed,
			"connect() to unix:" + tmp + "/perm.sock failed (13: Permission denied) while connecting to upstream",
			"http://unix:" + tmp + "/perm.sock:/", "unix:" + tmp + "/perm.sock", "", "127.0.0.1", "GET /perm HTTP/1.1"},
		{"read-timeout", "2026/11/21 09:00:42", "error", 8151, 8, 110, KindTimedOut,
			"upstream timed out (110: Connection timed out) while reading response header from upstream",
			"http://127.0.0.1:35631/slow", "127.0.0.1:35631", "", "127.0.0.1", "GET /slow HTTP/1.1"},
		{"connect-timeout", "2026/11/21 09:00:43", "error", 8151, 10, 110, KindTimedOut,
			"upstream timed out (110: Connection timed out) while connecting to upstream",
			"http://127.0.0.1:49549/syn", "127.0.0.1:49549", "", "127.0.0.1", "GET /syn HTTP/1.1"},
		{"fastcgi-refused", "2026/11/21 09:00:43", "error", 8151, 12, 111, KindConnectFailed,
			"connect() failed (111: Connection refused) while connecting to upstream",
			"fastcgi://127.0.0.1:1", "127.0.0.1:1", "", "127.0.0.1", "GET /php HTTP/1.1"},
		{"group-member-refused", "2026/11/21 09:00:43", "error", 8151, 16, 111, KindConnectFailed,
			"connect() failed (111: Connection refused) while connecting to upstream",
			"http://127.0.0.1:2/group", "127.0.0.1:2", "", "127.0.0.1", "GET /group HTTP/1.1"},
		{"no-live-upstreams", "2026/11/21 09:00:43", "error", 8151, 19, 0, KindNoLiveUpstreams,
			"no live upstreams while connecting to upstream",
			"http://backend/group", "", "backend", "127.0.0.1", "GET /group HTTP/1.1"},
		{"no-route", "2026/11/21 09:00:43", "error", 8161, 2, 113, KindConnectFailed,
			"connect() to 192.0.2.10:8080 failed (113: No route to host) while connecting to upstream",
			"http://192.0.2.10:8080/health", "192.0.2.10:8080", "", "unix:", "GET /health HTTP/1.1"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join("testdata", "errorlog", tt.file+".log"))
			if err != nil {
				t.Fatal(err)
			}
			got, ok := ParseErrorLine(string(b))
			if !ok {
				t.Fatalf("ParseErrorLine(%q) = false", b)
			}
			if s := got.Time.Format("2006/01/02 15:04:05"); s != tt.wantTime {
				t.Errorf("Time = %s, want %s", s, tt.wantTime)
			}
			checks := []struct {
				name      string
				got, want any
			}{
				{"Level", got.Level, tt.wantLevel},
				{"PID", got.PID, tt.wantPID},
				{"TID", got.TID, tt.wantPID},
				{"Conn", got.Conn, tt.wantConn},
				{"Errno", got.Errno, tt.wantErrno},
				{"Kind", got.Kind, tt.wantKind},
				{"Message", got.Message, tt.wantMessage},
				{"Upstream", got.Upstream, tt.wantUp},
				{"Addr", got.Addr, tt.wantAddr},
				{"Group", got.Group, tt.wantGroup},
				{"Client", got.Client, tt.wantClient},
				{"Server", got.Server, "_"},
				{"Request", got.Request, tt.wantRequest},
			}
			for _, c := range checks {
				if c.got != c.want {
					t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
				}
			}
			if !strings.HasPrefix(got.Host, "127.0.0.1:") {
				t.Errorf("Host = %q", got.Host)
			}
		})
	}
}

// TestParseErrorLineSession reads a whole error log of a real nginx: the
// upstream errors are recognised, the lines around them are not.
func TestParseErrorLineSession(t *testing.T) {
	f, err := os.Open(filepath.Join("testdata", "errorlog", "session.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var kinds []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		e, ok := ParseErrorLine(sc.Text())
		isErr := strings.Contains(sc.Text(), "] ") && (strings.Contains(sc.Text(), "[error]") || strings.Contains(sc.Text(), "[crit]"))
		if ok != isErr {
			t.Errorf("ParseErrorLine(%q) = %v, want %v", sc.Text(), ok, isErr)
		}
		if ok {
			kinds = append(kinds, e.Kind)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	want := "connect_failed connect_failed connect_failed timed_out timed_out connect_failed connect_failed connect_failed connect_failed no_live_upstreams"
	if got := strings.Join(kinds, " "); got != want {
		t.Errorf("kinds:\n got %s\nwant %s", got, want)
	}
}

// TestParseErrorLineFormats covers formats of modules and versions the
// captures do not: these lines are written by hand after nginx's source
// (ngx_stream_proxy_module's log handler, a referrer, a unix fastcgi
// socket whose URI is empty).
func TestParseErrorLineFormats(t *testing.T) {
	tests := []struct {
		name, line         string
		wantAddr, wantHost string
		wantErrno          int
	}{
		{"stream", `2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: 0.0.0.0:5433, upstream: "127.0.0.1:5432", bytes from/to client:0/0, bytes from/to upstream:0/0`,
			"127.0.0.1:5432", "", 111},
		{"referrer", `2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 192.0.2.7, server: example.com, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "example.com", referrer: "http://example.com/"`,
			"127.0.0.1:8080", "example.com", 111},
		{"fastcgi-unix", `2026/11/21 08:00:00 [crit] 1234#1234: *5 connect() to unix:/run/php/php8.2-fpm.sock failed (2: No such file or directory) while connecting to upstream, client: 192.0.2.7, server: _, request: "GET /index.php HTTP/1.1", upstream: "fastcgi://unix:/run/php/php8.2-fpm.sock:", host: "example.com"`,
			"unix:/run/php/php8.2-fpm.sock", "example.com", 2},
		{"upstream-unix-from-field", `2026/11/21 08:00:00 [error] 1234#1234: *5 upstream timed out (110: Connection timed out) while reading response header from upstream, client: 192.0.2.7, server: _, request: "GET /a:b HTTP/1.1", upstream: "http://unix:/run/app.sock:/a:b", host: "example.com"`,
			"unix:/run/app.sock", "example.com", 110},
		{"name", `2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 192.0.2.7, server: _, request: "GET / HTTP/1.1", upstream: "http://App.Internal:8080/", host: "example.com"`,
			"app.internal:8080", "example.com", 111},
		{"crlf", "2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: \"GET / HTTP/1.1\", upstream: \"http://127.0.0.1:8080/\", host: \"x\"\r\n",
			"127.0.0.1:8080", "x", 111},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := ParseErrorLine(tt.line)
			if !ok {
				t.Fatalf("ParseErrorLine = false")
			}
			if got.Addr != tt.wantAddr || got.Host != tt.wantHost || got.Errno != tt.wantErrno {
				t.Errorf("Addr %q Host %q Errno %d, want %q %q %d", got.Addr, got.Host, got.Errno, tt.wantAddr, tt.wantHost, tt.wantErrno)
			}
		})
	}
}

func TestParseErrorLineRejects(t *testing.T) {
	for _, line := range []string{
		"",
		"2026/11/21 09:00:41 [notice] 8150#8150: start worker process 8151",
		`2026/11/21 09:00:43 [warn] 8151#8151: *16 upstream server temporarily disabled while connecting to upstream, client: 127.0.0.1, server: _, request: "GET /group HTTP/1.1", upstream: "http://127.0.0.1:1/group", host: "127.0.0.1:33691"`,
		`2026/11/21 09:00:41 [info] 8151#8151: *1 client closed connection while waiting for request, client: unix:, server: unix:/tmp/nginx.sock`,
		// An upstream error without its upstream field.
		`2026/11/21 09:00:41 [error] 8151#8151: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _`,
		// A connect() failure that is not about an upstream.
		`2026/11/21 09:00:41 [error] 8151#8151: connect() failed (111: Connection refused) while resolving, client: 127.0.0.1, resolver: 127.0.0.53:53`,
		`2026/13/41 09:00:41 [error] 8151#8151: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, upstream: "http://127.0.0.1:1/"`,
		`2026/11/21 09:00:41 [error] x#8151: *2 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, upstream: "http://127.0.0.1:1/"`,
		`2026/11/21 09:00:41 [error] 8151#8151: *2 connect() failed (abc: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, upstream: "http://127.0.0.1:1/"`,
	} {
		if e, ok := ParseErrorLine(line); ok {
			t.Errorf("ParseErrorLine(%q) = %+v, true; want false", line, e)
		}
	}
}

func TestErrorLineNormalizeAddr(t *testing.T) {
	tests := []struct{ in, wantAddr, wantGroup string }{
		{"127.0.0.1:8080", "127.0.0.1:8080", ""},
		{"[::1]:8080", "[::1]:8080", ""},
		{"[::ffff:127.0.0.1]:8080", "127.0.0.1:8080", ""},
		{"LocalHost:8080", "localhost:8080", ""},
		{"backend", "", "backend"},
		{"[::1]", "", "[::1]"},
		{"host:port", "", ""},
		{"", "", ""},
	}
	for _, tt := range tests {
		a, g := NormalizeAddr(tt.in)
		if a != tt.wantAddr || g != tt.wantGroup {
			t.Errorf("NormalizeAddr(%q) = %q, %q; want %q, %q", tt.in, a, g, tt.wantAddr, tt.wantGroup)
		}
	}
}

func TestParseErrorLineAllocs(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "errorlog", "refused.log"))
	if err != nil {
		t.Fatal(err)
	}
	line := string(b)
	if n := testing.AllocsPerRun(100, func() { ParseErrorLine(line) }); n > 0 {
		t.Errorf("ParseErrorLine allocates %v times per line, want 0", n)
	}
}

func FuzzParseErrorLine(f *testing.F) {
	f.Add(`2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "127.0.0.1:8081"`)
	f.Fuzz(func(t *testing.T, line string) {
		e, ok := ParseErrorLine(line)
		if !ok {
			return
		}
		if e.Kind != KindConnectFailed && e.Kind != KindTimedOut && e.Kind != KindNoLiveUpstreams {
			t.Fatalf("Kind %q", e.Kind)
		}
		if e.Kind == KindNoLiveUpstreams && (e.Addr != "" || e.Group == "") || e.Addr == "" && e.Group == "" {
			t.Fatalf("Addr %q Group %q for kind %s", e.Addr, e.Group, e.Kind)
		}
		if !strings.Contains(line, e.Upstream) || !strings.Contains(line, e.Message) || !strings.Contains(line, e.Request) {
			t.Fatalf("fields not taken from the line: %+v", e)
		}
		if e.Kind == KindNoLiveUpstreams && e.Errno != 0 {
			t.Fatalf("errno %d for no live upstreams", e.Errno)
		}
		if a, _ := NormalizeAddr(strings.TrimPrefix(e.Addr, "unix:")); e.Addr != "" && !strings.HasPrefix(e.Addr, "unix:") && a != e.Addr {
			t.Fatalf("Addr %q is not normalised (%q)", e.Addr, a)
		}
	})
}
