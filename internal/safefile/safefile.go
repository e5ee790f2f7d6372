// Package safefile opens and writes the files medic keeps or reads by path
// (state files, the pauses, outbox messages, nginx's error log) without
// trusting what is found there: a path is read only when it names a
// regular file itself, never through a symbolic link, and never a FIFO, a
// device or a directory, which could block or spin a reader forever.
// Writes are atomic and durable, in one helper.
package safefile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// ErrNotRegular is matched (errors.Is) by the errors of Open and ReadFile
// for a path that is not a regular file: a symbolic link, a FIFO, a
// device, a socket or a directory.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is matched (errors.Is) by the error of ReadFile for a file
// over its limit.
var ErrTooLarge = errors.New("file too large")

// TempPrefix starts the name of the temporary file WriteFile creates next
// to its target; a file of this name left by a crash is garbage.
const TempPrefix = ".tmp-"

// NotRegularError reports a path that is not a regular file.
type NotRegularError struct {
	// Path is the path opened.
	Path string
	// Kind says what it is instead: "symbolic link", "FIFO", "device",
	// "directory", "socket".
	Kind string
}

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("open %s: %s, not a regular file: skipped", e.Path, e.Kind)
}

// Is makes errors.Is(err, ErrNotRegular) true.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// kind names the type of a non-regular mode.
func kind(m fs.FileMode) string {
	switch {
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m&fs.ModeNamedPipe != 0:
		return "FIFO"
	case m&fs.ModeDevice != 0 || m&fs.ModeCharDevice != 0:
		return "device"
	case m.IsDir():
		return "directory"
	case m&fs.ModeSocket != 0:
		return "socket"
	}
	return "special file"
}

// Open opens path for reading when it is a regular file. It looks first
// without opening (lstat), so that a device is never opened, then opens
// with O_NOFOLLOW and O_NONBLOCK (opening a FIFO never waits for a writer)
// and checks the open file again (fstat), so that a file swapped in
// between is caught too.
//
// Outcomes: the open file; an error matching fs.ErrNotExist when nothing
// is there; a *NotRegularError (errors.Is ErrNotRegular) for a symbolic
// link, FIFO, device, socket or directory; another error when it cannot
// be opened.
func Open(path string) (*os.File, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &NotRegularError{Path: path, Kind: kind(fi.Mode())}
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, &NotRegularError{Path: path, Kind: "symbolic link"}
		}
		return nil, err
	}
	fi, err = f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, &NotRegularError{Path: path, Kind: kind(fi.Mode())}
	}
	return f, nil
}

// ReadFile reads the regular file at path (see Open) whole, at most limit
// bytes of it. Outcomes are those of Open, and an error matching
// ErrTooLarge for a file over limit.
func ReadFile(path string, limit int64) ([]byte, error) {
	f, err := Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("read %s: %w (over %d bytes)", path, ErrTooLarge, limit)
	}
	return data, nil
}

// WriteFile replaces path with data atomically and durably: a temporary
// file (TempPrefix) in path's directory, created if missing with mode
// 0700, is written, synced and given perm, then renamed over path, and the
// directory is synced. Whatever path was (a symbolic link, a FIFO), the
// rename replaces the name itself, never what it points to. On any error,
// including the sync of the directory, path is either what it was or the
// new content, and the error says which step failed; the temporary file
// is removed.
func WriteFile(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	f, err := os.CreateTemp(dir, TempPrefix+"*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	renamed := false
	defer func() {
		if !renamed {
			os.Remove(tmp)
		}
	}()
	_, err = f.Write(data)
	if err == nil {
		err = f.Chmod(perm)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
		renamed = err == nil
	}
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return SyncDir(dir)
}

// SyncDir fsyncs a directory, making renames and removals in it durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
