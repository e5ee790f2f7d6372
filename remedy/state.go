package remedy

import (
	"time"

	godbus "github.com/godbus/dbus/v5"
	"github.com/medic-watchdog/medic/unit"
)

// unitStateFrom reads a unit.State out of the property map that
// GetAllPropertiesContext returns (values already unwrapped from their
// variants).
func unitStateFrom(name string, p map[string]any) unit.State {
	s := unit.State{Name: str(p["Id"])}
	if s.Name == "" {
		s.Name = name
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
