package logging

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// prefixLogger returns a logger writing priority-prefixed lines to buf: what
// "journal" does when the native socket is missing.
func prefixLogger(t *testing.T, buf *bytes.Buffer, level zapcore.Level) *zap.Logger {
	t.Helper()
	log, err := New(Options{Format: FormatJournal, JournalSocket: "/nonexistent/socket", Stderr: buf, Level: level})
	if err != nil {
		t.Fatal(err)
	}
	return log
}

func TestPrefixLines(t *testing.T) {
	var buf bytes.Buffer
	log := prefixLogger(t, &buf, zapcore.DebugLevel)
	tests := []struct {
		log  func(string, ...zap.Field)
		msg  string
		f    []zap.Field
		want string
	}{
		{log.Debug, "probe passed", nil, "<7>probe passed"},
		{log.Info, "restart performed", []zap.Field{zap.String("check", "my-app"), zap.String(Field, RestartPerformed)},
			"<6>restart performed check=my-app message_id=" + RestartPerformed},
		{log.Warn, "probe failed", []zap.Field{zap.Duration("duration", 2*time.Second), zap.String("class", "refused")},
			"<4>probe failed duration=2s class=refused"},
		{log.Error, "restart failed", []zap.Field{zap.Error(errors.New("job failed: timeout"))},
			`<3>restart failed error="job failed: timeout"`},
		{log.Info, "outcome", []zap.Field{zap.Object("outcome", outcome{JobResult: "done", Attempts: 2}), zap.String("empty", ""), zap.String("q", `a"b`)},
			`<6>outcome outcome.job_result=done outcome.attempts=2 empty="" q="a\"b"`},
	}
	for _, tt := range tests {
		buf.Reset()
		tt.log(tt.msg, tt.f...)
		if got := buf.String(); got != tt.want+"\n" {
			t.Errorf("got %q\nwant %q", got, tt.want+"\n")
		}
	}
}

func TestPrefixLinesNeverSpanLines(t *testing.T) {
	var buf bytes.Buffer
	log := prefixLogger(t, &buf, zapcore.InfoLevel).Named("remedy").With(zap.String("unit", "my-app.service"))
	log.Warn("first line\nsecond line\r", zap.String("journal", "a\nb"), zap.String("key with\nnewline", "v"))
	log.Info("next")
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	want := []string{
		`<4>first line\nsecond line\r logger=remedy unit=my-app.service journal="a\nb" key_with_newline=v`,
		`<6>next logger=remedy unit=my-app.service`,
	}
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Errorf("got lines\n%s\nwant\n%s", strings.Join(lines, "\n"), strings.Join(want, "\n"))
	}
}

func TestPrefixLinesFromManyGoroutinesStayWhole(t *testing.T) {
	var buf bytes.Buffer
	log := prefixLogger(t, &buf, zapcore.InfoLevel)
	done := make(chan struct{})
	for g := range 8 {
		go func() {
			defer func() { done <- struct{}{} }()
			for range 200 {
				log.Info("probe", zap.Int("g", g), zap.String("pad", strings.Repeat("x", 100)))
			}
		}()
	}
	for range 8 {
		<-done
	}
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) != 1600 {
		t.Fatalf("got %d lines, want 1600 (no sampling, no torn lines)", len(lines))
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "<6>probe g=") || !strings.HasSuffix(l, strings.Repeat("x", 100)) {
			t.Fatalf("torn line %q", l)
		}
	}
}
