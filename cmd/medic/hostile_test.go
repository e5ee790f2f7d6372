package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/notify/outbox"
)

// hookServer is a webhook receiver that records the webhook-id and the
// check of each delivery.
type hookServer struct {
	*httptest.Server
	mu  sync.Mutex
	got []string // "id check"
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var p struct {
			Incident struct {
				Check string `json:"check"`
			} `json:"incident"`
			Check string `json:"check"`
		}
		_ = json.Unmarshal(body, &p)
		check := p.Incident.Check
		if check == "" {
			check = p.Check
		}
		h.mu.Lock()
		h.got = append(h.got, r.Header.Get("webhook-id")+" "+check+" "+string(body))
		h.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.Close)
	return h
}

// deliveredFor counts the deliveries whose body names check.
func (h *hookServer) deliveredFor(check string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, g := range h.got {
		if strings.Contains(g, `"`+check+`"`) {
			n++
		}
	}
	return n
}

// TestReloadRenamesNotifier renames a notifier (and the check's notify
// list) and reloads a running medic: the reload applies, a new incident's
// firing message goes out through the new name, and the message pending
// for the removed name is not lost: it waits in the outbox (medic outbox,
// medic status), and goes out once the old name is configured again.
func TestReloadRenamesNotifier(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	state := filepath.Join(dir, "state")
	hook := newHookServer(t)
	// A webhook receiver that is down: the old notifier's message stays.
	down := closedPort(t)

	check := func(name, notify string) string {
		return fmt.Sprintf(`
[[check]]
name = %q
interval = "200ms"
timeout = "100ms"
failures = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"
  [check.remedy]
  action = "none"
  [check.escalate]
  notify = [%q]
`, name, notify)
	}
	notifier := func(name, url string) string {
		return fmt.Sprintf("\n[[notifier]]\nname = %q\ntype = \"webhook\"\nurl = %q\ntimeout = \"1s\"\n", name, url)
	}
	head := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = %q\n", state, sock)
	save := func(text string) {
		t.Helper()
		tmp := cfg + ".tmp"
		if err := os.WriteFile(tmp, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, cfg); err != nil {
			t.Fatal(err)
		}
	}
	save(head + check("web", "ops-hook") + notifier("ops-hook", "http://"+down+"/hook"))
	_, log := startMedic(t, cfg)

	pendingFor := func(name string) (outbox.Stat, bool) {
		st, _ := outbox.Inspect(filepath.Join(state, "outbox"))
		i := slices.IndexFunc(st, func(s outbox.Stat) bool { return s.Notifier == name })
		if i < 0 {
			return outbox.Stat{}, false
		}
		return st[i], true
	}
	systemdtest.WaitFor(t, 15*time.Second, func() bool {
		s, ok := pendingFor("ops-hook")
		return ok && s.Pending == 1 && s.LastError != ""
	}, "web's firing message pending for ops-hook after a failed attempt")

	// Rename: ops-hook becomes ops-webhook (working), web routes to it,
	// and a new check api fires after the reload.
	save(head + check("web", "ops-webhook") + check("api", "ops-webhook") + notifier("ops-webhook", hook.URL+"/hook"))
	if _, stderr, err := execute("reload", "--socket", sock); err != nil {
		t.Fatalf("medic reload: %v\n%s\nmedic log:\n%s", err, stderr, log.String())
	}
	systemdtest.WaitFor(t, 15*time.Second, func() bool { return hook.deliveredFor("api") == 1 }, "api's firing message through ops-webhook")
	if strings.Contains(log.String(), "unknown notifier") || strings.Contains(log.String(), "cannot queue message") {
		t.Errorf("a message was not queued:\n%s", log.String())
	}
	if s, ok := pendingFor("ops-hook"); !ok || s.Pending != 1 {
		t.Errorf("the removed notifier's message: %+v, %v; want 1 pending", s, ok)
	}
	out, _, err := execute("outbox", "-c", cfg)
	if err != nil || !strings.Contains(out, "ops-hook") {
		t.Errorf("medic outbox does not show the removed notifier's message: %v\n%s", err, out)
	}
	if r := statusOf(t, sock); r == nil || !slices.ContainsFunc(r.Outbox, func(s outbox.Stat) bool {
		return s.Notifier == "ops-hook" && s.Pending == 1 && s.Unconfigured
	}) {
		t.Errorf("medic status does not show the removed notifier's message as waiting: %+v", r)
	}
	if n := hook.deliveredFor("web"); n != 0 {
		t.Errorf("web's message was delivered %d times through the new name; it belongs to ops-hook", n)
	}

	// ops-hook comes back, now reachable: its message goes out.
	save(head + check("web", "ops-webhook") + check("api", "ops-webhook") + notifier("ops-webhook", hook.URL+"/hook") + notifier("ops-hook", hook.URL+"/old"))
	if _, stderr, err := execute("reload", "--socket", sock); err != nil {
		t.Fatalf("medic reload: %v\n%s", err, stderr)
	}
	systemdtest.WaitFor(t, 15*time.Second, func() bool { return hook.deliveredFor("web") == 1 }, "web's message through ops-hook, back")
	systemdtest.WaitFor(t, 5*time.Second, func() bool { s, ok := pendingFor("ops-hook"); return ok && s.Pending == 0 }, "ops-hook's queue to empty")
}

