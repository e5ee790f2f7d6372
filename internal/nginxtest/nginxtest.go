// Package nginxtest runs Debian's nginx (/usr/sbin/nginx) for tests: a
// master and one worker with their own configuration, pid file, error log
// and temp directories under t.TempDir(), listening on a free loopback port
// and on a unix socket, stopped by PID when the test ends.
//
// Tests that need nginx skip with the reason when it is not installed
// (apt-get install nginx); with MEDIC_REQUIRE_SYSTEMD=1 (set by .ci/run)
// they fail instead.
package nginxtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// Binary is the nginx executable Start runs.
const Binary = "/usr/sbin/nginx"

// Placeholders replaced in Config.Main and Config.HTTP before nginx reads
// them.
const (
	// Listen becomes "127.0.0.1:PORT", the free loopback port of the server.
	Listen = "{{listen}}"
	// Prefix becomes the server's directory (Server.Dir).
	Prefix = "{{prefix}}"
)

// Config is what Start writes into nginx.conf.
type Config struct {
	// Main holds directives of the main context, e.g. "user www-data;".
	Main string
	// HTTP is the body of the http{} block. Listen and Prefix in it are
	// replaced. When it does not contain Listen, a server answering 200 "ok"
	// on every path is added on the server's port.
	HTTP string
	// Netns, when not nil, runs nginx in a network namespace of its own
	// (unshare --net, root only) whose loopback is up, after running each
	// of these shell commands inside it (e.g. "ip route add unreachable
	// 192.0.2.0/24"). Only the unix socket (Server.Get) reaches such a
	// server; URL and Port then belong to the namespace.
	Netns []string
}

// Server is a running nginx.
type Server struct {
	// Dir is the prefix directory holding nginx.conf, the pid file, the
	// logs, the temp directories and the unix socket.
	Dir string
	// ConfPath is the nginx.conf that nginx runs with.
	ConfPath string

	port   int
	sock   string
	netns  bool
	cmd    *exec.Cmd
	exited chan struct{}
	stderr *strings.Builder
}

// Available returns nil when nginx can be run, or why not.
func Available() error {
	if _, err := os.Stat(Binary); err != nil {
		return fmt.Errorf("nginx is not installed (apt-get install nginx): %w", err)
	}
	return nil
}

// Unavailable skips the test with reason, or fails it when
// MEDIC_REQUIRE_SYSTEMD=1.
func Unavailable(t testing.TB, reason string) {
	t.Helper()
	if os.Getenv(systemdtest.RequireEnv) == "1" {
		t.Fatalf("%s=1 but nginx cannot run: %s", systemdtest.RequireEnv, reason)
		return
	}
	t.Skipf("skipping: needs nginx: %s (set %s=1 to fail instead)", reason, systemdtest.RequireEnv)
}

// Start runs nginx with conf as the body of its http{} block (see
// Config.HTTP) and returns once it answers. It skips the test when nginx is
// not installed (see Unavailable) and fails it when nginx does not start.
func Start(t testing.TB, conf string) *Server {
	t.Helper()
	return StartConfig(t, Config{HTTP: conf})
}

