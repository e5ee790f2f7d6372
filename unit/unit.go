// Package unit is a systemd unit's state as medic reads it: one State for
// the remedies that act on units (package remedy, over D-Bus), the
// diagnosis that explains them (package diagnose), the agent's policy and
// the CLI. It reads nothing itself.
package unit

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap/zapcore"
)

// State is a snapshot of a unit's state as the systemd manager reports
// it over D-Bus (org.freedesktop.systemd1(5): the org.freedesktop.systemd1.Unit
// and, for services, org.freedesktop.systemd1.Service properties of the
// same names). Properties a unit type does not have are left zero.
type State struct {
	// Name is the unit's primary name (property Id), e.g. "my-app.service".
	Name string
	// LoadState is "loaded", "not-found", "bad-setting", "error" or
	// "masked".
	LoadState string
	// ActiveState is "active", "reloading", "inactive", "failed",
	// "activating" or "deactivating".
	ActiveState string
	// SubState is the unit-type specific state, e.g. "running", "dead",
	// "start-pre", "auto-restart", "failed".
	SubState string
	// Result is the service's last result: "success", "exit-code",
	// "signal", "core-dump", "timeout", "watchdog", "start-limit-hit",
	// "resources", "protocol", "oom-kill" (systemd.service(5)).
	Result string
	// ExecMainCode is the CLD_* code (waitid(2)) of the main process's
	// last exit: 1 CLD_EXITED, 2 CLD_KILLED, 3 CLD_DUMPED; 0 if it never
	// exited.
	ExecMainCode int32
	// ExecMainStatus is the exit status (for CLD_EXITED) or the signal
	// number (CLD_KILLED, CLD_DUMPED) of the main process's last exit.
	ExecMainStatus int32
	// NRestarts counts the restarts systemd did by Restart= (not those by
	// medic or an operator); reset by a manual start after a stop.
	NRestarts uint32
	// MainPID is the main process's PID, 0 if none.
	MainPID uint32
	// ExecMainPID is the PID of the main process last started, kept after
	// it exited (org.freedesktop.systemd1.Service.ExecMainPID); 0 if none
	// was started. The kernel's log names a killed process by this PID.
	ExecMainPID uint32
	// ControlGroup is the unit's cgroup path relative to the hierarchy
	// root, e.g. "/system.slice/my-app.service"; empty when it has none.
	ControlGroup string
	// TriggeredBy names the units that start this one, its socket units
	// among them (property TriggeredBy, e.g. "my-app.socket"); empty, not
	// nil, when the property was read and lists none.
	TriggeredBy []string
	// ActiveEnterTimestamp is when the unit last entered "active"; zero if
	// never (from ActiveEnterTimestamp, µs since the epoch).
	ActiveEnterTimestamp time.Time
	// InactiveEnterTimestamp is when the unit last entered "inactive" or
	// "failed"; zero if never.
	InactiveEnterTimestamp time.Time
	// InactiveExitTimestamp is when the unit last left "inactive" or
	// "failed", i.e. when its last start began; zero if never.
	InactiveExitTimestamp time.Time
	// StateChangeTimestamp is when ActiveState or SubState last changed;
	// zero if never.
	StateChangeTimestamp time.Time
	// Job is the id of the job queued or running for the unit (property
	// Job, "(uo)"), 0 if none.
	Job uint32
}

// Up reports whether the unit is up: ActiveState "active" or "reloading".
func (s State) Up() bool { return s.ActiveState == "active" || s.ActiveState == "reloading" }

// Started reports whether the unit was started and has not stopped:
// active, reloading, or activating (its start is under way, or it waits to
// restart itself).
func (s State) Started() bool { return s.Up() || s.ActiveState == "activating" }

// Down reports whether the unit has no process serving: failed, inactive,
// or waiting to restart itself (activating/auto-restart). See IsDown.
func (s State) Down() bool { return IsDown(s.ActiveState, s.SubState) }

// IsDown reports whether a unit in ActiveState active and SubState sub has
// no process serving: failed, inactive, or waiting to restart itself
// (activating/auto-restart, systemd.service(5) Restart=).
func IsDown(active, sub string) bool {
	return active == "failed" || active == "inactive" || (active == "activating" && sub == "auto-restart")
}

// SocketActivated reports whether a .socket unit triggers the unit
// (TriggeredBy).
func (s State) SocketActivated() bool {
	return slices.ContainsFunc(s.TriggeredBy, func(t string) bool { return strings.HasSuffix(t, ".socket") })
}

// Serving reports whether the unit is where it should be for its clients:
// up, or inactive (not failed) and socket-activated, so that systemd holds
// its listening socket and starts it on the first connection.
func (s State) Serving() bool {
	return s.Up() || (s.ActiveState == "inactive" && s.SocketActivated())
}

// String gives a one-line form such as
// "my-app.service loaded failed/failed result=signal code=2 status=9 pid=0 restarts=0 job=0".
func (s State) String() string {
	return fmt.Sprintf("%s %s %s/%s result=%s code=%d status=%d pid=%d restarts=%d job=%d",
		s.Name, s.LoadState, s.ActiveState, s.SubState, s.Result,
		s.ExecMainCode, s.ExecMainStatus, s.MainPID, s.NRestarts, s.Job)
}

// MarshalLogObject lets zap.Object log the state as fields.
func (s State) MarshalLogObject(enc zapcore.ObjectEncoder) error {
	enc.AddString("unit", s.Name)
	enc.AddString("load_state", s.LoadState)
	enc.AddString("active_state", s.ActiveState)
	enc.AddString("sub_state", s.SubState)
	if s.Result != "" {
		enc.AddString("result", s.Result)
	}
	enc.AddInt32("exec_main_code", s.ExecMainCode)
	enc.AddInt32("exec_main_status", s.ExecMainStatus)
	enc.AddUint32("n_restarts", s.NRestarts)
	enc.AddUint32("main_pid", s.MainPID)
	if s.ControlGroup != "" {
		enc.AddString("control_group", s.ControlGroup)
	}
	if !s.ActiveEnterTimestamp.IsZero() {
		enc.AddTime("active_enter", s.ActiveEnterTimestamp)
	}
	if !s.InactiveEnterTimestamp.IsZero() {
		enc.AddTime("inactive_enter", s.InactiveEnterTimestamp)
	}
	if !s.InactiveExitTimestamp.IsZero() {
		enc.AddTime("inactive_exit", s.InactiveExitTimestamp)
	}
	if !s.StateChangeTimestamp.IsZero() {
		enc.AddTime("state_change", s.StateChangeTimestamp)
	}
	if s.Job != 0 {
		enc.AddUint32("job", s.Job)
	}
	return nil
}

// Between reports whether the unit is between states (activating,
// deactivating, reloading, or a job is under way): evidence read now
// describes neither the old state nor the new one. See IsBetween.
func (s State) Between() bool { return IsBetween(s.ActiveState, s.SubState, s.Job != 0) }

// IsBetween reports whether a unit in ActiveState active and SubState sub,
// with a job queued or running when job is set, is between states; a unit
// waiting to restart itself (activating/auto-restart) is not: it is down.
func IsBetween(active, sub string, job bool) bool {
	switch active {
	case "activating", "deactivating", "reloading":
		return !(active == "activating" && sub == "auto-restart")
	}
	return job
}
