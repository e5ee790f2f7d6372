package logging

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
)

// requireEnv turns the skips of tests that need real systemd parts into
// failures, as in internal/systemdtest.
const requireEnv = "MEDIC_REQUIRE_SYSTEMD"

func unavailable(t *testing.T, reason string) {
	t.Helper()
	if os.Getenv(requireEnv) == "1" {
		t.Fatalf("%s=1 but systemd-journald cannot run: %s", requireEnv, reason)
	}
	t.Skipf("skipping: needs a real systemd-journald: %s (set %s=1 to fail instead)", reason, requireEnv)
}

const journaldBinary = "/lib/systemd/systemd-journald"

// startJournald runs a real systemd-journald in a private mount namespace
// where /run/systemd, /run/log, /var/log/journal and journald.conf are
// directories and a file of the test's (bind mounts, so the socket and the
// journal files are reachable from the test under dir). It keeps its
// journal in memory (Storage=volatile under dir/log), reads no kernel log
// and forwards nothing. It returns the native socket's path and the journal
// directory for journalctl -D.
func startJournald(t *testing.T) (socket, journalDir string) {
	t.Helper()
	if os.Geteuid() != 0 {
		unavailable(t, "not root (mount namespaces need it)")
	}
	for _, p := range []string{journaldBinary, "/usr/bin/unshare", "/usr/bin/journalctl", "/run/systemd", "/run/log", "/var/log/journal", "/etc/systemd/journald.conf"} {
		if _, err := os.Stat(p); err != nil {
			unavailable(t, err.Error())
		}
	}
	// Short: the socket path must fit in sun_path.
	dir, err := os.MkdirTemp("", "medic-journald-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	for _, d := range []string{"run", "log", "persistent"} {
		if err := os.Mkdir(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	conf := filepath.Join(dir, "journald.conf")
	err = os.WriteFile(conf, []byte("[Journal]\nStorage=volatile\nReadKMsg=no\nForwardToSyslog=no\nForwardToKMsg=no\n"+
		"ForwardToConsole=no\nForwardToWall=no\nRateLimitIntervalSec=0\n"), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(dir, "journald.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	script := `set -e
mount --bind "$1/run" /run/systemd
mount --bind "$1/log" /run/log
mount --bind "$1/persistent" /var/log/journal
mount --bind "$1/journald.conf" /etc/systemd/journald.conf
exec ` + journaldBinary
	cmd := exec.Command("unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", dir)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin"} // no NOTIFY_SOCKET, no JOURNAL_STREAM
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		unavailable(t, "start journald: "+err.Error())
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM) // unshare and sh exec'd, so this is journald
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			out, _ := os.ReadFile(filepath.Join(dir, "journald.log"))
			t.Logf("journald's output:\n%s", out)
		}
	})
	socket = filepath.Join(dir, "run", "journal", "socket")
	deadline := time.Now().Add(10 * time.Second)
	for !journalAvailable(socket) {
		select {
		case <-exited:
			out, _ := os.ReadFile(filepath.Join(dir, "journald.log"))
			unavailable(t, "journald exited: "+strings.TrimSpace(string(out)))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("journald's socket %s did not answer within 10s", socket)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return socket, filepath.Join(dir, "log", "journal")
}

// journalctl runs journalctl on the journal files in dir with -o json and
// returns the entries that match.
func journalctl(t *testing.T, dir string, match ...string) []map[string]any {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	args := append([]string{"-D", dir, "-o", "json", "--all", "--no-pager"}, match...)
	out, err := exec.CommandContext(ctx, "journalctl", args...).Output()
	if err != nil {
		t.Fatalf("journalctl %s: %v", strings.Join(args, " "), err)
	}
	var entries []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(out), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var e map[string]any
		if err := json.Unmarshal(line, &e); err != nil {
			t.Fatalf("journalctl output %q: %v", line, err)
		}
		entries = append(entries, e)
	}
	return entries
}

func TestRealJournald(t *testing.T) {
	socket, dir := startJournald(t)
	id := make([]byte, 4)
	_, _ = rand.Read(id)
	ident := "medic-test-" + hex.EncodeToString(id)
	log, err := New(Options{Format: FormatJournal, JournalSocket: socket, Identifier: ident})
	if err != nil {
		t.Fatal(err)
	}
	runner := log.Named("agent").With(zap.String("check", "my-app"), zap.String("unit", "my-app.service"))
	runner.Info("restart performed", zap.String(Field, RestartPerformed), zap.Int64("elapsed_ms", 812),
		zap.Object("outcome", outcome{JobResult: "done", Attempts: 1}))
	runner.Warn("gave up", zap.String(Field, GaveUp), zap.Error(errorString("restart budget spent\n3 restarts in 10m0s")))
	big := strings.Repeat("x", 300<<10) // too big for one datagram: goes by memfd
	runner.Info("diagnosis", zap.String("journal", big))
	// A per-event ID logged under Field by mistake.
	notification := "my-app-20261121T080000.123Z.1"
	runner.Warn("incident firing", zap.String(Field, notification))

	var entries []map[string]any
	deadline := time.Now().Add(10 * time.Second)
	for len(entries) < 4 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
		entries = journalctl(t, dir, "SYSLOG_IDENTIFIER="+ident)
	}
	if len(entries) != 4 {
		t.Fatalf("journal holds %d entries of %s, want 4", len(entries), ident)
	}
	want := map[string]string{
		"MESSAGE": "restart performed", "PRIORITY": "6", "SYSLOG_IDENTIFIER": ident, "LOGGER": "agent",
		"CHECK": "my-app", "UNIT": "my-app.service", "MESSAGE_ID": RestartPerformed,
		"ELAPSED_MS": "812", "OUTCOME_JOB_RESULT": "done", "_TRANSPORT": "journal",
	}
	for k, v := range want {
		if entries[0][k] != v {
			t.Errorf("%s = %v, want %q", k, entries[0][k], v)
		}
	}

	// What an operator types: journalctl MESSAGE_ID=... finds the event.
	gaveUp := journalctl(t, dir, "MESSAGE_ID="+GaveUp, "SYSLOG_IDENTIFIER="+ident)
	if len(gaveUp) != 1 || gaveUp[0]["MESSAGE"] != "gave up" || gaveUp[0]["PRIORITY"] != "4" {
		t.Fatalf("journalctl MESSAGE_ID=%s found %v, want the one gave-up entry", GaveUp, gaveUp)
	}
	// journalctl -o json writes a value with a newline as a string too.
	if got := gaveUp[0]["ERROR"]; got != "restart budget spent\n3 restarts in 10m0s" {
		t.Errorf("ERROR = %q, want the two lines", got)
	}
	if got, _ := entries[2]["JOURNAL"].(string); got != big {
		t.Errorf("JOURNAL of the big entry has %d bytes, want %d", len(got), len(big))
	}
	// MESSAGE_ID holds catalog IDs only: journald files the per-event ID
	// under FIELD_MESSAGE_ID, and no entry carries a MESSAGE_ID outside
	// the catalog.
	if got := journalctl(t, dir, "MESSAGE_ID="+notification); len(got) != 0 {
		t.Errorf("journalctl MESSAGE_ID=%s found %v, want nothing", notification, got)
	}
	if got := journalctl(t, dir, "FIELD_MESSAGE_ID="+notification, "SYSLOG_IDENTIFIER="+ident); len(got) != 1 || got[0]["MESSAGE"] != "incident firing" {
		t.Errorf("journalctl FIELD_MESSAGE_ID=%s found %v, want the incident entry", notification, got)
	}
	for _, e := range entries {
		if id, ok := e["MESSAGE_ID"]; ok && !IsCatalogID(fmt.Sprint(id)) {
			t.Errorf("entry %q has MESSAGE_ID %v, not a catalog ID", e["MESSAGE"], id)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// TestCatalogFile compiles medic.catalog with journalctl --update-catalog
// into a root of the test's own, and checks every ID has its entry.
func TestCatalogFile(t *testing.T) {
	if _, err := exec.LookPath("journalctl"); err != nil {
		unavailable(t, "no journalctl")
	}
	root := t.TempDir()
	catDir := filepath.Join(root, "usr", "lib", "systemd", "catalog")
	if err := os.MkdirAll(catDir, 0o755); err != nil {
		t.Fatal(err)
	}
	text, err := os.ReadFile("medic.catalog")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(catDir, "medic.catalog"), text, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("journalctl", "--root="+root, "--update-catalog").CombinedOutput(); err != nil {
		t.Fatalf("journalctl --update-catalog: %v\n%s", err, out)
	}
	out, err := exec.Command("journalctl", "--root="+root, "--list-catalog").Output()
	if err != nil {
		t.Fatalf("journalctl --list-catalog: %v", err)
	}
	listed := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		id, subject, _ := strings.Cut(line, " ")
		listed[id] = subject
	}
	for id := range catalogIDs {
		if !strings.HasPrefix(listed[id], "medic: ") {
			t.Errorf("catalog lists %s as %q, want a medic entry", id, listed[id])
		}
	}
	if len(listed) != len(catalogIDs) {
		t.Errorf("catalog lists %d entries, want %d:\n%s", len(listed), len(catalogIDs), out)
	}
}
