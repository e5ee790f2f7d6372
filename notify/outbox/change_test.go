package outbox

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

// TestChangeNotifiers renames a notifier while Run runs: the new name gets
// the messages enqueued after the change; the messages still pending for
// the old name stay (on disk and in Stats), are not delivered and not
// lost, and go out once the old name is configured again.
func TestChangeNotifiers(t *testing.T) {
	dir := t.TempDir()
	down := errors.New("connection refused")
	old := newRecorder("ops")
	old.fail = func(*notify.Message, int) (bool, error) { return true, down }
	o := open(t, testOptions(t, dir), old)
	stop := run(t, o)
	defer func() { stop() }()
	enqueue(t, o, "ops", msg("inc.1", notify.Firing))
	waitStat(t, o, "ops", func(s Stat) bool { return s.LastError != "" }, "a failed attempt")

	renamed := newRecorder("ops-mail")
	c, err := o.Prepare([]notify.Notifier{renamed})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply()
	enqueue(t, o, "ops-mail", msg("inc.2", notify.Firing))
	renamed.wait(t, 1)
	if got := renamed.delivered(); !slices.Equal(got, []string{"inc.2"}) {
		t.Errorf("the new notifier got %v, want inc.2", got)
	}
	st := o.Stats()
	if len(st) != 2 || st[0].Notifier != "ops-mail" || st[1].Notifier != "ops" || !st[1].Unconfigured || st[1].Pending != 1 || st[0].Unconfigured {
		t.Errorf("stats after the rename: %+v", st)
	}
	if files := pendingFiles(t, filepath.Join(dir, "ops")); len(files) != 1 {
		t.Errorf("files of the removed notifier = %v, want its one pending message", files)
	}
	attempts := func() int { old.mu.Lock(); defer old.mu.Unlock(); return old.attempts["inc.1"] }
	before := attempts()
	time.Sleep(50 * time.Millisecond)
	if after := attempts(); after != before {
		t.Errorf("the removed notifier was still attempted: %d attempts, then %d", before, after)
	}
	// Enqueue for the removed name (a message raced with the reload)
	// keeps it too.
	enqueue(t, o, "ops", msg("inc.3", notify.Firing))

	// The old name comes back, working: what waited goes out, in order.
	back := newRecorder("ops")
	c, err = o.Prepare([]notify.Notifier{renamed, back})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply()
	back.wait(t, 2)
	if got := back.delivered(); !slices.Equal(got, []string{"inc.1", "inc.3"}) {
		t.Errorf("the notifier back got %v, want inc.1, inc.3", got)
	}
	stop()
	stop = func() {}

	// Across a restart too: a removed notifier's messages wait on disk and
	// go out when it is configured again.
	o = open(t, testOptions(t, dir), renamed)
	enqueue(t, o, "gone", msg("inc.4", notify.Firing))
	o = open(t, testOptions(t, dir), renamed)
	if st := o.Stats(); len(st) != 1 {
		t.Errorf("stats list %+v, want only the configured notifier", st)
	}
	out, err := Inspect(dir)
	if err != nil || !slices.ContainsFunc(out, func(s Stat) bool { return s.Notifier == "gone" && s.Pending == 1 }) {
		t.Errorf("Inspect = %+v, %v: want gone with 1 pending", out, err)
	}
	gone := newRecorder("gone")
	c, err = o.Prepare([]notify.Notifier{renamed, gone})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply()
	stop = run(t, o)
	gone.wait(t, 1)
}

// TestPrepareRefusesAsAWhole: a bad set changes nothing.
func TestPrepareRefusesAsAWhole(t *testing.T) {
	dir := t.TempDir()
	a := newRecorder("a")
	o := open(t, testOptions(t, dir), a)
	for _, ns := range [][]notify.Notifier{
		{newRecorder("b"), newRecorder("b")},
		{newRecorder("b"), newRecorder("..")},
		{newRecorder("c"), nil},
		{newRecorder(CorruptDir)},
	} {
		if _, err := o.Prepare(ns); err == nil || !strings.HasPrefix(err.Error(), "change outbox notifiers: ") {
			t.Errorf("Prepare(%v) = %v", ns, err)
		}
	}
	if st := o.Stats(); len(st) != 1 || st[0].Notifier != "a" {
		t.Errorf("stats after refused changes: %+v", st)
	}
	// A Change never applied changes nothing either.
	if _, err := o.Prepare([]notify.Notifier{newRecorder("b")}); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); len(st) != 1 || st[0].Notifier != "a" {
		t.Errorf("stats after an unapplied change: %+v", st)
	}
}

// TestPlantedFilesAreQuarantined: a FIFO, a symbolic link to /dev/zero and
// a directory planted as message files are never read: Open returns at
// once, moves them to corrupt/ and loads the real messages.
func TestPlantedFilesAreQuarantined(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	o := open(t, testOptions(t, dir), r)
	enqueue(t, o, "hook", msg("inc.1", notify.Firing))
	qdir := filepath.Join(dir, "hook")
	if err := syscall.Mkfifo(filepath.Join(qdir, seqName(7)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/dev/zero", filepath.Join(qdir, seqName(8))); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(qdir, seqName(9)), 0o700); err != nil {
		t.Fatal(err)
	}
	done := make(chan *Outbox, 1)
	go func() { o, _ := Open(testOptions(t, dir), []notify.Notifier{r}); done <- o }()
	select {
	case o = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Open blocked on a planted file")
	}
	if o == nil {
		t.Fatal("Open failed")
	}
	if st := o.Stats()[0]; st.Pending != 1 {
		t.Errorf("pending = %d, want the one real message", st.Pending)
	}
	moved, _ := filepath.Glob(filepath.Join(dir, CorruptDir, "hook-*"))
	if len(moved) != 3 {
		t.Errorf("quarantined %v, want the 3 planted files", moved)
	}
	if _, err := Inspect(dir); err != nil {
		t.Errorf("Inspect: %v", err)
	}
}

// waitStat waits until cond holds for the named notifier's Stat.
func waitStat(t *testing.T, o *Outbox, name string, cond func(Stat) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, s := range o.Stats() {
			if s.Notifier == name && cond(s) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %+v", what, o.Stats())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
