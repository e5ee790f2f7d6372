package agent_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
)

// fakeController answers the status socket with one check, "web", and
// records the control verbs that reached it.
type fakeController struct {
	mu     sync.Mutex
	pauses []agent.PauseRequest
	calls  []string
	paused bool // web's remediation is paused
}

func (f *fakeController) Report() agent.Report {
	f.mu.Lock()
	defer f.mu.Unlock()
	web := agent.Status{Check: "web", State: "healthy"}
	if f.paused {
		web.Paused = &agent.Pause{Until: time.Now().Add(time.Hour)}
	}
	return agent.Report{Version: "test", Host: "h", Checks: []agent.Status{web}}
}

func (f *fakeController) Reload(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "reload")
	return nil
}

func (f *fakeController) Pause(_ context.Context, check string, d time.Duration, reason string) (agent.Pause, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "pause")
	if check != "web" {
		return agent.Pause{}, fmt.Errorf("pause %s: %w", check, agent.ErrNoCheck)
	}
	f.pauses = append(f.pauses, agent.PauseRequest{Check: check, For: d.String(), Reason: reason})
	return agent.Pause{Until: time.Now().Add(d), Reason: reason}, nil
}

func (f *fakeController) Resume(_ context.Context, check string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, "resume")
	if check != "web" {
		return fmt.Errorf("resume %s: %w", check, agent.ErrNoCheck)
	}
	f.paused = false
	return nil
}

func (f *fakeController) called() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// serve binds a status socket at path and serves ctl on it until the test
// ends; lim nil means the defaults.
func serve(t *testing.T, path string, ctl agent.Controller, lim *agent.StatusLimits) {
	t.Helper()
	ln, err := agent.ListenStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		if lim != nil {
			done <- agent.ServeStatusWithLimits(ctx, ln, ctl, *lim)
		} else {
			done <- agent.ServeStatus(ctx, ln, ctl)
		}
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve status: %v", err)
		}
	})
}

