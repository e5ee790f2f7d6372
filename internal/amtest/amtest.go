// Package amtest gives tests a real Prometheus Alertmanager: Debian's
// prometheus-alertmanager package, started with its own configuration and
// storage under t.TempDir(), on a free loopback port, with clustering off.
//
// Its one route sends every alert, each in a group of its own, to a webhook
// receiver served by the test (send_resolved: true, group_wait 0s,
// group_interval 1s), so a test sees what Alertmanager itself would notify:
// a "firing" notification when it accepted an alert, and a "resolved" one
// when the alert's endsAt has passed. The latter is the proof that an alert
// was resolved: Alertmanager's GET /api/v2/alerts leaves out alerts whose
// endsAt is in the past, so a resolved alert there looks the same as one
// that was never sent.
//
// StartCluster runs several such Alertmanagers as one highly available
// cluster (gossip on loopback, with timings short enough for tests) that
// notify one shared Receiver, so a test sees the cluster's deduplication:
// one notification per change, whichever peers got the alert.
//
// When no Alertmanager binary is installed, Start and StartCluster skip the
// test with the reason; with MEDIC_REQUIRE_SYSTEMD=1 (set by .ci/run, which
// installs the package) they fail it instead.
package amtest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RequireEnv is the variable that turns a missing Alertmanager into a test
// failure instead of a skip when set to "1".
const RequireEnv = "MEDIC_REQUIRE_SYSTEMD"

// DebianBinary is where Debian's prometheus-alertmanager package installs
// the Alertmanager.
const DebianBinary = "/usr/bin/prometheus-alertmanager"

// GroupInterval is the group_interval of the test configuration: after its
// first notification, a group's changes (a resolved alert) are notified at
// most this long after they happen.
const GroupInterval = time.Second

// Server is a running Alertmanager. Its methods may be called from several
// goroutines.
type Server struct {
	url         string
	clusterAddr string // empty when clustering is off
	dir         string
	cmd         *exec.Cmd
	exited      chan struct{}
	logFile     string
	recv        *Receiver
}

// Binary returns the path of the Alertmanager to run: DebianBinary when it
// exists, else "prometheus-alertmanager" or "alertmanager" from PATH. It
// returns an error when there is none.
func Binary() (string, error) {
	if fi, err := os.Stat(DebianBinary); err == nil && !fi.IsDir() {
		return DebianBinary, nil
	}
	for _, name := range []string{"prometheus-alertmanager", "alertmanager"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("no %s and no alertmanager on PATH (apt-get install prometheus-alertmanager)", DebianBinary)
}

// Start runs an Alertmanager for the test and stops it in t.Cleanup
// (SIGTERM, then SIGKILL after 5s). It returns once GET /-/ready answers
// 200. It skips the test when no Alertmanager is installed (fails with
// MEDIC_REQUIRE_SYSTEMD=1), and fails it when the Alertmanager does not
// start. When the test failed, the cleanup logs the tail of the
// Alertmanager's log.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := binaryOrSkip(t)
	s := &Server{dir: t.TempDir(), recv: NewReceiver(t)}

	// The port is picked by binding :0 and closing it, so another process
	// may take it before the Alertmanager binds it: try a few times.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		// No gossip: nothing leaves loopback.
		if lastErr = s.start(t, bin, []string{"--cluster.listen-address="}); lastErr == nil {
			return s
		}
		t.Logf("start alertmanager (attempt %d): %v", attempt+1, lastErr)
	}
	t.Fatalf("start alertmanager: %v", lastErr)
	return nil
}

// binaryOrSkip returns Binary(), or skips the test (fails it under
// MEDIC_REQUIRE_SYSTEMD=1) when there is none.
func binaryOrSkip(t testing.TB) string {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv(RequireEnv) == "1" {
			t.Fatalf("%s=1 but no Alertmanager: %v", RequireEnv, err)
		}
		t.Skipf("skipping: needs a Prometheus Alertmanager: %v (set %s=1 to fail instead)", err, RequireEnv)
	}
	return bin
}