// TestReloadWithBrokenNotifierIsRefusedWhole: a reload whose new notifier
// cannot be built (its secret file is missing) is refused as a whole: the
// checks of the new file do not start either, and messages keep going to
// the notifier in force.
func TestReloadWithBrokenNotifierIsRefusedWhole(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	hook := newHookServer(t)
	head := fmt.Sprintf("[agent]\nbus = \"user\"\nstate_dir = %q\nstatus_socket = %q\n", dir, sock)
	web := "\n[[check]]\nname = \"web\"\ninterval = \"1s\"\ntimeout = \"100ms\"\n  [[check.probe]]\n  type = \"tcp\"\n  address = \"127.0.0.1:1\"\n  [check.remedy]\n  action = \"none\"\n  [check.escalate]\n  notify = [\"a\"]\n"
	api := strings.ReplaceAll(strings.ReplaceAll(web, `"web"`, `"api"`), `["a"]`, `["b"]`)
	a := fmt.Sprintf("\n[[notifier]]\nname = \"a\"\ntype = \"webhook\"\nurl = %q\n", hook.URL)
	b := fmt.Sprintf("\n[[notifier]]\nname = \"b\"\ntype = \"webhook\"\nurl = %q\nsecret_file = %q\n", hook.URL, filepath.Join(dir, "missing-secret"))
	if err := os.WriteFile(cfg, []byte(head+web+a), 0o600); err != nil {
		t.Fatal(err)
	}
	_, log := startMedic(t, cfg)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return statusOf(t, sock) != nil }, "medic to answer")
	if err := os.WriteFile(cfg, []byte(head+web+api+a+b), 0o600); err != nil {
		t.Fatal(err)
	}
	_, stderr, err := execute("reload", "--socket", sock)
	if err == nil {
		t.Fatalf("reload with a notifier that cannot be built succeeded\n%s", log.String())
	}
	if !strings.Contains(stderr, "missing-secret") {
		t.Errorf("reload error does not name the missing secret file: %s", stderr)
	}
	r := statusOf(t, sock)
	if r == nil || len(r.Checks) != 1 || r.Checks[0].Check != "web" || r.ReloadError == "" {
		t.Errorf("status after the refused reload: %+v", r)
	}
}

// plantCase is a file planted where medic reads a file by path.
type plantCase struct {
	name string
	// where is "state" (state_dir/checks/web.json), "paused"
	// (state_dir/paused.json) or "errorlog" (nginx's error log).
	where string
	plant func(t *testing.T, path string)
	// wantLog is what medic logs about it.
	wantLog string
	// wantNote is the check's status state_note, when there is one.
	wantNote string
}

