package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/policy"
	"github.com/medic-watchdog/medic/internal/safefile"
	"github.com/medic-watchdog/medic/notify"
)

// stateVersion is the version of the per-check state file format.
const stateVersion = 1

// checkState is what medic keeps of a check in state_dir/checks/NAME.json,
// so that a restart of medic (even SIGKILL) continues the incident and
// keeps the restart budget in use.
type checkState struct {
	Version           int             `json:"version"`
	Check             string          `json:"check"`
	Saved             time.Time       `json:"saved"`
	Machine           policy.Snapshot `json:"machine"`
	Incident          *incidentState  `json:"incident,omitempty"`
	Fixes             []time.Time     `json:"fixes,omitempty"`
	StoppedByOperator bool            `json:"stopped_by_operator,omitempty"`
}

// incidentState is the tracker's open incident.
type incidentState struct {
	Incident   notify.Incident `json:"incident"`
	Escalated  bool            `json:"escalated"`
	Seq        int             `json:"seq"`
	LastSent   time.Time       `json:"last_sent,omitzero"`
	Flapping   bool            `json:"flapping,omitempty"`
	LastFix    time.Time       `json:"last_fix,omitzero"`
	Recovering bool            `json:"recovering,omitempty"`
}

// maxStateFile bounds what medic reads of a state file (state_dir/checks/
// NAME.json, paused.json); a larger file is treated as unreadable.
const maxStateFile = 16 << 20

// statePath is the state file of check under stateDir.
func statePath(stateDir, check string) string {
	return filepath.Join(stateDir, "checks", check+".json")
}

// persist writes the runner's state atomically (temp file, fsync,
// rename, fsync of the directory; safefile.WriteFile). A failure is logged: medic keeps working without it.
func (r *runner) persist() {
	st := checkState{
		Version:           stateVersion,
		Check:             r.check.Name,
		Saved:             time.Now().Round(0),
		Machine:           r.m.Snapshot(),
		Fixes:             r.incidents.fixes,
		StoppedByOperator: r.stoppedByOperator,
	}
	if in := r.incidents.open; in != nil {
		st.Incident = &incidentState{Incident: in.Incident, Escalated: in.escalated, Seq: in.seq,
			LastSent: in.lastSent.Round(0), Flapping: in.flapping, LastFix: in.lastFix.Round(0), Recovering: in.recovering}
	}
	b, err := json.Marshal(st)
	if err == nil {
		err = safefile.WriteFile(statePath(r.agent.config().Agent.StateDir, r.check.Name), b, 0o600)
	}
	if err != nil {
		r.logger().Warn("cannot save the check's state; a restart of medic would start it afresh", zap.Error(err))
	}
}

// restore loads the check's saved state, if any, into the runner. A file
// that cannot be parsed is moved aside (NAME.json.corrupt-UNIXNANO),
// reported in the log and in status, and the check starts afresh: a bad
// state file never stops medic. So is anything that is not a regular file
// (a symbolic link, a FIFO, a device, a directory): it is never followed or
// read (safefile.Open), so it cannot block or spin medic.
func (r *runner) restore(p policy.Params, now time.Time) {
	path := statePath(r.agent.config().Agent.StateDir, r.check.Name)
	b, err := safefile.ReadFile(path, maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return
	}
	var st checkState
	if err == nil {
		err = json.Unmarshal(b, &st)
	}
	if err == nil && (st.Version != stateVersion || st.Check != r.check.Name) {
		err = fmt.Errorf("version %d for check %q, want version %d for %q", st.Version, st.Check, stateVersion, r.check.Name)
	}
	if err != nil {
		bad := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
		if rerr := os.Rename(path, bad); rerr != nil {
			bad = "(could not move it: " + rerr.Error() + ")"
		}
		what := "saved state of the check is unreadable; moved aside, the check starts afresh"
		if errors.Is(err, safefile.ErrNotRegular) {
			what = "saved state of the check is not a regular file; not read, moved aside, the check starts afresh"
		}
		r.logger().Error(what, zap.String("file", path), zap.String("moved_to", bad), zap.Error(err))
		r.status.StateNote = fmt.Sprintf("saved state unreadable (%v); moved to %s; started afresh", err, bad)
		return
	}
	r.m = policy.Restore(p, st.Machine, now)
	r.stoppedByOperator = st.StoppedByOperator
	if r.stoppedByOperator {
		r.status.Paused = &Pause{Until: st.Machine.PausedUntil, Reason: "stopped by the operator (systemctl stop)"}
	}
	r.incidents.fixes = st.Fixes
	if in := st.Incident; in != nil {
		r.incidents.open = &openIncident{Incident: in.Incident, escalated: in.Escalated, seq: in.Seq,
			lastSent: in.LastSent, flapping: in.Flapping, lastFix: in.LastFix, recovering: in.Recovering}
	}
	r.status.State = string(r.m.State())
	r.status.RestartsInWindow = r.m.RestartsInWindow(now)
	r.status.BudgetLeft = max(0, r.check.Remedy.MaxRestarts-r.status.RestartsInWindow)
	if r.incidents.open != nil {
		r.status.Incident = r.incidents.open.ID
	}
	r.logger().Info("check continues from its saved state", zap.String("state", string(r.m.State())),
		zap.Int("restarts_in_window", r.m.RestartsInWindow(now)), zap.String("incident", r.status.Incident),
		zap.Time("saved", st.Saved))
}
