// Package history keeps medic's incidents after they end: one JSON file per
// incident in state_dir/incidents/ID.json, written when the incident
// resolves or when medic gives up on it (and written again, under the same
// ID, when an incident medic gave up on resolves later).
//
// Every write goes through safefile.WriteFile (temporary file, fsync,
// rename, fsync of the directory), one small file per incident: a write
// costs the same with ten records or a thousand, and medic killed with
// SIGKILL at any moment leaves every earlier record whole and the one being
// written either as it was or complete. Reads go through safefile (regular
// files only, never through a symbolic link, bounded size); a file that
// cannot be parsed is moved aside by the agent (ID.json.corrupt-UNIXNANO)
// and skipped, with a warning, by readers such as `medic incidents`.
//
// The history is bounded by count and age (Limits): each write removes the
// records that ended longest ago beyond either bound. The temporary file of
// a write that never finished (medic killed between safefile.WriteFile's
// create and rename) is removed by the store once it is TempMaxAge old.
package history

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/internal/fsname"
	"github.com/medic-watchdog/medic/internal/safefile"
	"github.com/medic-watchdog/medic/notify"
)

// Subdir is the directory of the history under state_dir.
const Subdir = "incidents"

// Dir returns the history's directory under stateDir.
func Dir(stateDir string) string { return filepath.Join(stateDir, Subdir) }

// Version is the version of the record file format.
const Version = 1

// MaxFile bounds what is read of one record file; a larger file is
// treated as corrupt. A record holds at most 60 timeline entries and one
// diagnosis, far below it.
const MaxFile = 4 << 20

// TempMaxAge is how old a temporary file of safefile.WriteFile
// (safefile.TempPrefix) in the history must be before the store removes
// it as the leftover of a write that never finished. A write in progress,
// of this medic or of another process, takes far less, so its file is
// never removed under it.
const TempMaxAge = time.Minute

// FileMode is the mode of record files: like the other state files, for
// medic's user (and root) alone. The directory is made 0700.
const FileMode = 0o600

// Outcome is how an incident ended, as far as medic is concerned.
type Outcome string

const (
	// Resolved: the check was healthy again.
	Resolved Outcome = "resolved"
	// GaveUp: medic spent its restart budget and gave up; the record is
	// written again, as Resolved, if the check recovers later.
	GaveUp Outcome = "gave_up"
)

// Record is one incident as the history keeps it.
type Record struct {
	Version int    `json:"version"`
	ID      string `json:"id"`
	Check   string `json:"check"`
	Unit    string `json:"unit"`
	Host    string `json:"host"`
	// Target is what the failing probe probed; Problem how it failed.
	Target  string `json:"target"`
	Problem string `json:"problem"`
	// Cause is the diagnosed cause ("backend crashed"); "" when not
	// diagnosed. Diagnosis is the evidence behind it.
	Cause     string              `json:"cause,omitempty"`
	Diagnosis *diagnose.Diagnosis `json:"diagnosis,omitempty"`
	// Since is the time of the first failed probe. ResolvedAt is when the
	// check was healthy again (the last recovery, for an incident medic kept
	// open to see that the check stays healthy); zero unless Outcome is
	// Resolved.
	Since      time.Time `json:"since"`
	ResolvedAt time.Time `json:"resolved_at,omitzero"`
	// GaveUpAt is when medic last gave up in the incident; zero if it never
	// did.
	GaveUpAt time.Time `json:"gave_up_at,omitzero"`
	Outcome  Outcome   `json:"outcome"`
	// Restarts is the number of restarts medic issued in the incident.
	Restarts int `json:"restarts"`
	// Escalated says that alerts were sent (a firing message); false for a
	// quiet incident, only logged and counted.
	Escalated bool           `json:"escalated"`
	Timeline  []notify.Entry `json:"timeline"`
	// Recorded is when the record was written.
	Recorded time.Time `json:"recorded"`
}

// TimeToRecovery is ResolvedAt − Since for a resolved incident, 0 for
// one that is not.
func (r *Record) TimeToRecovery() time.Duration {
	if r.Outcome != Resolved || r.ResolvedAt.IsZero() {
		return 0
	}
	return max(0, r.ResolvedAt.Sub(r.Since))
}

