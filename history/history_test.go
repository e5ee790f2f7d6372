package history

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/notify"
)

var t0 = time.Date(2026, 11, 21, 8, 0, 0, 123e6, time.UTC)

// rec is a resolved incident of check that began at since and took ttr.
func rec(check string, since time.Time, ttr time.Duration) Record {
	return Record{
		ID: check + "-" + since.UTC().Format(idTime), Check: check, Unit: check + ".service", Host: "h",
		Target: "127.0.0.1:8080", Problem: "127.0.0.1:8080 connection refused", Cause: "backend crashed",
		Diagnosis: &diagnose.Diagnosis{Primary: diagnose.Finding{Cause: "backend crashed", Summary: "killed by SIGKILL"}},
		Since:     since, ResolvedAt: since.Add(ttr), Outcome: Resolved, Restarts: 1,
		Timeline: []notify.Entry{{At: since, What: "first failed probe"}, {At: since.Add(ttr), What: "recovered"}},
	}
}

var unbounded = Limits{Max: 1000}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

func TestPutListGet(t *testing.T) {
	dir := filepath.Join(t.TempDir(), Subdir)
	s := Open(dir, nil)
	a, b := rec("app", t0, 1500*time.Millisecond), rec("db", t0.Add(time.Hour), 3*time.Minute)
	for _, r := range []Record{a, b} {
		if err := s.Put(r, unbounded, t0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	got, bad, err := List(dir)
	if err != nil || len(bad) != 0 || len(got) != 2 {
		t.Fatalf("List = %d records, bad %v, err %v", len(got), bad, err)
	}
	if got[0].ID != b.ID || got[1].ID != a.ID {
		t.Errorf("List order %s, %s: want newest first", got[0].ID, got[1].ID)
	}
	if ttr := got[1].TimeToRecovery(); ttr != 1500*time.Millisecond {
		t.Errorf("time to recovery %s, want 1.5s", ttr)
	}
	r, err := Get(dir, a.ID)
	if err != nil || r.Cause != "backend crashed" || r.Diagnosis == nil || len(r.Timeline) != 2 || r.Version != Version || r.Recorded.IsZero() {
		t.Errorf("Get = %+v, %v", r, err)
	}
	fi, err := os.Stat(filepath.Join(dir, a.ID+".json"))
	if err != nil || fi.Mode().Perm() != FileMode {
		t.Errorf("record file: %v, mode %v, want %v", err, fi.Mode(), fs.FileMode(FileMode))
	}
	if _, err := Get(dir, "app-20261121T090000.000Z"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(missing) = %v, want ErrNotExist", err)
	}
	if _, err := Get(dir, "../../etc/passwd"); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Get(../../etc/passwd) = %v, want an invalid id", err)
	}
	if recs, bad, err := List(filepath.Join(t.TempDir(), "none")); len(recs)+len(bad) != 0 || err != nil {
		t.Errorf("List(missing dir) = %v, %v, %v; want empty", recs, bad, err)
	}
}

func TestCheckID(t *testing.T) {
	for _, tt := range []struct {
		id      string
		wantErr string
	}{
		{"app-20261121T080000.123Z", ""},
		{"my_app.v2-x-20261121T080000.123Z", ""},
		{strings.Repeat("a", 64) + "-20261121T080000.123Z", ""},
		{strings.Repeat("a", 65) + "-20261121T080000.123Z", "at most 64"},
		{"-20261121T080000.123Z", "want CHECK-"},
		{".hidden-20261121T080000.123Z", "starts with a dot"},
		{"a/b-20261121T080000.123Z", "path separator"},
		{"app-20261121T080000Z", "want CHECK-"},
		{"app-2026112xT080000.123Z", "want CHECK-"},
		{"../../x", "want CHECK-"},
	} {
		err := CheckID(tt.id)
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("CheckID(%q) = %v, want %q", tt.id, err, tt.wantErr)
		}
	}
	// The longest ID with its temporary file's name stays far below
	// NAME_MAX.
	if n := len(".tmp-1234567890") + len(strings.Repeat("a", 64)+"-20261121T080000.123Z.json"); n > 255 {
		t.Errorf("longest file name %d bytes", n)
	}
}

