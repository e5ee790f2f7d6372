package logging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestJournalNativeProtocol(t *testing.T) {
	r := newReceiver(t)
	var stderr bytes.Buffer
	log, err := New(Options{Format: FormatJournal, JournalSocket: r.path, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	runner := log.Named("agent").With(zap.String("check", "my-app"), zap.String("unit", "my-app.service"))
	runner.Warn("gave up",
		zap.String(Field, GaveUp),
		zap.Int64("elapsed_ms", 1234),
		zap.Duration("backoff", 1500*time.Millisecond),
		zap.Object("outcome", outcome{JobResult: "done", Attempts: 3}),
		zap.Strings("notify", []string{"ops-email", "ops-webhook"}),
		zap.Error(errors.New("restart my-app.service: job failed\nsee journalctl -u my-app.service")),
	)

	data, viaFd := r.next()
	if viaFd {
		t.Fatal("a small entry came as a memfd, want a plain datagram")
	}
	e, err := parseNative(data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"MESSAGE":            "gave up",
		"PRIORITY":           "4",
		"SYSLOG_IDENTIFIER":  "medic",
		"LOGGER":             "agent",
		"CHECK":              "my-app",
		"UNIT":               "my-app.service",
		"MESSAGE_ID":         GaveUp,
		"ELAPSED_MS":         "1234",
		"BACKOFF":            "1.5s",
		"OUTCOME_JOB_RESULT": "done",
		"OUTCOME_ATTEMPTS":   "3",
		"NOTIFY":             `["ops-email","ops-webhook"]`,
		"ERROR":              "restart my-app.service: job failed\nsee journalctl -u my-app.service",
	}
	for k, v := range want {
		if got := e[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want [%q]", k, got, v)
		}
	}
	// The multi-line error goes in the binary form: name, newline, length.
	errVal := want["ERROR"]
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(errVal)))
	if !bytes.Contains(data, append([]byte("\nERROR\n"), append(n[:], errVal+"\n"...)...)) {
		t.Errorf("ERROR not in the binary form in %q", data)
	}
	if stderr.Len() != 0 {
		t.Errorf("stderr got %q, want nothing while the journal answers", stderr.String())
	}
}

