package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/medic-watchdog/medic/internal/safefile"
)

// Defaults of a Follower.
const (
	// DefaultPoll is how often a Follower looks at the file when no event
	// came (events can be missed on some file systems, and a writer that
	// keeps writing to a renamed file sends none for the new name).
	DefaultPoll = time.Second
	// DefaultDrain is how long a Follower keeps reading the old file after
	// a rename-and-create rotation: nginx writes to it until it reopens its
	// logs (logrotate's postrotate sends USR1).
	DefaultDrain = 5 * time.Second
	// maxLine caps a line; longer ones are cut into pieces of this size.
	// nginx writes at most 2048 bytes per error log line.
	maxLine = 64 << 10
	// stepBytes bounds what one step reads before Run looks at its
	// context again: a file that grows faster than it is read never
	// holds Run.
	stepBytes = 1 << 20
)

// Follower follows a log file as `tail -F` does: from its end at start,
// across logrotate's rename-and-create and copytruncate, and waiting for a
// file that does not exist yet. Only a regular file is read: the path is
// opened without following a symbolic link and without blocking
// (safefile.Open), and a FIFO, device, directory or symbolic link in its
// place is reported (OnError) and skipped, looked at again at the next
// event or poll. A Follower is run once; its fields are not to be changed
// while it runs.
type Follower struct {
	// Path is the file to follow. Its directory must exist.
	Path string
	// OnLine is called with each complete line, without its newline, in
	// the order written; from the goroutine that runs Run.
	OnLine func(line string)
	// OnError, when set, is told of problems Run works around by trying
	// again at the next event or poll: a file it cannot open or read.
	OnError func(err error)
	// Poll is how often the file is looked at without an event; 0 means
	// DefaultPoll.
	Poll time.Duration
	// Drain is how long the old file is still read after a rotation by
	// rename; 0 means DefaultDrain.
	Drain time.Duration

	// The file being read, its offset and the start of a line not yet
	// ended by a newline.
	cur *tailFile
	// The file before a rename-and-create rotation, read until drainUntil.
	old        *tailFile
	drainUntil time.Time
	lastErr    string
	// ready, when set (by tests), is called once Run watches the directory
	// and has looked at the file.
	ready func()
}

// tailFile is one open file and its unfinished line.
type tailFile struct {
	f       *os.File
	off     int64
	partial []byte
	buf     []byte
	// skip drops bytes up to the next newline: the rest of a line whose
	// start was written before Run started.
	skip bool
}

// Follow follows path until ctx ends, calling fn with each line appended to
// it. See Follower.
func Follow(ctx context.Context, path string, fn func(line string)) error {
	f := &Follower{Path: path, OnLine: fn}
	return f.Run(ctx)
}

// Run follows the file until ctx ends, then closes everything it opened
// and returns nil. It returns an error only when it cannot watch the
// file's directory (it does not exist, or inotify fails).
//
// Lines already in the file when Run starts are skipped: it starts at the
// end (and after the end of a line being written then). A file that does not exist at start is read from its beginning once
// it appears. When the file is renamed and a new one created in its place
// (logrotate's default), Run reads what is left in the old file, then
// reads the new one from its beginning, and keeps reading the old file for
// Drain, since the writer may still append to it until it reopens its log.
// When the file shrinks below the offset read so far (logrotate's
// copytruncate), Run starts again from the beginning; lines written between
// the copy and the truncation are lost, as with every tail. A line without
// its newline yet is held until the newline arrives.
func (fl *Follower) Run(ctx context.Context) error {
	if fl.Poll <= 0 {
		fl.Poll = DefaultPoll
	}
	if fl.Drain <= 0 {
		fl.Drain = DefaultDrain
	}
	path := filepath.Clean(fl.Path)
	dir := filepath.Dir(path)
	if fi, err := os.Stat(dir); err != nil {
		return fmt.Errorf("follow %s: %w", path, err)
	} else if !fi.IsDir() {
		return fmt.Errorf("follow %s: %s is not a directory", path, dir)
	}
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return fmt.Errorf("follow %s: %w", path, err)
	}
	defer w.Close()
	// The directory, not the file: a rotation replaces the file.
	if err := w.Add(dir); err != nil {
		return fmt.Errorf("follow %s: watch %s: %w", path, dir, err)
	}
	defer fl.closeAll()

	fl.open(path, true)
	if fl.ready != nil {
		fl.ready()
	}
	tick := time.NewTicker(fl.Poll)
	defer tick.Stop()
	more := false
	for {
		if more {
			// The last step stopped at its bound: go on at once, once
			// ctx has been looked at.
			select {
			case <-ctx.Done():
				return nil
			default:
			}
			more = fl.step(ctx, path)
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			_ = ev // any change in the directory: look again
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			// An overflowed queue lost events: the poll below catches up.
			fl.report(fmt.Errorf("follow %s: %w", path, err))
		case <-tick.C:
		}
		more = fl.step(ctx, path)
	}
}

