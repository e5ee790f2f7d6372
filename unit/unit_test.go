package unit

import "testing"

func TestStatePredicates(t *testing.T) {
	for _, tc := range []struct {
		s                                   State
		up, started, down, serving, between bool
	}{
		{s: State{ActiveState: "active", SubState: "running"}, up: true, started: true, serving: true},
		{s: State{ActiveState: "reloading", SubState: "reload"}, up: true, started: true, serving: true, between: true},
		{s: State{ActiveState: "activating", SubState: "start"}, started: true, between: true},
		// Waiting to restart itself: down, not between states.
		{s: State{ActiveState: "activating", SubState: "auto-restart"}, started: true, down: true},
		{s: State{ActiveState: "deactivating", SubState: "stop-sigterm"}, between: true},
		{s: State{ActiveState: "inactive", SubState: "dead"}, down: true},
		{s: State{ActiveState: "inactive", SubState: "dead", Job: 7}, down: true, between: true},
		{s: State{ActiveState: "failed", SubState: "failed", Result: "exit-code"}, down: true},
		// Socket activation: systemd holds the socket of an inactive unit.
		{s: State{ActiveState: "inactive", SubState: "dead", TriggeredBy: []string{"app.socket"}}, down: true, serving: true},
		{s: State{ActiveState: "failed", SubState: "failed", TriggeredBy: []string{"app.socket"}}, down: true},
		{s: State{ActiveState: "inactive", SubState: "dead", TriggeredBy: []string{"app.timer"}}, down: true},
	} {
		s := tc.s
		if got := s.Up(); got != tc.up {
			t.Errorf("%s/%s: Up() = %t, want %t", s.ActiveState, s.SubState, got, tc.up)
		}
		if got := s.Started(); got != tc.started {
			t.Errorf("%s/%s: Started() = %t, want %t", s.ActiveState, s.SubState, got, tc.started)
		}
		if got := s.Down(); got != tc.down {
			t.Errorf("%s/%s: Down() = %t, want %t", s.ActiveState, s.SubState, got, tc.down)
		}
		if got := s.Serving(); got != tc.serving {
			t.Errorf("%s/%s %v: Serving() = %t, want %t", s.ActiveState, s.SubState, s.TriggeredBy, got, tc.serving)
		}
		if got := s.Between(); got != tc.between {
			t.Errorf("%s/%s job %d: Between() = %t, want %t", s.ActiveState, s.SubState, s.Job, got, tc.between)
		}
	}
}
