package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/medic-watchdog/medic/internal/fsname"
	"github.com/medic-watchdog/medic/internal/safefile"
	"github.com/medic-watchdog/medic/notify"
)

// SavedIncident reads the open incident of check, with its timeline, from
// the check's state file under stateDir (state_dir/checks/NAME.json), as
// the check's runner last saved it: after every transition and every
// restart job, so the timeline is the one status would tell. It only
// reads: a file it cannot use is left for the runner to move aside.
//
// Outcomes:
//   - (incident, nil): the state file holds an open incident;
//   - (nil, nil): no state file, or no incident open in it;
//   - (nil, err): check is not a valid name, or the file is unreadable
//     (not a regular file, larger than 16 MiB, not parseable, another
//     version or check).
func SavedIncident(stateDir, check string) (*notify.Incident, error) {
	if err := fsname.Check(check); err != nil {
		return nil, fmt.Errorf("read saved incident: check %w", err)
	}
	path := statePath(stateDir, check)
	b, err := safefile.ReadFile(path, maxStateFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read saved incident: %w", err)
	}
	var st checkState
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("read saved incident: parse %s: %w", path, err)
	}
	if st.Version != stateVersion || st.Check != check {
		return nil, fmt.Errorf("read saved incident: %s: version %d for check %q, want version %d for %q", path, st.Version, st.Check, stateVersion, check)
	}
	if st.Incident == nil {
		return nil, nil
	}
	in := st.Incident.Incident
	return &in, nil
}
