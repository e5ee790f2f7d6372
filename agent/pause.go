package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"go.uber.org/zap"
)

// Pause is a maintenance pause of a check's remediation.
type Pause struct {
	// Until is when remediation resumes by itself.
	Until time.Time `json:"until"`
	// Reason is what the operator said, e.g. "deploy 4.2".
	Reason string `json:"reason,omitempty"`
}

// pauseStore keeps the pauses in a JSON file in state_dir, written
// atomically (temp file, fsync, rename, fsync of the directory), so that a
// pause survives a restart of medic. A file that cannot be read is moved
// aside and reported, never fatal.
type pauseStore struct {
	path string
	log  *zap.Logger

	mu     sync.Mutex
	pauses map[string]Pause
}

func openPauses(path string, log *zap.Logger) *pauseStore {
	s := &pauseStore{path: path, log: log, pauses: map[string]Pause{}}
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
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
	return writeFileAtomic(s.path, b, 0o600)
}

// writeFileAtomic replaces path with data: temp file in the same
// directory, fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(f.Name(), perm)
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
	return nil
}