// Ended is when the incident ended for the history's bounds: ResolvedAt,
// else GaveUpAt, else Recorded.
func (r *Record) Ended() time.Time {
	switch {
	case !r.ResolvedAt.IsZero():
		return r.ResolvedAt
	case !r.GaveUpAt.IsZero():
		return r.GaveUpAt
	}
	return r.Recorded
}

// idTime is the layout of the time at the end of an incident ID.
const idTime = "20060102T150405.000Z"

// CheckID returns nil when id is an incident ID medic makes, CHECK-TIME
// with CHECK a valid check name (internal/fsname) and TIME the first
// failure in UTC ("app-20261121T080000.123Z"): safe as a file name. The
// longest ID is 85 bytes.
func CheckID(id string) error {
	n := len(idTime)
	if len(id) < n+2 || id[len(id)-n-1] != '-' {
		return fmt.Errorf("incident id %q: want CHECK-%s", id, idTime)
	}
	check, ts := id[:len(id)-n-1], id[len(id)-n:]
	if err := fsname.Check(check); err != nil {
		return fmt.Errorf("incident id %q: check %w", id, err)
	}
	if _, err := time.Parse(idTime, ts); err != nil {
		return fmt.Errorf("incident id %q: want CHECK-%s", id, idTime)
	}
	return nil
}

// Limits bound the history.
type Limits struct {
	// Max is the number of records kept; 0 keeps none (Put writes nothing).
	Max int
	// MaxAge removes the records that ended longer ago; 0 means no bound
	// of age.
	MaxAge time.Duration
}

// Store writes the history of one state_dir. Its methods are safe for
// concurrent use: writes of different incidents run in parallel, only the
// bookkeeping of the bounds is serialised.
type Store struct {
	dir string
	// warn reports a record file moved aside, or a record or temporary
	// file that could not be removed.
	warn func(msg, file string, err error)

	// wallNow is the clock of temporary files' ages (their mtimes are
	// wall-clock times, whatever now Put is given).
	wallNow func() time.Time

	mu     sync.Mutex
	loaded bool
	ended  map[string]time.Time // ID → Ended() of the records on disk
	// nextSweep is when the oldest temporary file left by sweepTemps is
	// TempMaxAge old; zero when none was left.
	nextSweep time.Time
}

// Open returns the Store of the history in dir (see Dir). Nothing is read
// until the first Put. warn, when not nil, is told of each record file
// that cannot be read (moved aside) and of each failure to remove one.
func Open(dir string, warn func(msg, file string, err error)) *Store {
	if warn == nil {
		warn = func(string, string, error) {}
	}
	return &Store{dir: dir, warn: warn, wallNow: time.Now}
}

// Put writes r (its Version and Recorded set here) as dir/ID.json,
// replacing an earlier record of the same incident, then removes the
// records beyond l. With l.Max 0 it writes nothing and removes nothing.
// It fails when r's ID is not one medic makes (CheckID) or the file
// cannot be written; a failed removal is only reported to warn.
func (s *Store) Put(r Record, l Limits, now time.Time) error {
	if l.Max <= 0 {
		return nil
	}
	if err := CheckID(r.ID); err != nil {
		return fmt.Errorf("record incident: %w", err)
	}
	r.Version, r.Recorded = Version, now.Round(0)
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("record incident %s: %w", r.ID, err)
	}
	if err := safefile.WriteFile(filepath.Join(s.dir, r.ID+".json"), b, FileMode); err != nil {
		return fmt.Errorf("record incident: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.loaded {
		s.load()
	}
	s.ended[r.ID] = r.Ended()
	s.prune(l, now)
	if !s.nextSweep.IsZero() && !s.wallNow().Before(s.nextSweep) {
		s.sweepTemps()
	}
	return nil
}

// load reads the records on disk once, moving aside those it cannot
// parse.
func (s *Store) load() {
	s.loaded = true
	s.ended = map[string]time.Time{}
	recs, bad, err := read(s.dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		s.warn("cannot list the incident history; only new records are bounded", s.dir, err)
	}
	for _, r := range recs {
		s.ended[r.ID] = r.Ended()
	}
	for _, c := range bad {
		to := MoveAside(c.Path)
		s.warn("incident record unreadable; moved aside to "+to, c.Path, c.Err)
	}
	s.sweepTemps()
}