func TestJournalPriorities(t *testing.T) {
	r := newReceiver(t)
	log, err := New(Options{Format: FormatJournal, JournalSocket: r.path, Level: zapcore.DebugLevel, Identifier: "medic-test"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		log          func(string, ...zap.Field)
		wantPriority string
		wantStack    bool
	}{
		{log.Debug, "7", false},
		{log.Info, "6", false},
		{log.Warn, "4", false},
		{log.Error, "3", false},
		{log.DPanic, "2", true}, // a production logger does not panic on DPanic
	}
	for _, tt := range tests {
		tt.log("hello")
		e := r.entry()
		if got := e.get("PRIORITY"); got != tt.wantPriority {
			t.Errorf("PRIORITY = %q, want %q", got, tt.wantPriority)
		}
		if got := e.get("SYSLOG_IDENTIFIER"); got != "medic-test" {
			t.Errorf("SYSLOG_IDENTIFIER = %q, want medic-test", got)
		}
		if _, ok := e["STACKTRACE"]; ok != tt.wantStack {
			t.Errorf("priority %s: STACKTRACE present = %v, want %v", tt.wantPriority, ok, tt.wantStack)
		}
		if _, ok := e["CODE_FILE"]; ok {
			t.Errorf("priority %s: CODE_FILE present, want no caller", tt.wantPriority)
		}
	}
}

func TestJournalLevelFilters(t *testing.T) {
	r := newReceiver(t)
	log, err := New(Options{Format: FormatJournal, JournalSocket: r.path})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug("probe passed")
	r.nothing(100 * time.Millisecond)
}

func TestJournalReservedFieldNames(t *testing.T) {
	r := newReceiver(t)
	log, err := New(Options{Format: FormatJournal, JournalSocket: r.path})
	if err != nil {
		t.Fatal(err)
	}
	log.Info("real message", zap.String("message", "a field"), zap.String("priority", "high"), zap.String("_pid", "1"), zap.String("job-result", "done"))
	e := r.entry()
	want := map[string][]string{
		"MESSAGE":          {"real message"},
		"FIELD_MESSAGE":    {"a field"},
		"PRIORITY":         {"6"},
		"FIELD_PRIORITY":   {"high"},
		"PID":              {"1"},
		"JOB_RESULT":       {"done"},
		"_PID":             nil,
		"SYSLOG_IDENTIFIE": nil,
	}
	for k, v := range want {
		if got := e[k]; strings.Join(got, "|") != strings.Join(v, "|") {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
}

// TestJournalMessageIDOnlyFromCatalog: whatever a caller logs under Field
// (or any key that maps to MESSAGE_ID), the entry's MESSAGE_ID is one of
// medic's catalog IDs or absent; other values keep their text under
// FIELD_MESSAGE_ID.
func TestJournalMessageIDOnlyFromCatalog(t *testing.T) {
	tests := []struct {
		name          string
		fields        []zap.Field
		wantMessageID []string
		wantRenamed   []string
	}{
		{"catalog ID", []zap.Field{zap.String(Field, GaveUp)}, []string{GaveUp}, nil},
		{"notification ID", []zap.Field{zap.String(Field, "my-app-20261121T080000.123Z.1")}, nil, []string{"my-app-20261121T080000.123Z.1"}},
		{"upper-case key", []zap.Field{zap.String("MESSAGE_ID", "x")}, nil, []string{"x"}},
		{"dashed key", []zap.Field{zap.String("message-id", "x")}, nil, []string{"x"}},
		{"nested key", []zap.Field{zap.Object("message", idObject("x"))}, nil, []string{"x"}},
		{"catalog ID in upper case", []zap.Field{zap.String(Field, strings.ToUpper(GaveUp))}, nil, []string{strings.ToUpper(GaveUp)}},
		{"empty", []zap.Field{zap.String(Field, "")}, nil, []string{""}},
		{"second catalog ID", []zap.Field{zap.String(Field, RestartFailed), zap.String(Field, GaveUp)}, []string{RestartFailed}, []string{GaveUp}},
		{"catalog ID after another", []zap.Field{zap.String(Field, "x"), zap.String(Field, GaveUp)}, nil, []string{"x", GaveUp}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newReceiver(t)
			log, err := New(Options{Format: FormatJournal, JournalSocket: r.path})
			if err != nil {
				t.Fatal(err)
			}
			log.Info("event", tt.fields...)
			e := r.entry()
			if got := e["MESSAGE_ID"]; strings.Join(got, "|") != strings.Join(tt.wantMessageID, "|") || len(got) != len(tt.wantMessageID) {
				t.Errorf("MESSAGE_ID = %q, want %q", got, tt.wantMessageID)
			}
			if got := e["FIELD_MESSAGE_ID"]; strings.Join(got, "|") != strings.Join(tt.wantRenamed, "|") || len(got) != len(tt.wantRenamed) {
				t.Errorf("FIELD_MESSAGE_ID = %q, want %q", got, tt.wantRenamed)
			}
		})
	}
}

// idObject logs as an object with one "id" field, which the journal core
// flattens to MESSAGE_ID when logged under "message".
type idObject string

func (o idObject) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("id", string(o))
	return nil
}

// TestIsCatalogIDMatchesCatalogFile: IsCatalogID knows exactly the IDs of medic.catalog.
func TestIsCatalogIDMatchesCatalogFile(t *testing.T) {
	text, err := os.ReadFile("medic.catalog")
	if err != nil {
		t.Fatal(err)
	}
	inFile := map[string]bool{}
	for _, line := range strings.Split(string(text), "\n") {
		if id, ok := strings.CutPrefix(line, "-- "); ok {
			inFile[id] = true
			if !IsCatalogID(id) {
				t.Errorf("medic.catalog has %s, IsCatalogID says no", id)
			}
		}
	}
	for id := range catalogIDs {
		if !inFile[id] {
			t.Errorf("IsCatalogID(%s), but medic.catalog has no entry for it", id)
		}
	}
	for _, id := range []string{"", "my-app-20261121T080000.123Z.1", strings.ToUpper(GaveUp)} {
		if IsCatalogID(id) {
			t.Errorf("IsCatalogID(%q) = true", id)
		}
	}
}

func TestJournalLargeEntryGoesByMemfd(t *testing.T) {
	r := newReceiver(t)
	log, err := New(Options{Format: FormatJournal, JournalSocket: r.path})
	if err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("line of the unit's journal\n", 40000) // about 1 MiB, more than a datagram holds
	log.Info("diagnosis", zap.String("journal", big))
	data, viaFd := r.next()
	if !viaFd {
		t.Fatal("a 1 MiB entry came as a datagram, want a memfd")
	}
	e, err := parseNative(data)
	if err != nil {
		t.Fatal(err)
	}
	if e.get("JOURNAL") != big || e.get("MESSAGE") != "diagnosis" {
		t.Errorf("MESSAGE = %q, JOURNAL has %d bytes; want diagnosis, %d bytes", e.get("MESSAGE"), len(e.get("JOURNAL")), len(big))
	}
}

func TestJournalFallsBackToStderr(t *testing.T) {
	r := newReceiver(t)
	var stderr bytes.Buffer
	log, err := New(Options{Format: FormatJournal, JournalSocket: r.path, Stderr: &stderr})
	if err != nil {
		t.Fatal(err)
	}
	_ = r.conn.Close() // journald goes away
	log.Error("restart failed", zap.String("check", "my-app"))
	if got, want := stderr.String(), "<3>restart failed check=my-app\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}
