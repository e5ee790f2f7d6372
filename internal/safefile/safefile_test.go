package safefile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestOpenRefusesWhatIsNotARegularFile plants each kind of file a reader
// could hang or spin on, or be redirected by, and expects a prompt
// ErrNotRegular naming it.
func TestOpenRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	regular := filepath.Join(dir, "regular")
	if err := os.WriteFile(regular, []byte("ok"), 0o600); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(regular, link); err != nil {
		t.Fatal(err)
	}
	zeroLink := filepath.Join(dir, "zero-link")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	sub := filepath.Join(dir, "dir")
	if err := os.Mkdir(sub, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path     string
		wantKind string
	}{
		{fifo, "FIFO"},
		{link, "symbolic link"},
		{zeroLink, "symbolic link"},
		{"/dev/zero", "device"},
		{sub, "directory"},
	} {
		done := make(chan error, 1)
		go func() {
			_, err := ReadFile(tc.path, 1<<20)
			done <- err
		}()
		select {
		case err := <-done:
			var nr *NotRegularError
			if !errors.Is(err, ErrNotRegular) || !errors.As(err, &nr) || nr.Kind != tc.wantKind {
				t.Errorf("ReadFile(%s) = %v, want a %s refused", tc.path, err, tc.wantKind)
			}
			if err != nil && !strings.Contains(err.Error(), tc.path) {
				t.Errorf("error %q does not name the path", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("ReadFile(%s) still blocked after 5s", tc.path)
		}
	}
	if b, err := ReadFile(regular, 1<<20); err != nil || string(b) != "ok" {
		t.Errorf("ReadFile(regular) = %q, %v", b, err)
	}
	if _, err := ReadFile(filepath.Join(dir, "missing"), 10); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) = %v, want ErrNotExist", err)
	}
	if _, err := ReadFile(regular, 1); !errors.Is(err, ErrTooLarge) {
		t.Errorf("ReadFile over its limit = %v, want ErrTooLarge", err)
	}
}

// TestWriteFileReplacesTheNameNotTheTarget: writing over a planted
// symbolic link or FIFO replaces the name; the link's target is untouched
// and no temporary file is left.
func TestWriteFileReplacesTheNameNotTheTarget(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "target")
	if err := os.WriteFile(target, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "sub", "state.json")
	if err := os.MkdirAll(filepath.Dir(link), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(link, []byte("new"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(target); string(b) != "precious" {
		t.Errorf("the link's target was written: %q", b)
	}
	if b, err := ReadFile(link, 100); err != nil || string(b) != "new" {
		t.Errorf("read back %q, %v", b, err)
	}
	fi, _ := os.Stat(link)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", fi.Mode().Perm())
	}
	fifo := filepath.Join(dir, "sub", "fifo.json")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteFile(fifo, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if b, err := ReadFile(fifo, 100); err != nil || string(b) != "x" {
		t.Errorf("read back %q, %v", b, err)
	}
	left, _ := filepath.Glob(filepath.Join(dir, "sub", TempPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
	if err := WriteFile(filepath.Join(dir, "sub"), []byte("x"), 0o600); err == nil {
		t.Error("WriteFile over a directory succeeded")
	}
	left, _ = filepath.Glob(filepath.Join(dir, TempPrefix+"*"))
	if len(left) != 0 {
		t.Errorf("temporary files left after a failed write: %v", left)
	}
}
