package notify

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func sampleMessage(k Kind, ev Event) *Message {
	since := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	m := &Message{
		ID: "my-app-20261121T080000Z.1", Kind: k, Event: ev, At: since.Add(40 * time.Second), Version: "1.0.0",
		Incident: Incident{
			ID: "my-app-20261121T080000Z", Check: "my-app", Unit: "my-app.service", Host: "web1",
			Target: "127.0.0.1:8080", Problem: "127.0.0.1:8080 connection refused", Since: since, Restarts: 2,
			Timeline:  []Entry{{At: since, What: "first failed probe", Detail: "connection refused"}},
			UnitState: UnitState{ActiveState: "failed", SubState: "failed", Result: "exit-code", ExecMainCode: 1, ExecMainStatus: 1},
		},
	}
	if k == Resolved {
		m.Incident.ResolvedAt = since.Add(95 * time.Second)
	}
	return m
}

func TestSubject(t *testing.T) {
	tests := []struct {
		kind Kind
		ev   Event
		want string
	}{
		{Firing, VerifyFailed, "[medic] FIRING my-app.service on web1: 127.0.0.1:8080 connection refused, restart did not help"},
		{Firing, RestartFailed, "[medic] FIRING my-app.service on web1: 127.0.0.1:8080 connection refused, restart failed"},
		{Firing, GaveUp, "[medic] FIRING my-app.service on web1: 127.0.0.1:8080 connection refused, gave up after 2 restarts"},
		{Reminder, GaveUp, "[medic] FIRING my-app.service on web1: 127.0.0.1:8080 connection refused, gave up after 2 restarts"},
		{Resolved, EventResolved, "[medic] RESOLVED my-app.service on web1: 127.0.0.1:8080 connection refused, resolved after 1m35s"},
	}
	for _, tt := range tests {
		if got := sampleMessage(tt.kind, tt.ev).Subject(); got != tt.want {
			t.Errorf("Subject(%s, %s) = %q, want %q", tt.kind, tt.ev, got, tt.want)
		}
	}
}

func TestSubjectCannotInjectHeaders(t *testing.T) {
	m := sampleMessage(Firing, VerifyFailed)
	m.Incident.Problem = "HTTP 500\r\nBcc: victim@example.com\n"
	if s := m.Subject(); strings.ContainsAny(s, "\r\n") {
		t.Errorf("subject %q holds CR or LF", s)
	}
}

func TestRetryAfter(t *testing.T) {
	err := errors.Join(errors.New("x"), &RetryAfterError{After: 3 * time.Second, Err: errors.New("429 Too Many Requests")})
	if got := RetryAfter(err); got != 3*time.Second {
		t.Errorf("RetryAfter = %s, want 3s", got)
	}
	if got := RetryAfter(errors.New("plain")); got != 0 {
		t.Errorf("RetryAfter(plain) = %s, want 0", got)
	}
}