// sweepTemps removes the temporary files in the history that are
// TempMaxAge old or older, and sets s.nextSweep to when the oldest of
// those left (younger: perhaps a write in progress) will be, or to zero
// when none is left; s.mu is held.
func (s *Store) sweepTemps() {
	s.nextSweep = time.Time{}
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return // the history cannot be listed (load warned): nothing to sweep
	}
	now := s.wallNow()
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), safefile.TempPrefix) || !e.Type().IsRegular() {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // renamed or removed since ReadDir
		}
		if due := fi.ModTime().Add(TempMaxAge); now.Before(due) {
			if s.nextSweep.IsZero() || due.Before(s.nextSweep) {
				s.nextSweep = due
			}
			continue
		}
		path := filepath.Join(s.dir, e.Name())
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.warn("cannot remove the temporary file of an unfinished incident record", path, err)
		}
	}
}

// MoveAside renames path to path.corrupt-UNIXNANO and returns the new
// name, or says why it could not.
func MoveAside(path string) string {
	bad := fmt.Sprintf("%s.corrupt-%d", path, time.Now().UnixNano())
	if err := os.Rename(path, bad); err != nil {
		return "(could not move it: " + err.Error() + ")"
	}
	return bad
}

// prune removes the records that ended before now − l.MaxAge, then the
// oldest beyond l.Max.
func (s *Store) prune(l Limits, now time.Time) {
	type rec struct {
		id    string
		ended time.Time
	}
	all := make([]rec, 0, len(s.ended))
	for id, e := range s.ended {
		all = append(all, rec{id, e})
	}
	slices.SortFunc(all, func(a, b rec) int {
		return cmp.Or(a.ended.Compare(b.ended), cmp.Compare(a.id, b.id))
	})
	cut := max(0, len(all)-l.Max)
	if l.MaxAge > 0 {
		limit := now.Add(-l.MaxAge)
		for cut < len(all) && all[cut].ended.Before(limit) {
			cut++
		}
	}
	for _, r := range all[:cut] {
		path := filepath.Join(s.dir, r.id+".json")
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.warn("cannot remove an old incident record", path, err)
			continue
		}
		delete(s.ended, r.id)
	}
}

// Corrupt is a record file that could not be read.
type Corrupt struct {
	Path string
	Err  error
}

// List reads the history in dir (see Dir) without changing it and returns
// its records newest first (by Since), and the files it skipped because
// they could not be read or parsed. A missing directory is an empty
// history; err is set only when dir cannot be listed.
func List(dir string) (recs []Record, bad []Corrupt, err error) {
	recs, bad, err = read(dir)
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	slices.SortFunc(recs, func(a, b Record) int {
		return cmp.Or(b.Since.Compare(a.Since), cmp.Compare(a.ID, b.ID))
	})
	return recs, bad, err
}

// Get reads the record of incident id in dir. Its error matches
// fs.ErrNotExist when there is none.
func Get(dir, id string) (Record, error) {
	if err := CheckID(id); err != nil {
		return Record{}, err
	}
	return readFile(filepath.Join(dir, id+".json"), id)
}

// read reads every ID.json in dir.
func read(dir string) (recs []Record, bad []Corrupt, err error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("read incident history: %w", err)
	}
	for _, e := range entries {
		name := e.Name()
		id, ok := strings.CutSuffix(name, ".json")
		if !ok || strings.HasPrefix(name, safefile.TempPrefix) {
			continue // a moved-aside or temporary file
		}
		path := filepath.Join(dir, name)
		r, err := readFile(path, id)
		if err != nil {
			bad = append(bad, Corrupt{Path: path, Err: err})
			continue
		}
		recs = append(recs, r)
	}
	return recs, bad, nil
}

// readFile reads and checks the record of incident id at path.
func readFile(path, id string) (Record, error) {
	b, err := safefile.ReadFile(path, MaxFile)
	if err != nil {
		return Record{}, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return Record{}, fmt.Errorf("parse %s: %w", path, err)
	}
	if r.Version != Version || r.ID != id {
		return Record{}, fmt.Errorf("parse %s: version %d of incident %q, want version %d of %q", path, r.Version, r.ID, Version, id)
	}
	return r, nil
}