// step reads what is new, at most stepBytes and no longer than ctx lasts,
// and handles rotations. It reports whether it stopped with more to read.
func (fl *Follower) step(ctx context.Context, path string) (more bool) {
	budget := stepBytes
	if fl.old != nil {
		if fl.read(ctx, fl.old, &budget) {
			return true
		}
		if time.Now().After(fl.drainUntil) {
			fl.finish(fl.old)
			fl.old = nil
		}
	}
	if fl.cur == nil {
		fl.open(path, false)
		if fl.cur == nil {
			return false
		}
	}
	if fl.read(ctx, fl.cur, &budget) {
		return true
	}

	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return false // renamed away, the new file is not there yet: keep reading the old
	case err != nil:
		fl.report(fmt.Errorf("follow %s: %w", path, err))
		return false
	}
	ci, err := fl.cur.f.Stat()
	if err != nil {
		fl.report(fmt.Errorf("follow %s: %w", path, err))
		return false
	}
	if !os.SameFile(fi, ci) {
		// Rotated by rename: the old file is drained for a while, the new
		// one read from its start.
		if fl.old != nil {
			fl.finish(fl.old)
		}
		fl.old, fl.cur = fl.cur, nil
		fl.drainUntil = time.Now().Add(fl.Drain)
		fl.open(path, false)
		if fl.cur != nil {
			return fl.read(ctx, fl.cur, &budget)
		}
		return false
	}
	if ci.Size() < fl.cur.off {
		// Truncated (copytruncate): what is in it now was written after.
		if _, err := fl.cur.f.Seek(0, io.SeekStart); err != nil {
			fl.report(fmt.Errorf("follow %s: %w", path, err))
			return false
		}
		fl.cur.off = 0
		fl.cur.partial = fl.cur.partial[:0]
		fl.cur.skip = false
		return fl.read(ctx, fl.cur, &budget)
	}
	return false
}

// open opens path as the current file, at its end when atEnd. What is not
// a regular file is reported and not opened (safefile.Open).
func (fl *Follower) open(path string, atEnd bool) {
	f, err := safefile.Open(path)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			fl.report(fmt.Errorf("follow %s: %w", path, err))
		}
		return
	}
	t := &tailFile{f: f}
	if atEnd {
		off, err := f.Seek(0, io.SeekEnd)
		if err != nil {
			f.Close()
			fl.report(fmt.Errorf("follow %s: %w", path, err))
			return
		}
		t.off = off
		if off > 0 {
			last := make([]byte, 1)
			if _, err := f.ReadAt(last, off-1); err == nil && last[0] != '\n' {
				t.skip = true
			}
		}
	}
	fl.cur = t
	fl.lastErr = ""
}

// read reads t to its end, or until *budget bytes were read or ctx ended,
// and hands over every complete line. It reports whether it stopped with
// more to read.
func (fl *Follower) read(ctx context.Context, t *tailFile, budget *int) (more bool) {
	if t.buf == nil {
		t.buf = make([]byte, 32<<10)
	}
	for {
		if *budget <= 0 || ctx.Err() != nil {
			return true
		}
		n, err := t.f.Read(t.buf[:min(len(t.buf), *budget)])
		*budget -= n
		if n > 0 {
			t.off += int64(n)
			fl.lines(t, t.buf[:n])
		}
		if err != nil {
			if err != io.EOF {
				fl.report(fmt.Errorf("follow %s: %w", t.f.Name(), err))
			}
			return false
		}
		if n == 0 {
			return false
		}
	}
}

// lines splits b at newlines, joining its start to the held partial line.
func (fl *Follower) lines(t *tailFile, b []byte) {
	if t.skip {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			return
		}
		t.skip = false
		b = b[i+1:]
	}
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		if i < 0 {
			t.partial = append(t.partial, b...)
			for len(t.partial) >= maxLine {
				fl.emit(t.partial[:maxLine])
				t.partial = append(t.partial[:0], t.partial[maxLine:]...)
			}
			return
		}
		if len(t.partial) > 0 {
			t.partial = append(t.partial, b[:i]...)
			fl.emit(t.partial)
			t.partial = t.partial[:0]
		} else {
			fl.emit(b[:i])
		}
		b = b[i+1:]
	}
}

func (fl *Follower) emit(line []byte) {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if fl.OnLine != nil {
		fl.OnLine(string(line))
	}
}

// finish hands over the last, unfinished line of a file that will not
// grow any more and closes it.
func (fl *Follower) finish(t *tailFile) {
	if len(t.partial) > 0 {
		fl.emit(t.partial)
		t.partial = nil
	}
	t.f.Close()
}

func (fl *Follower) closeAll() {
	for _, t := range []*tailFile{fl.old, fl.cur} {
		if t != nil {
			t.f.Close()
		}
	}
	fl.old, fl.cur = nil, nil
}

// report passes err to OnError, once per distinct message in a row.
func (fl *Follower) report(err error) {
	if fl.OnError == nil || err.Error() == fl.lastErr {
		return
	}
	fl.lastErr = err.Error()
	fl.OnError(err)
}
