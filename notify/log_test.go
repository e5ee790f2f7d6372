package notify

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
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
		e.ContextMap()["notifier"] != "ops-log" || e.ContextMap()["incident"] != firing.Incident.ID || e.ContextMap()["restarts"] != int64(2) {
		t.Errorf("firing line = %v %q %v", e.Level, e.Message, e.ContextMap())
	}
	if e := entries[1]; e.Level != zapcore.InfoLevel || e.Message != resolved.Subject() {
		t.Errorf("resolved line = %v %q", e.Level, e.Message)
	}
}
