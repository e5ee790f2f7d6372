package remedy

import (
	"fmt"
	"time"

	godbus "github.com/godbus/dbus/v5"
	"go.uber.org/zap/zapcore"
)

// UnitState is a snapshot of a unit's state as the systemd manager reports
// it over D-Bus (org.freedesktop.systemd1(5): the org.freedesktop.systemd1.Unit
// and, for services, org.freedesktop.systemd1.Service properties of the
// same names). Properties a unit type does not have are left zero.
type UnitState struct {
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

// Active reports whether ActiveState is "active" or "reloading".
func (s UnitState) Active() bool {
	return s.ActiveState == "active" || s.ActiveState == "reloading"
}

// String gives a one-line form such as
// "my-app.service loaded failed/failed result=signal code=2 status=9 pid=0 restarts=0 job=0".
func (s UnitState) String() string {
	return fmt.Sprintf("%s %s %s/%s result=%s code=%d status=%d pid=%d restarts=%d job=%d",
		s.Name, s.LoadState, s.ActiveState, s.SubState, s.Result,
		s.ExecMainCode, s.ExecMainStatus, s.MainPID, s.NRestarts, s.Job)
}

// MarshalLogObject lets zap.Object log the state as fields.
func (s UnitState) MarshalLogObject(enc zapcore.ObjectEncoder) error {
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

// unitStateFrom reads a UnitState out of the property map that
// GetAllPropertiesContext returns (values already unwrapped from their
// variants).
func unitStateFrom(unit string, p map[string]any) UnitState {
	s := UnitState{Name: str(p["Id"])}
	if s.Name == "" {
		s.Name = unit
	}
	s.LoadState = str(p["LoadState"])
	s.ActiveState = str(p["ActiveState"])
	s.SubState = str(p["SubState"])
	s.Result = str(p["Result"])
	s.ExecMainCode, _ = p["ExecMainCode"].(int32)
	s.ExecMainStatus, _ = p["ExecMainStatus"].(int32)
	s.NRestarts, _ = p["NRestarts"].(uint32)
	s.MainPID, _ = p["MainPID"].(uint32)
	s.ExecMainPID, _ = p["ExecMainPID"].(uint32)
	s.ControlGroup = str(p["ControlGroup"])
	if t, ok := p["TriggeredBy"].([]string); ok {
		s.TriggeredBy = append([]string{}, t...)
	}
	s.ActiveEnterTimestamp = usec(p["ActiveEnterTimestamp"])
	s.InactiveEnterTimestamp = usec(p["InactiveEnterTimestamp"])
	s.InactiveExitTimestamp = usec(p["InactiveExitTimestamp"])
	s.StateChangeTimestamp = usec(p["StateChangeTimestamp"])
	s.Job = jobID(p["Job"])
	return s
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// usec turns a systemd timestamp (uint64 µs since the epoch, 0 = never)
// into a time.Time (zero = never).
func usec(v any) time.Time {
	u, ok := v.(uint64)
	if !ok || u == 0 {
		return time.Time{}
	}
	return time.UnixMicro(int64(u))
}

// jobID reads the unit property Job, a "(uo)" struct of the job id and
// its object path; id 0 means no job.
func jobID(v any) uint32 {
	switch j := v.(type) {
	case godbus.Variant:
		return jobID(j.Value())
	case []any:
		if len(j) > 0 {
			id, _ := j[0].(uint32)
			return id
		}
	case []godbus.Variant:
		if len(j) > 0 {
			id, _ := j[0].Value().(uint32)
			return id
		}
	}
	return 0
}
