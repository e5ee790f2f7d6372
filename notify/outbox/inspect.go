package outbox

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/medic-watchdog/medic/internal/safefile"
)

// Inspect reads the outbox in dir without changing it, for `medic outbox`
// while medic runs: per notifier directory, how many messages wait
// (Pending), how many were rejected for good (Failed), and when the oldest
// waiting one was queued, with its last error. Counters that live only in
// a running outbox (Delivered, Dropped) are zero. A missing dir is an empty
// outbox; unreadable files, and files that are not regular files (never
// followed or read), are skipped.
func Inspect(dir string) ([]Stat, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Stat
	for _, e := range entries {
		if !e.IsDir() || e.Name() == CorruptDir || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		st := Stat{Notifier: e.Name()}
		nd := filepath.Join(dir, e.Name())
		pending, _ := filepath.Glob(filepath.Join(nd, "*"+fileSuffix))
		sort.Strings(pending) // sequence numbers are zero-padded: name order is queue order
		st.Pending = len(pending)
		if len(pending) > 0 {
			if b, err := safefile.ReadFile(pending[0], maxRecord); err == nil {
				var r record
				if json.Unmarshal(b, &r) == nil {
					st.OldestPending = r.EnqueuedAt
					st.LastError = r.LastError
				}
			}
		}
		failed, _ := filepath.Glob(filepath.Join(nd, FailedDir, "*"+fileSuffix))
		st.Failed = len(failed)
		out = append(out, st)
	}
	return out, nil
}