// TestStatusSocketBoundsConnections opens more idle connections, slow-body
// requests and idle keep-alive connections than the socket allows: each is
// closed by the server within its timeout, no more than the limit are ever
// open at once, and `medic status`'s request, queued behind them all,
// succeeds.
func TestStatusSocketBoundsConnections(t *testing.T) {
	const (
		maxConns         = 8
		idle, slow, ka   = 12, 12, 4
		readHeader       = 300 * time.Millisecond
		read             = 600 * time.Millisecond
		idleTimeout      = 300 * time.Millisecond
		closedWithin     = 10 * time.Second
		statusMustAnswer = 10 * time.Second
	)
	path := filepath.Join(t.TempDir(), "medic.sock")
	var open, maxOpen atomic.Int32
	serve(t, path, &fakeController{}, &agent.StatusLimits{
		ReadHeader: readHeader, Read: read, Write: 2 * time.Second, Idle: idleTimeout, MaxConns: maxConns,
		Observe: func(n int) {
			open.Store(int32(n))
			for m := maxOpen.Load(); int32(n) > m && !maxOpen.CompareAndSwap(m, int32(n)); m = maxOpen.Load() {
			}
		},
	})

	type outcome struct {
		kind string
		err  error
	}
	results := make(chan outcome, idle+slow+ka)
	var stopTrickle atomic.Bool
	defer stopTrickle.Store(true)
	watch := func(kind string, c net.Conn) {
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(closedWithin))
		_, err := io.Copy(io.Discard, c)
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			results <- outcome{kind, fmt.Errorf("still open after %s", closedWithin)}
			return
		}
		results <- outcome{kind, nil} // EOF or reset: the server closed it
	}
	dial := func() net.Conn {
		c, err := net.Dial("unix", path)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	for range idle {
		go watch("idle", dial())
	}
	for range slow {
		c := dial()
		if _, err := io.WriteString(c, "POST /v1/pause HTTP/1.1\r\nHost: medic\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
		go func() {
			for !stopTrickle.Load() {
				time.Sleep(100 * time.Millisecond)
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}()
		go watch("slow body", c)
	}
	for range ka {
		c := dial()
		if _, err := io.WriteString(c, "GET /v1/status HTTP/1.1\r\nHost: medic\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		go watch("idle keep-alive", c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), statusMustAnswer)
	defer cancel()
	start := time.Now()
	r, err := agent.FetchStatus(ctx, path)
	if err != nil {
		t.Fatalf("status while the socket is flooded: %v", err)
	}
	if len(r.Checks) != 1 {
		t.Errorf("status: %+v", r)
	}
	t.Logf("status answered after %s behind %d hostile connections", time.Since(start).Round(time.Millisecond), idle+slow+ka)

	for range idle + slow + ka {
		if o := <-results; o.err != nil {
			t.Errorf("%s connection: %v", o.kind, o.err)
		}
	}
	if m := maxOpen.Load(); m > maxConns || m == 0 {
		t.Errorf("at most %d connections were open at once, want 1..%d", m, maxConns)
	}
	deadline := time.Now().Add(5 * time.Second)
	for open.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := open.Load(); n != 0 {
		t.Errorf("%d connections still open after every client saw its end", n)
	}
}

// TestListenStatusModeAndStale: the socket is mode 0660, a stale socket is
// replaced, a second medic is refused, and Close removes the socket but
// not a file that took its place.
func TestListenStatusModeAndStale(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "medic.sock")

	stale, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	stale.SetUnlinkOnClose(false)
	stale.Close()

	ln, err := agent.ListenStatus(path)
	if err != nil {
		t.Fatalf("ListenStatus over a stale socket: %v", err)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&fs.ModeSocket == 0 || fi.Mode().Perm() != 0o660 {
		t.Errorf("socket %v, %v; want a socket of mode 0660", fi.Mode(), err)
	}
	if _, err := agent.ListenStatus(path); err == nil || !strings.Contains(err.Error(), "another medic is running") {
		t.Errorf("second ListenStatus: %v, want another medic is running", err)
	}
	ln.Close()
	if _, err := os.Lstat(path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket left after Close: %v", err)
	}

	ln, err = agent.ListenStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("not medic's"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a file that was not its socket: %v", err)
	}
}

// TestListenStatusSymlink plants a symlink at the socket's path, pointing
// at a 0600 file: in a directory others may write to, in one that belongs
// to another user (as root), and in medic's own directory. ListenStatus
// refuses each, and the file's mode stays 0600.
func TestListenStatusSymlink(t *testing.T) {
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "secret")
	if err := os.WriteFile(victim, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		mode    fs.FileMode
		owner   int // -1: the test's user
		wantErr string
	}{
		{"directory writable by others", 0o777, -1, "writable by group or others"},
		{"sticky directory writable by others", fs.ModeSticky | 0o777, -1, "writable by group or others"},
		{"directory of another user", 0o755, 65534, "belongs to uid 65534"},
		{"medic's own directory", 0o700, -1, "exists and is not a socket"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "run")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "medic.sock")
			if err := os.Symlink(victim, path); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, tt.mode); err != nil {
				t.Fatal(err)
			}
			if tt.owner >= 0 {
				if os.Geteuid() != 0 {
					requireRoot(t, "chown a directory to another user")
				}
				if err := os.Lchown(path, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(dir, tt.owner, tt.owner); err != nil {
					t.Fatal(err)
				}
			}
			ln, err := agent.ListenStatus(path)
			if err == nil {
				ln.Close()
				t.Fatalf("ListenStatus bound %s", path)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("ListenStatus: %v, want %q", err, tt.wantErr)
			}
			if fi, err := os.Stat(victim); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("the symlink's target is now %v (%v), want 0600", fi.Mode(), err)
			}
			if fi, err := os.Lstat(path); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
				t.Errorf("the planted symlink is gone: %v", err)
			}
		})
	}
}

// requireRoot skips the test, or fails it under MEDIC_REQUIRE_SYSTEMD=1,
// when it does not run as root.
func requireRoot(t *testing.T, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
		t.Fatalf("needs root to %s", why)
	}
	t.Skipf("skipping: needs root to %s (set MEDIC_REQUIRE_SYSTEMD=1 to fail instead)", why)
}

// roleHelperEnv names the socket TestControlRoleHelper talks to.
const roleHelperEnv = "MEDIC_TEST_ROLE_SOCKET"

