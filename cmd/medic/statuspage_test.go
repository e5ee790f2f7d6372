package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/statuspage"
)

// startPageMedic runs `medic run` with a failing check (a TCP probe of a
// closed port, remedy "none") and the status page on listen, and returns
// the failing check's address and medic's log. recs are put in its
// incident history first.
func startPageMedic(t *testing.T, listen string, recs ...history.Record) (addr string, log *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	store := history.Open(history.Dir(filepath.Join(dir, "state")), nil)
	for _, r := range recs {
		if err := store.Put(r, history.Limits{Max: 1000}, time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	bin := medicBinary(t)
	addr = closedPort(t)
	cfg := filepath.Join(dir, "medic.toml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`
[agent]
bus = "user"
state_dir = %q
status_socket = %q
http_listen = %q
[[check]]
name = "web"
interval = "200ms"
timeout = "100ms"
failures = 1
grace = "0s"
  [[check.probe]]
  type = "tcp"
  address = %q
  [check.remedy]
  action = "none"
`, filepath.Join(dir, "state"), filepath.Join(dir, "medic.sock"), listen, addr)), 0o600); err != nil {
		t.Fatal(err)
	}
	log = &syncBuffer{}
	cmd := exec.Command(bin, "run", "-c", cfg)
	cmd.Stderr = log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("medic log:\n%s", log.String())
		}
	})
	return addr, log
}

// waitForPage polls url until its page contains every one of want, and
// returns it.
func waitForPage(t *testing.T, url string, want ...string) string {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var last string
	for {
		res, err := http.Get(url)
		if err == nil {
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			last = string(b)
			missing := false
			for _, w := range want {
				missing = missing || !strings.Contains(last, w)
			}
			if !missing {
				return last
			}
		} else {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			t.Fatalf("the page at %s never showed %q; last:\n%s", url, want, last)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestStatusPageOfRunningMedic(t *testing.T) {
	listen := closedPort(t)
	addr, log := startPageMedic(t, listen)
	url := "http://" + listen + "/"
	page := waitForPage(t, url, `<tr id="check-web" class="check bad">`, `<strong class="cause">`, "first failed probe")
	for _, want := range []string{`<span class="badge bad">failing</span>`, addr + " connection refused", `<td class="item-name">direct test</td>`} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if !strings.Contains(log.String(), `"msg":"serving the status page","address":"`+url+`"`) {
		t.Errorf("medic's log does not say where the page is served")
	}
	res, err := http.Post(url, "text/plain", strings.NewReader("pause"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Content-Security-Policy") != statuspage.ContentSecurityPolicy {
		t.Errorf("POST /: status %d, CSP %q; want 405 with the security headers", res.StatusCode, res.Header.Get("Content-Security-Policy"))
	}
	req, _ := http.NewRequest("GET", url, nil)
	req.Host = "rebound.example:80"
	res, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("GET / with Host %s: status %d, want 421", req.Host, res.StatusCode)
	}
}

func TestStatusPageNotLoopbackWarns(t *testing.T) {
	_, port := splitPort(t, closedPort(t))
	_, log := startPageMedic(t, "0.0.0.0:"+port)
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(log.String(), `"level":"warn"`) || !strings.Contains(log.String(), "serving the status page beyond this machine") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning that the page is served beyond loopback:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Served as written, to any Host.
	req, _ := http.NewRequest("GET", "http://127.0.0.1:"+port+"/", nil)
	req.Host = "medic.example.net:" + port
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET / with Host %s on 0.0.0.0: status %d, want 200", req.Host, res.StatusCode)
	}
}

func splitPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	i := strings.LastIndexByte(addr, ':')
	if i < 0 {
		t.Fatalf("no port in %q", addr)
	}
	return addr[:i], addr[i+1:]
}

// chromiumTimeout bounds one run of Chromium.
const chromiumTimeout = 90 * time.Second

// TestStatusPageChromium loads the page of a running medic with a failing
// check in a real headless Chromium (Debian's chromium package): the DOM
// it renders (--dump-dom) shows the check failing with its cause and
// checklist, no resource was refused by the page's Content-Security-Policy,
// and a screenshot is saved as a test artifact (under $MEDIC_ARTIFACTS
// when set).
func TestStatusPageChromium(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		if os.Getenv(systemdtest.RequireEnv) == "1" {
			t.Fatalf("%s=1 but chromium is not installed (apt-get install chromium): %v", systemdtest.RequireEnv, err)
		}
		t.Skipf("skipping: needs chromium (apt-get install chromium): %v (set %s=1 to fail instead)", err, systemdtest.RequireEnv)
	}
	// An incident history for the chart: three resolved, one given up.
	var recs []history.Record
	for i, ttr := range []time.Duration{800 * time.Millisecond, 4 * time.Second, 95 * time.Second, 0} {
		check := []string{"web", "web", "api", "api"}[i]
		since := time.Now().Add(-time.Duration(i+1) * 7 * time.Hour).UTC().Truncate(time.Millisecond)
		r := history.Record{ID: check + "-" + since.Format("20060102T150405.000Z"), Check: check, Unit: check + ".service",
			Since: since, Outcome: history.Resolved, ResolvedAt: since.Add(ttr), Restarts: 1, Cause: "backend crashed", Escalated: i > 1}
		if ttr == 0 {
			r.Outcome, r.ResolvedAt, r.GaveUpAt, r.Restarts = history.GaveUp, time.Time{}, since.Add(time.Minute), 3
		}
		recs = append(recs, r)
	}
	listen := closedPort(t)
	addr, _ := startPageMedic(t, listen, recs...)
	url := "http://" + listen + "/"
	waitForPage(t, url, `<tr id="check-web" class="check bad">`, `<strong class="cause">`, "first failed probe")

	home := t.TempDir()
	run := func(args ...string) (stdout, stderr string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), chromiumTimeout)
		defer cancel()
		args = append([]string{"--headless=new", "--no-sandbox", "--disable-gpu",
			"--user-data-dir=" + filepath.Join(home, "profile"), "--no-first-run", "--no-default-browser-check",
			"--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
			"--enable-logging=stderr", "--v=0"}, args...)
		cmd := exec.CommandContext(ctx, chromium, append(args, url)...)
		cmd.Env = append(os.Environ(), "HOME="+home, "XDG_CONFIG_HOME="+filepath.Join(home, "config"), "XDG_CACHE_HOME="+filepath.Join(home, "cache"))
		// Chromium runs a tree of processes: on timeout, kill its whole
		// process group, by the PID of the one we started.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		if ctx.Err() != nil {
			t.Fatalf("chromium %s did not finish within %s (killed); stderr:\n%s", strings.Join(args, " "), chromiumTimeout, errb.String())
		}
		if err != nil {
			t.Fatalf("chromium %s: %v; stderr:\n%s", strings.Join(args, " "), err, errb.String())
		}
		return out.String(), errb.String()
	}

	dom, stderr := run("--dump-dom")
	for _, want := range []string{
		`<tr id="check-web" class="check bad">`,
		`<span class="badge bad">failing</span>`,
		addr + " connection refused",
		`<strong class="cause">`,
		`<tr class="item fail"><td class="mark">✗</td><td class="item-name">direct test</td>`,
		`<td class="item-name">backend running</td>`,
		`<td class="item-name">firewall</td>`,
		`<td class="what">first failed probe</td>`,
		`Open incidents <span class="count">1</span>`,
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM Chromium rendered lacks %q", want)
		}
	}
	// The chart, as SVG in the DOM: one mark per incident of the history.
	if n := strings.Count(dom, `class="mark `); n != len(recs) {
		t.Errorf("the rendered chart has %d marks, want one per incident (%d)", n, len(recs))
	}
	for _, want := range []string{`<svg class="chart"`, `data-check="api"`, `data-check="web"`, `<rect class="mark gaveup"`, "Incident history"} {
		if !strings.Contains(dom, want) {
			t.Errorf("the DOM Chromium rendered lacks %q", want)
		}
	}
	if strings.Contains(stderr, "Refused to") || strings.Contains(stderr, "Content Security Policy") {
		t.Errorf("Chromium refused part of the page under its Content-Security-Policy:\n%s", stderr)
	}
	if t.Failed() {
		t.Logf("DOM:\n%s", dom)
	}

	dir := os.Getenv("MEDIC_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The first screen, as people see it, and the whole page down to
	// the chart and the history.
	for _, shot := range []struct{ name, size string }{{"statuspage-chromium.png", "1280,900"}, {"statuspage-chromium-full.png", "1280,1800"}} {
		file := filepath.Join(dir, shot.name)
		_ = os.Remove(file)
		run("--screenshot="+file, "--window-size="+shot.size, "--hide-scrollbars")
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("no screenshot: %v", err)
		}
		if !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) || len(b) < 10_000 {
			t.Errorf("screenshot %s is not a PNG of a page (%d bytes)", file, len(b))
		}
		t.Logf("screenshot of the status page (%s): %s", shot.size, file)
	}
}