// TestPlantedFilesNeverHoldMedic plants a FIFO, /dev/zero (through a
// symbolic link, and as a device node when the test may make one), a
// symbolic link and a directory where medic reads its state files and
// nginx's error log. Each time medic starts, reports what it skipped, runs
// its check, and ends within a few seconds of SIGTERM.
func TestPlantedFilesNeverHoldMedic(t *testing.T) {
	fifo := func(t *testing.T, p string) {
		if err := syscall.Mkfifo(p, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target string) func(t *testing.T, p string) {
		return func(t *testing.T, p string) {
			if err := os.Symlink(target, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	devZero := func(t *testing.T, p string) {
		if err := unix.Mknod(p, unix.S_IFCHR|0o600, int(unix.Mkdev(1, 5))); err != nil {
			if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
				t.Fatalf("make a device node as root: %v", err)
			}
			t.Skipf("cannot make a device node (%v); the symbolic link case covers /dev/zero", err)
		}
	}
	dir := func(t *testing.T, p string) {
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	secret := filepath.Join(t.TempDir(), "secret.json")
	if err := os.WriteFile(secret, []byte(`{"version":1,"check":"web"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	const stateNote = "not a regular file"
	for _, tc := range []plantCase{
		{"state-fifo", "state", fifo, "saved state of the check is not a regular file", stateNote},
		{"state-dev-zero-link", "state", link("/dev/zero"), "saved state of the check is not a regular file", stateNote},
		{"state-dev-zero-node", "state", devZero, "saved state of the check is not a regular file", stateNote},
		{"state-symlink", "state", link(secret), "saved state of the check is not a regular file", stateNote},
		{"state-directory", "state", dir, "saved state of the check is not a regular file", stateNote},
		{"paused-fifo", "paused", fifo, "the pauses file is not a regular file", ""},
		{"paused-dev-zero-link", "paused", link("/dev/zero"), "the pauses file is not a regular file", ""},
		{"errorlog-fifo", "errorlog", fifo, "FIFO, not a regular file: skipped", ""},
		{"errorlog-dev-zero-link", "errorlog", link("/dev/zero"), "symbolic link, not a regular file: skipped", ""},
		{"errorlog-dev-zero-node", "errorlog", devZero, "device, not a regular file: skipped", ""},
	} {
		t.Run(tc.name, func(t *testing.T) { plantedFile(t, tc) })
	}
}

func plantedFile(t *testing.T, tc plantCase) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "medic.sock")
	cfg := filepath.Join(dir, "medic.toml")
	logDir := filepath.Join(dir, "nginx")
	for _, d := range []string{filepath.Join(dir, "checks"), logDir} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	errorLog := filepath.Join(logDir, "error.log")
	target := map[string]string{
		"state":    filepath.Join(dir, "checks", "web.json"),
		"paused":   filepath.Join(dir, "paused.json"),
		"errorlog": errorLog,
	}[tc.where]
	tc.plant(t, target)
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = %q
[[check]]
name = "web"
interval = "200ms"
timeout = "100ms"
  [[check.probe]]
  type = "tcp"
  address = "127.0.0.1:1"
  [check.remedy]
  action = "none"
[[watch.nginx]]
error_log = %q
`, dir, sock, errorLog)), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, log := startMedic(t, cfg)
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		r := statusOf(t, sock)
		return r != nil && !r.Checks[0].LastProbe.IsZero()
	}, "medic to answer and probe")
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return strings.Contains(log.String(), tc.wantLog) }, "medic to report "+tc.wantLog)
	if tc.wantNote != "" {
		if r := statusOf(t, sock); r == nil || !strings.Contains(r.Checks[0].StateNote, tc.wantNote) {
			t.Errorf("status state_note = %+v, want %q", r, tc.wantNote)
		}
	}
	start := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	select {
	case err := <-waited:
		if err != nil {
			t.Errorf("medic exited with %v after SIGTERM", err)
		}
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("medic still running 5s after SIGTERM:\n%s", log.String())
	}
	t.Logf("medic ended %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}