// TestGaveUpThenResolved: the record medic writes when it gives up is
// replaced, under the same ID, when the incident resolves later.
func TestGaveUpThenResolved(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, nil)
	r := rec("app", t0, 0)
	r.ResolvedAt, r.Outcome, r.GaveUpAt, r.Restarts, r.Escalated = time.Time{}, GaveUp, t0.Add(time.Minute), 3, true
	if err := s.Put(r, unbounded, t0.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ := Get(dir, r.ID)
	if got.Outcome != GaveUp || got.TimeToRecovery() != 0 || !got.Ended().Equal(r.GaveUpAt) {
		t.Errorf("after giving up: %+v", got)
	}
	r.Outcome, r.ResolvedAt = Resolved, t0.Add(time.Hour)
	if err := s.Put(r, unbounded, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	recs, _, _ := List(dir)
	if len(recs) != 1 || recs[0].Outcome != Resolved || recs[0].TimeToRecovery() != time.Hour || !recs[0].GaveUpAt.Equal(r.GaveUpAt) {
		t.Errorf("after resolving: %+v", recs)
	}
}

func TestPruneByCountAndAge(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, nil)
	now := t0.Add(100 * 24 * time.Hour)
	// Ten incidents, one a day, days 0..9; the last put is the oldest, so
	// that order of writing is not what decides.
	for i := 9; i >= 0; i-- {
		if err := s.Put(rec("app", t0.Add(time.Duration(i)*24*time.Hour), time.Second), unbounded, now); err != nil {
			t.Fatal(err)
		}
	}
	// A record of another check that ended long ago, written by an
	// earlier medic: found when the store loads.
	old := rec("db", t0.Add(-30*24*time.Hour), time.Second)
	writeRaw(t, dir, old)
	s = Open(dir, nil)
	if err := s.Put(rec("app", t0.Add(10*24*time.Hour), time.Second), Limits{Max: 5}, now); err != nil {
		t.Fatal(err)
	}
	recs, _, _ := List(dir)
	if len(recs) != 5 || recs[0].Since != t0.Add(10*24*time.Hour) || recs[4].Since != t0.Add(6*24*time.Hour) {
		t.Fatalf("by count: %d records, want the 5 newest (days 6..10): %v", len(recs), ids(recs))
	}
	// Retention of 92 days at day 100: what ended before day 8 goes.
	if err := s.Put(rec("app", t0.Add(11*24*time.Hour), time.Second), Limits{Max: 1000, MaxAge: 92 * 24 * time.Hour}, now); err != nil {
		t.Fatal(err)
	}
	recs, _, _ = List(dir)
	if len(recs) != 4 || recs[3].Since != t0.Add(8*24*time.Hour) {
		t.Errorf("by age: %v, want days 8..11", ids(recs))
	}
	// incident_history = 0: nothing written, nothing removed.
	if err := s.Put(rec("app", t0.Add(12*24*time.Hour), time.Second), Limits{}, now); err != nil {
		t.Fatal(err)
	}
	if recs, _, _ = List(dir); len(recs) != 4 {
		t.Errorf("with Max 0: %v", ids(recs))
	}
}