// start runs the Alertmanager binary bin on a free loopback port, with
// clusterArgs as its --cluster.* flags, and waits until it is ready.
func (s *Server) start(t testing.TB, bin string, clusterArgs []string) error {
	t.Helper()
	port, err := freePort()
	if err != nil {
		return err
	}
	run, err := os.MkdirTemp(s.dir, "run-")
	if err != nil {
		return fmt.Errorf("make run directory: %w", err)
	}
	cfgPath := filepath.Join(run, "alertmanager.yml")
	if err := os.WriteFile(cfgPath, []byte(config(s.recv.URL())), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	storage := filepath.Join(run, "data")
	if err := os.Mkdir(storage, 0o700); err != nil {
		return fmt.Errorf("make storage directory: %w", err)
	}
	s.logFile = filepath.Join(run, "alertmanager.log")
	logf, err := os.Create(s.logFile)
	if err != nil {
		return fmt.Errorf("create log file: %w", err)
	}
	defer logf.Close()

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{
		"--config.file=" + cfgPath,
		"--storage.path=" + storage,
		"--web.listen-address=" + addr,
		"--web.external-url=http://" + addr + "/",
		"--log.level=debug",
	}
	cmd := exec.Command(bin, append(args, clusterArgs...)...)
	cmd.Dir = run
	cmd.Stdin = nil
	cmd.Stdout = logf
	cmd.Stderr = logf
	// Should the test binary die without its cleanups, the kernel kills
	// the Alertmanager too.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", bin, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.url = cmd, exited, "http://"+addr

	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("alertmanager log %s (tail):\n%s", s.logFile, tail(s.logFile, 40))
		}
	})

	if err := s.waitReady(15 * time.Second); err != nil {
		s.stop()
		return fmt.Errorf("%w; log tail:\n%s", err, tail(s.logFile, 20))
	}
	return nil
}

// waitReady polls GET /-/ready until it answers 200, the process exits or
// d passes.
func (s *Server) waitReady(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.url+"/-/ready", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
		cancel()
		if err == nil && resp.StatusCode == http.StatusOK {
			return nil
		}
		select {
		case <-s.exited:
			return fmt.Errorf("alertmanager exited before it was ready: %v", s.cmd.ProcessState)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			if err == nil {
				err = fmt.Errorf("status %s", resp.Status)
			}
			return fmt.Errorf("alertmanager at %s not ready after %s: %w", s.url, d, err)
		}
	}
}

// Stop stops the Alertmanager now, by its PID: SIGTERM, then SIGKILL when
// it has not exited 5s later. Its URL then refuses connections. Calling
// Stop more than once is safe; Start's cleanup calls it too.
func (s *Server) Stop() { s.stop() }

func (s *Server) stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.exited
	}
}

// Kill kills the Alertmanager with SIGKILL, by its PID, as a crash or the
// OOM killer would, and waits until the process has exited: a peer of a
// Cluster leaves it without a word. Calling Kill after Stop or Kill is safe.
func (s *Server) Kill() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.exited:
		return
	default:
	}
	_ = s.cmd.Process.Kill()
	<-s.exited
}

// PID returns the Alertmanager's process ID.
func (s *Server) PID() int { return s.cmd.Process.Pid }

// URL returns the Alertmanager's base URL, e.g. "http://127.0.0.1:40123",
// the form medic's alertmanager notifier takes.
func (s *Server) URL() string { return s.url }

// ClusterAddr returns the Alertmanager's gossip address, e.g.
// "127.0.0.1:40124", or "" when clustering is off (Start).
func (s *Server) ClusterAddr() string { return s.clusterAddr }

// Receiver returns the webhook receiver the Alertmanager notifies, the same
// for every peer of a Cluster.
func (s *Server) Receiver() *Receiver { return s.recv }

