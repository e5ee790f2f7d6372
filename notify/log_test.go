package notify

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/medic-watchdog/medic/logging"
)

func TestLogNotifier(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n := NewLog("ops-log", zap.New(core))
	firing := sampleMessage(Firing, VerifyFailed)
	resolved := sampleMessage(Resolved, EventResolved)
	for _, m := range []*Message{firing, resolved} {
		retry, err := n.Notify(context.Background(), m)
		if retry || err != nil {
			t.Fatalf("Notify(%s) = %v, %v; want false, nil", m.Kind, retry, err)
		}
	}
	entries := logs.AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("got %d log lines, want 2", len(entries))
	}
	if e := entries[0]; e.Level != zapcore.WarnLevel || e.Message != firing.Subject() ||
		e.ContextMap()["notifier"] != "ops-log" || e.ContextMap()["incident"] != firing.Incident.ID || e.ContextMap()["restarts"] != int64(2) ||
		e.ContextMap()["notification_id"] != firing.ID || e.ContextMap()[logging.Field] != nil {
		t.Errorf("firing line = %v %q %v", e.Level, e.Message, e.ContextMap())
	}
	if e := entries[1]; e.Level != zapcore.InfoLevel || e.Message != resolved.Subject() {
		t.Errorf("resolved line = %v %q", e.Level, e.Message)
	}
}

// TestLogNotifierJournalMessageID sends messages through the log notifier
// into medic's journal logger (the native protocol, to a socket standing in
// for journald): the message's own ID is NOTIFICATION_ID, and MESSAGE_ID,
// when present, is one of medic's catalog IDs.
func TestLogNotifierJournalMessageID(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "journal")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	log, err := logging.New(logging.Options{Format: logging.FormatJournal, JournalSocket: sock})
	if err != nil {
		t.Fatal(err)
	}
	n := NewLog("ops-log", log)
	firing := sampleMessage(Firing, VerifyFailed)
	resolved := sampleMessage(Resolved, EventResolved)
	resolved.ID = firing.Incident.ID + ".2"
	d := NewDigest(members(1, 1))
	want := []string{firing.ID, resolved.ID, d.Digest[0].ID, d.Digest[1].ID}
	for _, m := range []*Message{firing, resolved, d} {
		if _, err := n.Notify(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1<<20)
	for i, id := range want {
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		k, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		fields := map[string][]string{}
		for _, line := range strings.Split(strings.TrimSuffix(string(buf[:k]), "\n"), "\n") {
			if name, value, ok := strings.Cut(line, "="); ok {
				fields[name] = append(fields[name], value)
			}
		}
		if got := fields["NOTIFICATION_ID"]; len(got) != 1 || got[0] != id {
			t.Errorf("entry %d: NOTIFICATION_ID = %q, want [%q]", i, got, id)
		}
		for _, v := range fields["MESSAGE_ID"] {
			if !logging.IsCatalogID(v) {
				t.Errorf("entry %d: MESSAGE_ID = %q, not one of medic's catalog IDs", i, v)
			}
		}
		if got := fields["FIELD_MESSAGE_ID"]; len(got) != 0 {
			t.Errorf("entry %d: FIELD_MESSAGE_ID = %q: the notifier logged its ID under logging.Field", i, got)
		}
	}
}
