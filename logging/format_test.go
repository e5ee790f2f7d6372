package logging

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
)

func TestJSONFormat(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(Options{Format: FormatJSON, Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	// Far more identical lines than zap's production sampling lets through
	// (100 a second, then one in 100).
	for range 500 {
		log.Named("agent").Error("restart failed", zap.String("check", "my-app"), zap.String(Field, RestartFailed))
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 500 {
		t.Fatalf("got %d lines, want 500: sampling must be off", len(lines))
	}
	var got map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &got); err != nil {
		t.Fatalf("line %q is not JSON: %v", lines[0], err)
	}
	ts, _ := got["ts"].(string)
	if parsed, err := time.Parse(time.RFC3339Nano, ts); err != nil || time.Since(parsed) > time.Minute {
		t.Errorf("ts = %q (%v), want an RFC 3339 time of now", ts, err)
	}
	want := map[string]any{"level": "error", "logger": "agent", "msg": "restart failed", "check": "my-app", "message_id": RestartFailed}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	for _, k := range []string{"caller", "stacktrace"} {
		if _, ok := got[k]; ok {
			t.Errorf("%s present in %s, want no caller and no stack trace at error", k, lines[0])
		}
	}
}

func TestConsoleFormat(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(Options{Format: FormatConsole, Stderr: &buf})
	if err != nil {
		t.Fatal(err)
	}
	log.Named("remedy").Info("restart performed", zap.String("unit", "my-app.service"), zap.Duration("job", 1500*time.Millisecond))
	line := buf.String()
	fields := strings.Split(strings.TrimSuffix(line, "\n"), "\t")
	if len(fields) != 5 {
		t.Fatalf("got %q, want time, level, logger, message and fields, tab-separated", line)
	}
	if _, err := time.Parse("2006-01-02T15:04:05.000Z07:00", fields[0]); err != nil {
		t.Errorf("time %q: %v", fields[0], err)
	}
	if fields[1] != "INFO" || fields[2] != "remedy" || fields[3] != "restart performed" ||
		fields[4] != `{"unit": "my-app.service", "job": "1.5s"}` {
		t.Errorf("got %q", fields[1:])
	}
}
