package logging

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/medic-watchdog/medic/internal/systemdtest"

	"go.uber.org/zap"
)

// devIno returns "DEV:INODE" of f, as systemd writes JOURNAL_STREAM.
func devIno(t *testing.T, f *os.File) (dev, ino uint64) {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return uint64(st.Dev), st.Ino
}

func tempStderr(t *testing.T) *os.File {
	t.Helper()
	f, err := os.Create(filepath.Join(t.TempDir(), "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestJournalStreamDetection(t *testing.T) {
	f := tempStderr(t)
	dev, ino := devIno(t, f)
	socket := newReceiver(t).path
	missing := filepath.Join(t.TempDir(), "no-socket")
	tests := []struct {
		name          string
		env           string
		w             any
		socket        string
		wantDetected  bool
		wantAutoMode  mode
		wantExplicitJ mode
	}{
		{"matches, socket answers", fmt.Sprintf("%d:%d", dev, ino), f, socket, true, modeNative, modeNative},
		{"matches, no socket", fmt.Sprintf("%d:%d", dev, ino), f, missing, true, modePrefix, modePrefix},
		{"other inode", fmt.Sprintf("%d:%d", dev, ino+1), f, socket, false, modeJSON, modeNative},
		{"other device", fmt.Sprintf("%d:%d", dev+1, ino), f, socket, false, modeJSON, modeNative},
		{"unset", "", f, socket, false, modeJSON, modeNative},
		{"malformed", "journal", f, socket, false, modeJSON, modeNative},
		{"not a file", fmt.Sprintf("%d:%d", dev, ino), &bytes.Buffer{}, socket, false, modeJSON, modeNative},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("JOURNAL_STREAM", tt.env)
			if got := isJournalStream(tt.w); got != tt.wantDetected {
				t.Errorf("isJournalStream = %v, want %v", got, tt.wantDetected)
			}
			w := tt.w.(interface{ Write([]byte) (int, error) })
			for _, c := range []struct {
				format string
				want   mode
			}{{"", tt.wantAutoMode}, {FormatAuto, tt.wantAutoMode}, {FormatJournal, tt.wantExplicitJ}} {
				got, err := resolve(Options{Format: c.format, JournalSocket: tt.socket}, w)
				if err != nil || got != c.want {
					t.Errorf("format %q resolves to %v, %v; want %v", c.format, got, err, c.want)
				}
			}
		})
	}
}

func TestAutoUsesNativeProtocolOnJournalStream(t *testing.T) {
	f := tempStderr(t)
	dev, ino := devIno(t, f)
	t.Setenv("JOURNAL_STREAM", fmt.Sprintf("%d:%d", dev, ino))
	r := newReceiver(t)
	log, err := New(Options{Stderr: f, JournalSocket: r.path})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("config reloaded", zap.String(Field, ConfigReloaded))
	if e := r.entry(); e.get("MESSAGE") != "config reloaded" || e.get("MESSAGE_ID") != ConfigReloaded {
		t.Errorf("got %v", e)
	}
}

func TestAutoOnTerminalIsConsole(t *testing.T) {
	tty, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		systemdtest.Missing(t, "no pseudo-terminal: %v", err)
	}
	defer tty.Close()
	t.Setenv("JOURNAL_STREAM", "")
	if got, err := resolve(Options{}, tty); err != nil || got != modeConsole {
		t.Errorf("auto on a terminal resolves to %v, %v; want console", got, err)
	}
}

func TestUnknownFormat(t *testing.T) {
	_, err := New(Options{Format: "xml"})
	if want := `parse log format "xml": want auto, journal, console or json`; err == nil || err.Error() != want {
		t.Errorf("err = %v, want %s", err, want)
	}
}
