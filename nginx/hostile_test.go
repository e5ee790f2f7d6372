package nginx

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestFollowSkipsWhatIsNotARegularFile plants a FIFO, a symbolic link to
// /dev/zero, a symbolic link to a real log and a directory as the error
// log: the Follower starts at once, reports the file as skipped, reads
// nothing from it, and ends promptly when its context ends. Once a
// regular file takes the name, its lines are followed.
func TestFollowSkipsWhatIsNotARegularFile(t *testing.T) {
	real := filepath.Join(t.TempDir(), "real.log")
	if err := os.WriteFile(real, []byte("old line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		plant func(path string) error
		kind  string
	}{
		{"fifo", func(p string) error { return syscall.Mkfifo(p, 0o600) }, "FIFO"},
		{"dev-zero", func(p string) error { return os.Symlink("/dev/zero", p) }, "symbolic link"},
		{"symlink", func(p string) error { return os.Symlink(real, p) }, "symbolic link"},
		{"directory", func(p string) error { return os.Mkdir(p, 0o700) }, "directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "error.log")
			if err := tc.plant(path); err != nil {
				t.Fatal(err)
			}
			var (
				mu    sync.Mutex
				errs  []string
				lines = make(chan string, 10)
			)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			fl := &Follower{
				Path:   path,
				OnLine: func(l string) { lines <- l },
				OnError: func(err error) {
					mu.Lock()
					errs = append(errs, err.Error())
					mu.Unlock()
				},
				Poll: 20 * time.Millisecond,
			}
			done := make(chan error, 1)
			go func() { done <- fl.Run(ctx) }()
			deadline := time.Now().Add(5 * time.Second)
			for {
				mu.Lock()
				got := strings.Join(errs, "\n")
				mu.Unlock()
				if strings.Contains(got, tc.kind+", not a regular file: skipped") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no report of the %s within 5s; reports: %q", tc.kind, got)
				}
				time.Sleep(10 * time.Millisecond)
			}
			time.Sleep(100 * time.Millisecond) // a few polls
			select {
			case l := <-lines:
				t.Fatalf("read a line from the planted %s: %q", tc.kind, l)
			default:
			}
			// A regular file takes the name: it is followed.
			fresh := mustWrite(t, dir, "new.log", "")
			if err := os.RemoveAll(path); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(fresh, path); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			appendFile(t, f, "fresh line\n")
			select {
			case l := <-lines:
				if l != "fresh line" {
					t.Errorf("line %q, want the fresh line", l)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("the regular file that replaced the planted one is not followed")
			}
			start := time.Now()
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(2 * time.Second):
				t.Fatal("Run did not end within 2s of its context")
			}
			t.Logf("Run ended %v after its context", time.Since(start))
		})
	}
}

// TestFollowBoundsAStep: a log that keeps growing faster than it is read
// never holds Run past the end of its context.
func TestFollowBoundsAStep(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan struct{})
	var once sync.Once
	fl := &Follower{Path: path, OnLine: func(string) {
		once.Do(func() { close(started) })
		time.Sleep(time.Microsecond)
	}}
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	chunk := []byte(strings.Repeat("2026/11/21 08:00:00 [error] 1#1: *1 connect() failed\n", 2000))
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stopWriting:
				return
			default:
			}
			if _, err := f.Write(chunk); err != nil {
				return
			}
		}
	})
	defer func() { close(stopWriting); wg.Wait() }()
	select {
	case <-started:
	case <-time.After(5 * time.Second):
		t.Fatal("no line read")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not end within 2s of its context while the log grows")
	}
}

func mustWrite(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