// Sent reports whether this Alertmanager sent n: n's externalURL is this
// Alertmanager's URL.
func (s *Server) Sent(n Notification) bool {
	return strings.TrimRight(n.ExternalURL, "/") == s.url
}

// LogFile returns the path of the Alertmanager's log (stdout and stderr).
func (s *Server) LogFile() string { return s.logFile }

// config is the Alertmanager configuration: every alert in a group of its
// own ("..."), notified at once and its changes within a second, to the
// test's webhook, resolved ones included.
func config(hookURL string) string {
	return `# written by medic's internal/amtest
route:
  receiver: medic-test
  group_by: ['...']
  group_wait: 0s
  group_interval: ` + GroupInterval.String() + `
  repeat_interval: 1h
receivers:
  - name: medic-test
    webhook_configs:
      - url: '` + hookURL + `'
        send_resolved: true
        max_alerts: 0
`
}

// Alert is an alert as GET /api/v2/alerts returns it (the gettableAlert of
// Alertmanager's API v2 OpenAPI specification).
type Alert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	UpdatedAt    time.Time         `json:"updatedAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
	Receivers    []struct {
		Name string `json:"name"`
	} `json:"receivers"`
	Status struct {
		// State is "unprocessed", "active" or "suppressed".
		State       string   `json:"state"`
		SilencedBy  []string `json:"silencedBy"`
		InhibitedBy []string `json:"inhibitedBy"`
	} `json:"status"`
}

// Query selects alerts for GET /api/v2/alerts. A nil flag leaves the
// parameter out, which the API takes as true.
type Query struct {
	Active, Silenced, Inhibited, Unprocessed *bool
	// Filter holds matchers such as `alertname="MedicCheckFailing"`.
	Filter []string
	// Receiver is a regular expression on receiver names.
	Receiver string
}

// Alerts returns the alerts GET /api/v2/alerts lists that match all of the
// filter matchers (e.g. `check="my-app"`), in every state. Alertmanager
// leaves out alerts whose endsAt has passed: a resolved alert is not
// listed (see WaitNotification).
func (s *Server) Alerts(ctx context.Context, filter ...string) ([]Alert, error) {
	return s.Query(ctx, Query{Filter: filter})
}

// Query returns the alerts GET /api/v2/alerts lists for q.
func (s *Server) Query(ctx context.Context, q Query) ([]Alert, error) {
	v := url.Values{}
	for name, p := range map[string]*bool{"active": q.Active, "silenced": q.Silenced, "inhibited": q.Inhibited, "unprocessed": q.Unprocessed} {
		if p != nil {
			v.Set(name, strconv.FormatBool(*p))
		}
	}
	for _, f := range q.Filter {
		v.Add("filter", f)
	}
	if q.Receiver != "" {
		v.Set("receiver", q.Receiver)
	}
	u := s.url + "/api/v2/alerts"
	if len(v) > 0 {
		u += "?" + v.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("get alerts: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("get alerts: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return nil, fmt.Errorf("read alerts: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("get alerts: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	var alerts []Alert
	if err := json.Unmarshal(body, &alerts); err != nil {
		return nil, fmt.Errorf("decode alerts: %w", err)
	}
	return alerts, nil
}

// WaitAlert polls GET /api/v2/alerts (every 50ms) until an alert matching
// the filter matchers satisfies ok, and returns it; it returns an error
// when ctx ends first.
func (s *Server) WaitAlert(ctx context.Context, ok func(Alert) bool, filter ...string) (Alert, error) {
	var last []Alert
	for {
		alerts, err := s.Alerts(ctx, filter...)
		if err == nil {
			last = alerts
			for _, a := range alerts {
				if ok(a) {
					return a, nil
				}
			}
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = fmt.Errorf("%d alerts match %q, none as wanted: %+v", len(last), filter, last)
			}
			return Alert{}, fmt.Errorf("wait for alert: %w: %w", context.Cause(ctx), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Notification is one webhook notification the Alertmanager sent to its
// receiver (the webhook_config payload, version "4").
type Notification struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	Status            string            `json:"status"` // "firing" or "resolved"
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []WebhookAlert    `json:"alerts"`
	// Received is when the test's webhook got it.
	Received time.Time `json:"-"`
}

// WebhookAlert is one alert in a Notification.
type WebhookAlert struct {
	Status       string            `json:"status"` // "firing" or "resolved"
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations"`
	StartsAt     time.Time         `json:"startsAt"`
	EndsAt       time.Time         `json:"endsAt"`
	GeneratorURL string            `json:"generatorURL"`
	Fingerprint  string            `json:"fingerprint"`
}

