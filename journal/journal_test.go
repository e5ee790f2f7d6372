package journal

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeJournal writes a real journal file from entries in journal export
// format with systemd-journal-remote (systemd-journal-remote(8),
// https://systemd.io/JOURNAL_EXPORT_FORMATS/), so that journalctl reads it
// as it reads the machine's journal.
func writeJournal(t *testing.T, unit string, messages []string) string {
	t.Helper()
	remote := "/lib/systemd/systemd-journal-remote"
	if _, err := os.Stat(remote); err != nil {
		if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
			t.Fatalf("%s missing (Debian package systemd-journal-remote): %v", remote, err)
		}
		t.Skipf("skipping: %s missing (install systemd-journal-remote)", remote)
	}
	var b bytes.Buffer
	base := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC).UnixMicro()
	for i, m := range messages {
		fmt.Fprintf(&b, "__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=0123456789abcdef0123456789abcdef\n", base+int64(i)*1000, i+1)
		fmt.Fprintf(&b, "_SYSTEMD_UNIT=%s\n_HOSTNAME=web1\nSYSLOG_IDENTIFIER=my-app\n_PID=42\nMESSAGE=%s\n\n", unit, m)
	}
	dir := t.TempDir()
	cmd := exec.Command(remote, "-o", filepath.Join(dir, "remote.journal"), "-")
	cmd.Stdin = &b
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("systemd-journal-remote: %v\n%s", err, out)
	}
	return dir
}

func TestTail(t *testing.T) {
	var msgs []string
	for i := range 30 {
		msgs = append(msgs, fmt.Sprintf("line %d", i))
	}
	msgs = append(msgs, "panic: assignment to entry in nil map")
	dir := writeJournal(t, "my-app.service", msgs)
	r := Reader{Directory: dir}

	lines, err := r.Tail(context.Background(), "my-app.service", 20)
	if err != nil {
		t.Fatal(err)
	}
	if len(lines) != 20 {
		t.Fatalf("got %d lines, want 20: %q", len(lines), lines)
	}
	if !strings.HasSuffix(lines[19], "my-app[42]: panic: assignment to entry in nil map") || !strings.HasSuffix(lines[0], "my-app[42]: line 11") {
		t.Errorf("first and last lines = %q, %q", lines[0], lines[19])
	}
	if !strings.HasPrefix(lines[0], "2026-11-21T08:00:00") {
		t.Errorf("line %q lacks the short-iso timestamp", lines[0])
	}

	other, err := r.Tail(context.Background(), "other.service", 20)
	if err != nil || len(other) != 0 {
		t.Errorf("Tail(other.service) = %q, %v; want no lines, no error", other, err)
	}
	if none, err := r.Tail(context.Background(), "my-app.service", 0); none != nil || err != nil {
		t.Errorf("Tail(n=0) = %q, %v", none, err)
	}
}

func TestTailErrors(t *testing.T) {
	_, err := Reader{Journalctl: "/nonexistent/journalctl"}.Tail(context.Background(), "x.service", 5)
	if err == nil || !strings.Contains(err.Error(), "read journal of x.service") {
		t.Errorf("missing journalctl: err = %v", err)
	}
	if err := (Reader{Journalctl: "/nonexistent/journalctl"}).Available(); err == nil {
		t.Error("Available() = nil for a missing program")
	}
}
