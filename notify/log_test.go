package notify

import (
	"context"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

func TestLogNotifier(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n := NewLog("ops-log", zap.New(core))
	since := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	for _, ev := range []Event{
		{Kind: Firing, IncidentID: "my-app@1", Check: "my-app", Unit: "my-app.service", State: "gave_up", Reason: "restart budget spent", Since: since, Attempts: 3},
		{Kind: Resolved, IncidentID: "my-app@1", Check: "my-app", Unit: "my-app.service", State: "healthy", Since: since},
	} {
		retry, err := n.Notify(context.Background(), ev)
		if retry || err != nil {
			t.Fatalf("Notify(%s) = %v, %v; want false, nil", ev.Kind, retry, err)
		}
	}
	entries := logs.AllUntimed()
	if len(entries) != 2 {
		t.Fatalf("got %d log lines, want 2", len(entries))
	}
	if e := entries[0]; e.Level != zapcore.WarnLevel || e.Message != "incident firing" ||
		e.ContextMap()["notifier"] != "ops-log" || e.ContextMap()["reason"] != "restart budget spent" || e.ContextMap()["attempts"] != int64(3) {
		t.Errorf("firing line = %v %q %v", e.Level, e.Message, e.ContextMap())
	}
	if e := entries[1]; e.Level != zapcore.InfoLevel || e.Message != "incident resolved" {
		t.Errorf("resolved line = %v %q", e.Level, e.Message)
	}
}
