package nginx

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func confFixture(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("testdata", "conf", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestNginxAcceptsConfigFixture makes sure the fixture is a configuration
// Debian's nginx accepts, so that the parser is tested on a real one.
func TestNginxAcceptsConfigFixture(t *testing.T) {
	if _, err := os.Stat("/usr/sbin/nginx"); err != nil {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatal("MEDIC_REQUIRE_SYSTEMD=1 but nginx is not installed (apt-get install nginx)")
		}
		t.Skip("skipping: nginx is not installed (apt-get install nginx)")
	}
	out, err := exec.Command("/usr/sbin/nginx", "-t", "-c", confFixture(t), "-p", t.TempDir()+"/", "-e", "stderr").CombinedOutput()
	if err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}
}

func TestNginxConfigUpstreams(t *testing.T) {
	c, err := ParseConfig(confFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(c.File)
	wantFiles := []string{"nginx.conf", "conf.d/upstreams.conf", "sites-enabled/default", "fastcgi_params"}
	if len(c.Files) != len(wantFiles) {
		t.Fatalf("Files = %q", c.Files)
	}
	for i, f := range wantFiles {
		if c.Files[i] != filepath.Join(dir, f) {
			t.Errorf("Files[%d] = %s, want %s", i, c.Files[i], f)
		}
	}
	if u := c.User(); u != "www-data" {
		t.Errorf("User = %q", u)
	}

	var got []string
	for _, u := range c.Upstreams() {
		got = append(got, fmt.Sprintf("upstream %s %s %s:%d", u.Name, u.Context, filepath.Base(u.File), u.Line))
		for _, s := range u.Servers {
			mf := "-"
			if s.MaxFails != nil {
				mf = fmt.Sprint(*s.MaxFails)
			}
			got = append(got, fmt.Sprintf("  %s weight=%d max_fails=%s fail_timeout=%q backup=%v down=%v line %d",
				s.Addr, s.Weight, mf, s.FailTimeout, s.Backup, s.Down, s.Line))
		}
	}
	want := []string{
		"upstream backend http upstreams.conf:1",
		`  127.0.0.1:8080 weight=5 max_fails=3 fail_timeout="30s" backup=false down=false line 2`,
		`  127.0.0.1:8081 weight=0 max_fails=3 fail_timeout="30s" backup=false down=false line 3`,
		`  127.0.0.1:8082 weight=0 max_fails=- fail_timeout="" backup=true down=false line 4`,
		`  unix:/run/app/app.sock weight=0 max_fails=- fail_timeout="" backup=false down=true line 5`,
		"upstream api http upstreams.conf:9",
		`  localhost:3000 weight=0 max_fails=- fail_timeout="" backup=false down=false line 10`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("upstreams:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNginxConfigTargets(t *testing.T) {
	c, err := ParseConfig(confFixture(t))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tg := range c.Targets() {
		got = append(got, fmt.Sprintf("%s %s | %s %s group=%s unresolved=%q | %s %s | default:%d",
			tg.Directive, tg.Value, tg.Network, tg.Address, tg.Upstream, tg.Unresolved, tg.Server, tg.Location, tg.Line))
	}
	want := []string{
		`proxy_pass http://backend |   group=backend unresolved="" | example.com / | default:6`,
		`proxy_pass http://api/ |   group=api unresolved="" | example.com /api/ | default:9`,
		`proxy_pass http://127.0.0.1:9000/health | tcp 127.0.0.1:9000 group= unresolved="" | example.com /direct | default:10`,
		`proxy_pass http://unix:/run/app/app.sock:/ | unix /run/app/app.sock group= unresolved="" | example.com /sock | default:11`,
		`fastcgi_pass unix:/run/php/php8.2-fpm.sock | unix /run/php/php8.2-fpm.sock group= unresolved="" | example.com ~ \.php$ | default:14`,
		`proxy_pass http://$host:8080 |   group= unresolved="the address uses variables, known only per request" | example.com /var | default:16`,
		`grpc_pass grpc://127.0.0.1:50051 | tcp 127.0.0.1:50051 group= unresolved="" | example.com /grpc | default:17`,
		`uwsgi_pass 127.0.0.1:3031 | tcp 127.0.0.1:3031 group= unresolved="" | example.com /uwsgi | default:18`,
		`proxy_pass http://[::1]:8088 | tcp [::1]:8088 group= unresolved="" | example.com /v6 path | default:20`,
		`proxy_pass http://192.0.2.20 | tcp 192.0.2.20:80 group= unresolved="" | example.com /plain | default:22`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("targets:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNginxConfigStream(t *testing.T) {
	dir := t.TempDir()
	conf := `events {}
stream {
    upstream pg { server 127.0.0.1:5432 max_fails=2; server unix:/run/postgresql/.s.PGSQL.5432 backup; }
    server { listen 15432; proxy_pass pg; }
    server { listen 16379; proxy_pass 127.0.0.1:6379; }
    server { listen 16380; proxy_pass redis; }
}
`
	p := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(p, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	ups := c.Upstreams()
	if len(ups) != 1 || ups[0].Context != "stream" || len(ups[0].Servers) != 2 || !ups[0].Servers[1].Backup {
		t.Fatalf("upstreams: %+v", ups)
	}
	ts := c.Targets()
	if len(ts) != 3 {
		t.Fatalf("targets: %+v", ts)
	}
	if ts[0].Upstream != "pg" || ts[1].Address != "127.0.0.1:6379" || ts[2].Unresolved == "" || ts[0].Server != "15432" {
		t.Errorf("targets: %+v", ts)
	}
}

func TestNginxConfigErrors(t *testing.T) {
	tests := []struct{ name, conf, want string }{
		{"unterminated", "http { proxy_pass x }", `nginx.conf:1: unexpected "}" in directive "proxy_pass"`},
		{"unclosed block", "http {\n server {\n", `unexpected end of file, expecting "}"`},
		{"stray brace", "events {}\n}\n", `nginx.conf:2: unexpected "}"`},
		{"quote", "user \"www-data;\n", `nginx.conf:1: unterminated quoted string`},
		{"missing include", "include missing.conf;\n", `nginx.conf:1: include missing.conf: open`},
		{"loop", "include nginx.conf;\n", "include loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "nginx.conf")
			if err := os.WriteFile(p, []byte(tt.conf), 0o644); err != nil {
				t.Fatal(err)
			}
			_, err := ParseConfig(p)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("ParseConfig: %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestNginxConfigTokenize(t *testing.T) {
	toks, err := tokenize("x", "a 'b c' \"d\\\"e\" # comment ; {\nf${g}h;x#y {")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, tk := range toks {
		got = append(got, fmt.Sprintf("%s@%d", tk.text, tk.line))
	}
	want := `a@1 b c@1 d"e@1 f${g}h@2 ;@2 x#y@2 {@2`
	if s := strings.Join(got, " "); s != want {
		t.Errorf("tokens %s, want %s", s, want)
	}
}