func ids(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func writeRaw(t *testing.T, dir string, r Record) {
	t.Helper()
	r.Version = Version
	b, _ := json.Marshal(r)
	if err := os.WriteFile(filepath.Join(dir, r.ID+".json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptFile: a record that does not parse, a record under another
// file's name and a symbolic link are skipped by List (with the reason)
// and moved aside by the store; the other records stay.
func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	good := rec("app", t0, time.Second)
	writeRaw(t, dir, good)
	torn := filepath.Join(dir, "app-20261121T090000.000Z.json")
	if err := os.WriteFile(torn, []byte(`{"version":1,"id":"app-2026`), 0o600); err != nil {
		t.Fatal(err)
	}
	renamed := filepath.Join(dir, "db-20261121T090000.000Z.json")
	b, _ := os.ReadFile(filepath.Join(dir, good.ID+".json"))
	os.WriteFile(renamed, b, 0o600)
	link := filepath.Join(dir, "x-20261121T090000.000Z.json")
	os.Symlink("/etc/passwd", link)
	os.WriteFile(filepath.Join(dir, ".tmp-123"), []byte("{"), 0o600) // a crash's leftover

	recs, bad, err := List(dir)
	if err != nil || len(recs) != 1 || recs[0].ID != good.ID || len(bad) != 3 {
		t.Fatalf("List = %v, bad %v, err %v", ids(recs), bad, err)
	}
	for _, c := range bad {
		t.Logf("skipped %s: %v", filepath.Base(c.Path), c.Err)
	}

	var warned []string
	s := Open(dir, func(msg, file string, err error) { warned = append(warned, filepath.Base(file)+": "+msg) })
	if err := s.Put(rec("app", t0.Add(time.Hour), time.Second), Limits{Max: 2}, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 3 {
		t.Errorf("warnings %v, want one per bad file", warned)
	}
	recs, bad, _ = List(dir)
	if len(recs) != 2 || len(bad) != 0 {
		t.Errorf("after the store loaded: %v, bad %v", ids(recs), bad)
	}
	aside := 0
	for _, n := range names(t, dir) {
		if strings.Contains(n, ".json.corrupt-") {
			aside++
		}
	}
	if aside != 3 {
		t.Errorf("files moved aside: %d in %v, want 3", aside, names(t, dir))
	}
	if b, err := os.ReadFile("/etc/passwd"); err != nil || len(b) == 0 {
		t.Errorf("the link's target changed: %v", err)
	}
}

// TestStaleTempFiles: the temporary files of writes that never finished
// are removed once they are TempMaxAge old, when the store loads and by a
// later Put; a younger one (perhaps a write in progress) and the records
// stay until then.
func TestStaleTempFiles(t *testing.T) {
	dir := t.TempDir()
	good := rec("app", t0, time.Second)
	writeRaw(t, dir, good)
	old, fresh := filepath.Join(dir, ".tmp-111"), filepath.Join(dir, ".tmp-222")
	for _, p := range []string{old, fresh} {
		if err := os.WriteFile(p, []byte(`{"version":1,"id":"app-2026`), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	wall := time.Now() // not before the files' mtimes
	if err := os.Chtimes(old, wall.Add(-TempMaxAge-time.Second), wall.Add(-TempMaxAge-time.Second)); err != nil {
		t.Fatal(err)
	}

	var warned []string
	s := Open(dir, func(msg, file string, err error) { warned = append(warned, filepath.Base(file)+": "+msg) })
	s.wallNow = func() time.Time { return wall }
	if err := s.Put(rec("db", t0, time.Second), unbounded, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file %s old is left: %v", TempMaxAge+time.Second, err)
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("the fresh temporary file was removed: %v", err)
	}
	if recs, bad, err := List(dir); err != nil || len(bad) != 0 || len(recs) != 2 {
		t.Errorf("List = %v, bad %v, err %v; want both records", ids(recs), bad, err)
	}
	if len(warned) != 0 {
		t.Errorf("warnings %v", warned)
	}

	// Still young at the next Put; a TempMaxAge later it goes.
	if err := s.Put(rec("db", t0.Add(time.Minute), time.Second), unbounded, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fresh); err != nil {
		t.Errorf("the fresh temporary file was removed at the next Put: %v", err)
	}
	s.wallNow = func() time.Time { return wall.Add(TempMaxAge + time.Second) }
	if err := s.Put(rec("db", t0.Add(2*time.Minute), time.Second), unbounded, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(fresh); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the temporary file is left after it turned %s old: %v", TempMaxAge, err)
	}
	if n := names(t, dir); len(n) != 4 {
		t.Errorf("files %v, want the 4 records", n)
	}
}

// TestConcurrentWriters: goroutines writing (and rewriting) records of
// their own checks at once, under a count bound, leave exactly the bound's
// newest records, each whole.
func TestConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	s := Open(dir, nil)
	const writers, each, bound = 8, 40, 50
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				r := rec(fmt.Sprintf("c%d", w), t0.Add(time.Duration(i)*time.Minute), time.Second)
				r.Outcome, r.ResolvedAt, r.GaveUpAt = GaveUp, time.Time{}, r.Since.Add(time.Second)
				if err := s.Put(r, Limits{Max: bound}, t0); err != nil {
					errs <- err
				}
				r.Outcome, r.ResolvedAt = Resolved, r.Since.Add(2*time.Second)
				if err := s.Put(r, Limits{Max: bound}, t0); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	recs, bad, err := List(dir)
	if err != nil || len(bad) != 0 || len(recs) != bound {
		t.Fatalf("%d records, bad %v, err %v; want %d", len(recs), bad, err, bound)
	}
	for _, r := range recs {
		if r.Outcome != Resolved || r.Since.Before(t0.Add((each-7)*time.Minute)) {
			t.Errorf("kept %s (%s): want the newest, resolved", r.ID, r.Outcome)
		}
	}
	if n := len(names(t, dir)); n != bound {
		t.Errorf("%d files in the directory, want %d", n, bound)
	}
}

// TestSIGKILL kills a process writing records as fast as it can, several
// times: every record file left is whole JSON, and the store opened after
// lists them all.
func TestSIGKILL(t *testing.T) {
	if dir := os.Getenv("MEDIC_HISTORY_WRITER"); dir != "" {
		s := Open(dir, nil)
		for i := 0; ; i++ {
			r := rec("app", t0.Add(time.Duration(i)*time.Millisecond), time.Second)
			r.Timeline = make([]notify.Entry, 60) // a full timeline: larger writes
			if err := s.Put(r, Limits{Max: 20}, t0); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(2)
			}
		}
	}
	dir := t.TempDir()
	for round := range 5 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSIGKILL$")
		cmd.Env = append(os.Environ(), "MEDIC_HISTORY_WRITER="+dir)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it once it wrote, at a time that varies from round to round.
		deadline := time.Now().Add(30 * time.Second)
		for len(names(t, dir)) <= round && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(time.Duration(20+37*round) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		if st := cmd.ProcessState; st == nil || st.ExitCode() == 2 {
			t.Fatalf("writer failed: %v", st)
		}
		recs, bad, err := List(dir)
		if err != nil || len(bad) != 0 || len(recs) == 0 {
			t.Fatalf("round %d: %d records, bad %v, err %v", round, len(recs), bad, err)
		}
		json := 0
		for _, n := range names(t, dir) {
			if strings.HasSuffix(n, ".json") {
				json++
			}
		}
		t.Logf("round %d: %d whole records (%d .json files, %d files)", round, len(recs), json, len(names(t, dir)))
	}
}

// BenchmarkPut measures one record write (fsync included) with a full
// history of 1000 records to bound.
func BenchmarkPut(b *testing.B) {
	dir := b.TempDir()
	s := Open(dir, nil)
	for i := range 1000 {
		s.Put(rec("app", t0.Add(time.Duration(i)*time.Second), time.Second), Limits{Max: 1000}, t0)
	}
	b.ResetTimer()
	for i := range b.N {
		if err := s.Put(rec("app", t0.Add(time.Duration(1000+i)*time.Second), time.Second), Limits{Max: 1000}, t0); err != nil {
			b.Fatal(err)
		}
	}
}
