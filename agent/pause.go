package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/internal/safefile"
)

// Pause is a maintenance pause of a check's remediation.
type Pause struct {
	// Until is when remediation resumes by itself.
	Until time.Time `json:"until"`
	// Reason is what the operator said, e.g. "deploy 4.2".
	Reason string `json:"reason,omitempty"`
}

// pauseStore keeps the pauses in a JSON file in state_dir, written
// atomically (safefile.WriteFile: temp file, fsync, rename, fsync of the
// directory), so that a pause survives a restart of medic. A file that
// cannot be read, or is not a regular file (never followed or read:
// safefile.Open), is moved aside and reported, never fatal.
type pauseStore struct {
	path string
	log  *zap.Logger

	mu     sync.Mutex
	pauses map[string]Pause
}

func openPauses(path string, log *zap.Logger) *pauseStore {
	s := &pauseStore{path: path, log: log, pauses: map[string]Pause{}}
	b, err := safefile.ReadFile(path, maxStateFile)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case errors.Is(err, safefile.ErrNotRegular):
		bad := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
		if rerr := os.Rename(path, bad); rerr != nil {
			bad = "(could not move it: " + rerr.Error() + ")"
		}
		log.Error("the pauses file is not a regular file; not read, moved aside, none are in force",
			zap.String("file", path), zap.String("moved_to", bad), zap.Error(err))
	case err != nil:
		log.Error("cannot read the pauses; none are in force", zap.String("file", path), zap.Error(err))
	default:
		if err := json.Unmarshal(b, &s.pauses); err != nil {
			bad := path + ".corrupt"
			_ = os.Rename(path, bad)
			log.Error("the pauses file is corrupt; moved aside, none are in force", zap.String("file", path), zap.String("moved_to", bad), zap.Error(err))
			s.pauses = map[string]Pause{}
		}
	}
	return s
}

// get returns the pause of check if one is in force at now.
func (s *pauseStore) get(check string, now time.Time) (Pause, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.pauses[check]
	if !ok || !now.Before(p.Until) {
		return Pause{}, false
	}
	return p, true
}

func (s *pauseStore) set(check string, p Pause) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pauses[check] = p
	return s.save()
}

func (s *pauseStore) remove(check string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.pauses, check)
	return s.save()
}

// save writes the pauses; s.mu is held. Expired pauses are dropped.
func (s *pauseStore) save() error {
	now := time.Now()
	for c, p := range s.pauses {
		if !now.Before(p.Until) {
			delete(s.pauses, c)
		}
	}
	b, err := json.MarshalIndent(s.pauses, "", "  ")
	if err != nil {
		return err
	}
	return safefile.WriteFile(s.path, b, 0o600)
}