// TestControlRoleHelper is the client of TestControlRoles, run as another
// user: it prints, per request, the method, path, HTTP status and answer.
func TestControlRoleHelper(t *testing.T) {
	path := os.Getenv(roleHelperEnv)
	if path == "" {
		t.Skip("helper of TestControlRoles")
	}
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", path)
	}}}
	for _, rq := range [][3]string{
		{"GET", agent.StatusPath, ""},
		{"POST", agent.PausePath, `{"check":"web","for":"1h","reason":"mine now"}`},
		{"POST", agent.ResumePath, `{"check":"web"}`},
		{"POST", agent.ReloadPath, ""},
	} {
		req, _ := http.NewRequest(rq[0], "http://medic"+rq[1], strings.NewReader(rq[2]))
		resp, err := client.Do(req)
		if err != nil {
			fmt.Printf("%s %s error %q\n", rq[0], rq[1], err.Error())
			continue
		}
		var cr agent.ControlResponse
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		_ = json.Unmarshal(b, &cr)
		fmt.Printf("%s %s %d %q\n", rq[0], rq[1], resp.StatusCode, cr.Error)
	}
}

// TestControlRoles runs a client as uid 65534 in the socket's group (so it
// may connect): it reads the status, and its pause, resume and reload are
// refused with 403 and never reach medic; root's pause goes through.
func TestControlRoles(t *testing.T) {
	requireRoot(t, "run a client as another user")
	dir, err := os.MkdirTemp("", "medic-roles-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "medic.sock")
	ctl := &fakeController{}
	serve(t, path, ctl, nil)
	if err := os.Chown(path, -1, 65534); err != nil { // the socket's group: the readers'
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "agent.test")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	copyFile(t, self, bin)

	cmd := exec.Command(bin, "-test.run=^TestControlRoleHelper$", "-test.v=false")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent", roleHelperEnv + "=" + path}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper as uid 65534: %v\n%s", err, out)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 3)
		if len(f) == 3 && strings.HasPrefix(f[1], "/v1/") {
			got[f[0]+" "+f[1]] = f[2]
		}
	}
	if s := got["GET "+agent.StatusPath]; !strings.HasPrefix(s, "200 ") {
		t.Errorf("uid 65534 GET status: %q, want 200\n%s", s, out)
	}
	for _, p := range []string{agent.PausePath, agent.ResumePath, agent.ReloadPath} {
		s := got["POST "+p]
		if !strings.HasPrefix(s, "403 ") || !strings.Contains(s, "permission denied: uid 65534 may read the status") || !strings.Contains(s, "sudo") {
			t.Errorf("uid 65534 POST %s: %q, want 403 permission denied", p, s)
		}
	}
	if c := ctl.called(); len(c) != 0 {
		t.Errorf("verbs of uid 65534 reached medic: %v", c)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := agent.Control(ctx, path, agent.PausePath, agent.PauseRequest{Check: "web", For: "1h", Reason: "root's"}); err != nil {
		t.Errorf("root's pause: %v", err)
	}
	if c := ctl.called(); len(c) != 1 || c[0] != "pause" {
		t.Errorf("root's verbs that reached medic: %v, want [pause]", c)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestResumeSaysNotPaused: resuming a paused check answers plainly OK;
// resuming one that is not paused says so (not_paused), so that medic
// resume does not claim it resumed anything.
func TestResumeSaysNotPaused(t *testing.T) {
	path := filepath.Join(t.TempDir(), "medic.sock")
	ctl := &fakeController{paused: true}
	serve(t, path, ctl, nil)
	ctx := context.Background()
	r, err := agent.Control(ctx, path, agent.ResumePath, map[string]string{"check": "web"})
	if err != nil || !r.OK || r.NotPaused {
		t.Errorf("resume of a paused check: %+v, %v; want ok, not not_paused", r, err)
	}
	r, err = agent.Control(ctx, path, agent.ResumePath, map[string]string{"check": "web"})
	if err != nil || !r.OK || !r.NotPaused {
		t.Errorf("resume of a check that is not paused: %+v, %v; want ok and not_paused", r, err)
	}
	if _, err := agent.Control(ctx, path, agent.ResumePath, map[string]string{"check": "nope"}); err == nil || !strings.Contains(err.Error(), "no such check") {
		t.Errorf("resume of an unknown check: %v", err)
	}
}