// StartConfig is Start with directives for the main context and, if asked,
// a network namespace of nginx's own.
func StartConfig(t testing.TB, c Config) *Server {
	t.Helper()
	if err := Available(); err != nil {
		Unavailable(t, err.Error())
	}
	if c.Netns != nil {
		if os.Geteuid() != 0 {
			Unavailable(t, "a network namespace of nginx's own needs root")
		}
		if _, err := exec.LookPath("unshare"); err != nil {
			Unavailable(t, "unshare (util-linux) is not installed")
		}
		if _, err := exec.LookPath("ip"); err != nil {
			Unavailable(t, "ip (iproute2) is not installed")
		}
	}

	dir := t.TempDir()
	// Workers run as another user (nobody, or the user directive) when the
	// master is root: they must reach files and sockets under dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Dir(dir), 0o755); err != nil {
		t.Fatal(err)
	}
	s := &Server{
		Dir:      dir,
		ConfPath: filepath.Join(dir, "nginx.conf"),
		port:     freePort(t),
		sock:     filepath.Join(dir, "nginx.sock"),
		exited:   make(chan struct{}),
		stderr:   &strings.Builder{},
		netns:    c.Netns != nil,
	}
	if err := os.WriteFile(s.ConfPath, []byte(s.render(c)), 0o644); err != nil {
		t.Fatal(err)
	}

	args := []string{"-c", s.ConfPath, "-p", dir + "/", "-e", s.ErrorLog()}
	if c.Netns != nil {
		setup := append([]string{"ip link set lo up"}, c.Netns...)
		script := strings.Join(setup, " && ") + ` && exec "$0" "$@"`
		args = append([]string{"--net", "--", "sh", "-c", script, Binary}, args...)
		s.cmd = exec.Command("unshare", args...)
	} else {
		s.cmd = exec.Command(Binary, args...)
	}
	s.cmd.Dir = dir
	s.cmd.Stdout = s.stderr
	s.cmd.Stderr = s.stderr
	// A group of its own, so that the workers can be killed with the master
	// should SIGQUIT not end them; the master dies with the test process.
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	go func() {
		_ = s.cmd.Wait()
		close(s.exited)
	}()
	t.Cleanup(func() { s.stop(t) })

	deadline := time.Now().Add(10 * time.Second)
	for !s.answers() {
		select {
		case <-s.exited:
			t.Fatalf("nginx exited before answering: %s\n%s\nerror log:\n%s", s.cmd.ProcessState, s.stderr, s.readLog())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("nginx did not answer on %s within 10s\nerror log:\n%s", s.sock, s.readLog())
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s
}

// render builds the whole nginx.conf.
func (s *Server) render(c Config) string {
	listen := "127.0.0.1:" + strconv.Itoa(s.port)
	repl := strings.NewReplacer(Listen, listen, Prefix, s.Dir)
	httpBody := c.HTTP
	if !strings.Contains(httpBody, Listen) {
		httpBody += "\nserver {\n    listen " + Listen + ";\n    location / { return 200 \"ok\\n\"; }\n}\n"
	}
	httpBody = repl.Replace(httpBody)
	// Every server block also listens on the unix socket, which is how the
	// readiness check (and Get) reaches a server in a namespace of its own.
	httpBody = strings.Replace(httpBody, "listen "+listen+";", "listen "+listen+";\n    listen unix:"+s.sock+";", 1)

	var b strings.Builder
	fmt.Fprintf(&b, "# written by internal/nginxtest\n")
	fmt.Fprintf(&b, "daemon off;\nmaster_process on;\nworker_processes 1;\n")
	fmt.Fprintf(&b, "pid %s;\n", filepath.Join(s.Dir, "nginx.pid"))
	fmt.Fprintf(&b, "error_log %s info;\n", s.ErrorLog())
	if c.Main != "" {
		b.WriteString(repl.Replace(c.Main) + "\n")
	}
	b.WriteString("events { worker_connections 64; }\n")
	b.WriteString("http {\n")
	fmt.Fprintf(&b, "access_log %s;\n", filepath.Join(s.Dir, "access.log"))
	for _, p := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		fmt.Fprintf(&b, "%s_temp_path %s;\n", p, filepath.Join(s.Dir, p+"_temp"))
	}
	b.WriteString(httpBody)
	b.WriteString("\n}\n")
	return b.String()
}

// answers reports whether nginx accepts a connection on its unix socket.
func (s *Server) answers() bool {
	c, err := net.DialTimeout("unix", s.sock, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// stop ends nginx: SIGQUIT (graceful) to the master, then SIGKILL to its
// process group after 5 seconds.
func (s *Server) stop(t testing.TB) {
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(pid, syscall.SIGQUIT)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		t.Logf("nginx (pid %d) did not quit within 5s of SIGQUIT: killing its process group", pid)
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
	}
	// Workers that outlived their master (they should not) go too.
	_ = syscall.Kill(-pid, syscall.SIGKILL)
	if t.Failed() {
		t.Logf("nginx error log %s:\n%s", s.ErrorLog(), s.readLog())
	}
}

func (s *Server) readLog() string {
	b, err := os.ReadFile(s.ErrorLog())
	if err != nil {
		return err.Error()
	}
	return string(b)
}

// Port returns the loopback port nginx listens on.
func (s *Server) Port() int { return s.port }

// URL returns "http://127.0.0.1:PORT".
func (s *Server) URL() string { return "http://127.0.0.1:" + strconv.Itoa(s.port) }

// ErrorLog returns the path of nginx's error log (level info).
func (s *Server) ErrorLog() string { return filepath.Join(s.Dir, "error.log") }

// Socket returns the path of the unix socket nginx also listens on.
func (s *Server) Socket() string { return s.sock }

// Get sends GET path to nginx and returns the status code: to its loopback
// port, or, for a server in a network namespace of its own, to its unix
// socket (the error log then says "client: unix:"), with Host
// "127.0.0.1:PORT" either way. It fails the test when no response arrives
// within 30 seconds.
func (s *Server) Get(t testing.TB, path string) int {
	t.Helper()
	client := &http.Client{
		Timeout: 30 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
				var d net.Dialer
				if s.netns {
					return d.DialContext(ctx, "unix", s.sock)
				}
				return d.DialContext(ctx, network, addr)
			},
			DisableKeepAlives: true,
		},
	}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://127.0.0.1:" + strconv.Itoa(s.port) + path)
	if err != nil {
		t.Fatalf("GET %s from nginx: %v", path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// WaitLog waits until the error log holds a line containing substr and
// returns that line, failing the test after timeout.
func (s *Server) WaitLog(t testing.TB, substr string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile(s.ErrorLog())
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		for line := range strings.Lines(string(b)) {
			if strings.Contains(line, substr) {
				return strings.TrimRight(line, "\n")
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no line with %q in nginx's error log within %s:\n%s", substr, timeout, b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
