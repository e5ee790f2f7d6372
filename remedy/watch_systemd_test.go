package remedy

import (
	"context"
	"strings"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/internal/usermanager"
)

func signalDial(m *usermanager.Manager) SignalDialFunc {
	return func(ctx context.Context) (*godbus.Conn, error) {
		return godbus.Connect(m.BusAddress(), godbus.WithContext(ctx))
	}
}

// watch starts a Watcher of units on m and returns its events.
func watch(t *testing.T, m *usermanager.Manager, units ...string) <-chan UnitEvent {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	events := make(chan UnitEvent, 64)
	w := NewWatcher(signalDial(m), units, zaptest.NewLogger(t))
	w.backoffMin = 20 * time.Millisecond
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(ctx, events) }()
	t.Cleanup(func() { cancel(); <-done })
	return events
}

// next returns the first event that ok accepts within d.
func next(t *testing.T, events <-chan UnitEvent, d time.Duration, what string, ok func(UnitEvent) bool) UnitEvent {
	t.Helper()
	deadline := time.After(d)
	for {
		select {
		case ev := <-events:
			t.Logf("event: %+v", ev)
			if ok(ev) {
				return ev
			}
		case <-deadline:
			t.Fatalf("no %s within %s", what, d)
		}
	}
}

func TestUnitPathMatchesSystemd(t *testing.T) {
	m := systemdtest.Start(t)
	conn, err := godbus.Connect(m.BusAddress())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, name := range []string{"medic-watch.service", "worker@1.service", "my_app-2.service", "9lives.socket"} {
		var p godbus.ObjectPath
		if err := conn.Object(sdDest, sdPath).Call(sdManager+".LoadUnit", 0, name).Store(&p); err != nil {
			t.Fatalf("LoadUnit(%s): %v", name, err)
		}
		if got := unitPath(name); got != p {
			t.Errorf("unitPath(%q) = %s, systemd says %s", name, got, p)
		}
	}
}

// TestWatcherSeesDeathStopAndReloads kills, stops and reloads for real:
// a SIGKILL is reported at once as failed with Result signal; an operator's
// `systemctl stop` as a stop job; daemon-reload and daemon-reexec resync
// the states and the watch keeps working; so it does after the user bus's
// dbus-daemon is killed (it is socket-activated and comes back).
func TestWatcherSeesDeathStopAndReloads(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-watch.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	events := watch(t, m, unit)
	next(t, events, 10*time.Second, "the initial resync", func(e UnitEvent) bool { return e.Resync && e.ActiveState == "active" })

	killed := time.Now()
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	ev := next(t, events, 5*time.Second, "the death", func(e UnitEvent) bool { return e.Down() })
	t.Logf("death reported %s after the kill", ev.At.Sub(killed))
	if ev.ActiveState != "failed" || ev.Result != "signal" || ev.StopJob || ev.Resync || ev.Job != "" || !ev.Died() {
		t.Errorf("death event = %+v, want failed, result signal, no job, not a stop: systemd's word that it died", ev)
	}

	systemdtest.Systemctl(t, m, "start", unit)
	next(t, events, 5*time.Second, "active again", func(e UnitEvent) bool { return e.ActiveState == "active" })

	// An operator's restart is a job, never a death; every event of it
	// but the last says the unit is between states.
	systemdtest.Systemctl(t, m, "restart", unit)
	sawJob := false
	next(t, events, 5*time.Second, "active after the operator's restart", func(e UnitEvent) bool {
		if e.Died() {
			t.Errorf("operator's restart reported as a death: %+v", e)
		}
		// The job's type is read when its signal is handled: "restart",
		// or "start" once systemd turned the restart job into a start
		// after its stop half, or "pending" once it ended.
		if e.Job != "" {
			sawJob = true
			if !e.Between() {
				t.Errorf("event during the restart job not between states: %+v", e)
			}
		}
		return sawJob && e.ActiveState == "active" && e.Job == ""
	})
	if !sawJob {
		t.Error("no event named the operator's restart job")
	}
	systemdtest.Systemctl(t, m, "stop", unit)
	next(t, events, 5*time.Second, "the operator's stop job", func(e UnitEvent) bool { return e.StopJob })
	next(t, events, 5*time.Second, "inactive after the stop", func(e UnitEvent) bool { return e.ActiveState == "inactive" && !e.StopJob })
	systemdtest.Systemctl(t, m, "start", unit)
	next(t, events, 5*time.Second, "active after the stop", func(e UnitEvent) bool { return e.ActiveState == "active" && !e.Resync })

	systemdtest.Systemctl(t, m, "daemon-reload")
	next(t, events, 10*time.Second, "a resync after daemon-reload", func(e UnitEvent) bool { return e.Resync })
	systemdtest.Systemctl(t, m, "daemon-reexec")
	next(t, events, 10*time.Second, "a resync after daemon-reexec", func(e UnitEvent) bool { return e.Resync })
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	next(t, events, 5*time.Second, "a death after daemon-reexec", func(e UnitEvent) bool { return e.Down() && !e.Resync })

	systemdtest.Systemctl(t, m, "start", unit)
	next(t, events, 5*time.Second, "active", func(e UnitEvent) bool { return e.ActiveState == "active" })
	out := systemdtest.Systemctl(t, m, "kill", "--signal=KILL", "dbus.service")
	_ = out
	next(t, events, 15*time.Second, "a resync after the bus came back", func(e UnitEvent) bool { return e.Resync })
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	ev = next(t, events, 5*time.Second, "a death after the bus came back", func(e UnitEvent) bool { return e.Down() && !e.Resync })
	if !strings.Contains(ev.Result, "signal") {
		t.Errorf("result after reconnect = %q", ev.Result)
	}
}