// Receiver is the webhook receiver an Alertmanager's only route notifies:
// an HTTP server of the test's that keeps every notification. Its methods
// may be called from several goroutines.
type Receiver struct {
	hook *httptest.Server

	mu      sync.Mutex
	notes   []Notification
	changed chan struct{} // closed and replaced when notes grows
}

// NewReceiver starts a webhook receiver on loopback and closes it in
// t.Cleanup.
func NewReceiver(t testing.TB) *Receiver {
	r := &Receiver{changed: make(chan struct{})}
	r.hook = httptest.NewServer(http.HandlerFunc(r.serveWebhook))
	t.Cleanup(r.hook.Close)
	return r
}

// URL returns the URL of the receiver's webhook endpoint.
func (r *Receiver) URL() string { return r.hook.URL + "/webhook" }

func (r *Receiver) serveWebhook(w http.ResponseWriter, req *http.Request) {
	var n Notification
	if err := json.NewDecoder(io.LimitReader(req.Body, 4<<20)).Decode(&n); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	n.Received = time.Now()
	r.mu.Lock()
	r.notes = append(r.notes, n)
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()
}

// Notifications returns the webhook notifications received so far, oldest
// first.
func (r *Receiver) Notifications() []Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Notification(nil), r.notes...)
}

// WaitNotification waits until an Alertmanager has notified an alert for
// which ok returns true, and returns that alert; it returns an error when
// ctx ends first. With status "resolved", it is the proof that Alertmanager
// took the alert as resolved: it notifies a resolved alert only after it
// had notified it firing.
func (r *Receiver) WaitNotification(ctx context.Context, ok func(WebhookAlert) bool) (WebhookAlert, error) {
	_, a, err := r.Wait(ctx, ok)
	return a, err
}

// Wait is WaitNotification that also returns the notification the alert
// came in, e.g. to tell which peer of a Cluster sent it (Server.Sent).
func (r *Receiver) Wait(ctx context.Context, ok func(WebhookAlert) bool) (Notification, WebhookAlert, error) {
	seen := 0
	for {
		r.mu.Lock()
		notes, changed := r.notes[seen:], r.changed
		seen = len(r.notes)
		r.mu.Unlock()
		for _, n := range notes {
			for _, a := range n.Alerts {
				if ok(a) {
					return n, a, nil
				}
			}
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Notification{}, WebhookAlert{}, fmt.Errorf("wait for notification (%d received): %w", seen, context.Cause(ctx))
		}
	}
}

// Count returns how many alerts for which ok returns true the receiver got
// so far, each alert of each notification counted.
func (r *Receiver) Count(ok func(WebhookAlert) bool) int {
	n := 0
	for _, note := range r.Notifications() {
		for _, a := range note.Alerts {
			if ok(a) {
				n++
			}
		}
	}
	return n
}

// Notifications returns the webhook notifications the Alertmanager's
// receiver got so far, oldest first (of every peer, in a Cluster).
func (s *Server) Notifications() []Notification { return s.recv.Notifications() }

// WaitNotification is Receiver.WaitNotification on the Alertmanager's
// receiver.
func (s *Server) WaitNotification(ctx context.Context, ok func(WebhookAlert) bool) (WebhookAlert, error) {
	return s.recv.WaitNotification(ctx, ok)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "(no log)"
		}
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
