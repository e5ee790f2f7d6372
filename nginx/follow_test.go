package nginx

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// follow runs a Follower on path until the test ends and returns the
// channel of its lines, once it watches.
func follow(t *testing.T, path string) <-chan string {
	t.Helper()
	lines := make(chan string, 100)
	ready := make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	fl := &Follower{
		Path:    path,
		OnLine:  func(l string) { lines <- l },
		OnError: func(err error) { t.Logf("follower: %v", err) },
		Poll:    100 * time.Millisecond,
		Drain:   2 * time.Second,
		ready:   func() { close(ready) },
	}
	done := make(chan error, 1)
	go func() { done <- fl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Run returned at once: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("follower not ready after 5s")
	}
	return lines
}

// expect waits for want (in any order when unordered) and then for
// nothing else during a short while.
func expect(t *testing.T, lines <-chan string, unordered bool, want ...string) {
	t.Helper()
	var got []string
	timeout := time.After(5 * time.Second)
	for len(got) < len(want) {
		select {
		case l := <-lines:
			got = append(got, l)
		case <-timeout:
			t.Fatalf("got lines %q, want %q", got, want)
		}
	}
	select {
	case l := <-lines:
		got = append(got, l)
	case <-time.After(150 * time.Millisecond):
	}
	if unordered {
		got, want = slices.Sorted(slices.Values(got)), slices.Sorted(slices.Values(want))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("got lines %q, want %q", got, want)
	}
}

func appendFile(t *testing.T, f *os.File, s string) {
	t.Helper()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}

func openAppend(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

func TestFollowAppendedLines(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Registered first, so it runs after the follower's cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	path := filepath.Join(t.TempDir(), "error.log")
	w := openAppend(t, path)
	appendFile(t, w, "history 1\nhistory 2\n")
	lines := follow(t, path)
	appendFile(t, w, "one\ntwo\n")
	expect(t, lines, false, "one", "two")
	appendFile(t, w, "three\r\n")
	expect(t, lines, false, "three")
}

func TestFollowPartialLine(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	w := openAppend(t, path)
	appendFile(t, w, "history without newline")
	lines := follow(t, path)
	appendFile(t, w, " but its end\nbegin")
	expect(t, lines, false) // the rest of a line begun before is dropped
	appendFile(t, w, "ning, ")
	time.Sleep(250 * time.Millisecond) // a poll and events pass
	expect(t, lines, false)
	appendFile(t, w, "end\nnext\n")
	expect(t, lines, false, "beginning, end", "next")
}

// TestFollowRenameAndCreate rotates the way logrotate's create mode does,
// with a writer (nginx before USR1) that still appends to the old file.
func TestFollowRenameAndCreate(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "error.log")
	old := openAppend(t, path)
	lines := follow(t, path)
	appendFile(t, old, "before\n")
	expect(t, lines, false, "before")

	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendFile(t, old, "late 1\n")
	expect(t, lines, false, "late 1")
	cur := openAppend(t, path)
	appendFile(t, cur, "new 1\n")
	appendFile(t, old, "late 2\n")
	expect(t, lines, true, "new 1", "late 2")
	appendFile(t, cur, "new 2\n")
	expect(t, lines, false, "new 2")

	// Rotated again: the previous old file is let go.
	if err := os.Rename(path, path+".2"); err != nil {
		t.Fatal(err)
	}
	third := openAppend(t, path)
	appendFile(t, cur, "late 3\n")
	appendFile(t, third, "third\n")
	expect(t, lines, true, "late 3", "third")
}

func TestFollowCopytruncate(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	w := openAppend(t, path)
	lines := follow(t, path)
	appendFile(t, w, "a long line before the truncation\nand a second one\n")
	expect(t, lines, false, "a long line before the truncation", "and a second one")
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	appendFile(t, w, "after\n")
	expect(t, lines, false, "after")
}

func TestFollowFileAppearsLater(t *testing.T) {
	path := filepath.Join(t.TempDir(), "error.log")
	lines := follow(t, path)
	w := openAppend(t, path)
	appendFile(t, w, "first\n")
	expect(t, lines, false, "first")
	appendFile(t, w, "second\n")
	expect(t, lines, false, "second")
}

func TestFollowMissingDirectory(t *testing.T) {
	err := Follow(context.Background(), filepath.Join(t.TempDir(), "nope", "error.log"), func(string) {})
	if err == nil {
		t.Fatal("Follow of a file in a missing directory: nil error")
	}
}

func TestFollowCancelLeaksNothing(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	path := filepath.Join(t.TempDir(), "error.log")
	w := openAppend(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	got := make(chan string, 10)
	go func() { done <- Follow(ctx, path, func(l string) { got <- l }) }()
	// Follow starts at the end: keep writing until a line arrives.
	deadline := time.After(5 * time.Second)
	for arrived := false; !arrived; {
		appendFile(t, w, "x\n")
		select {
		case <-got:
			arrived = true
		case <-time.After(50 * time.Millisecond):
		case <-deadline:
			t.Fatal("no line within 5s")
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Follow did not return within 5s of cancel")
	}
	// The file is closed: only the writer's descriptor points at it.
	fds, _ := os.ReadDir("/proc/self/fd")
	open := 0
	for _, fd := range fds {
		if l, _ := os.Readlink(filepath.Join("/proc/self/fd", fd.Name())); l == path {
			open++
		}
	}
	if open != 1 { // the writer's own
		t.Errorf("%d descriptors open on %s after Follow returned, want 1 (the writer's)", open, path)
	}
}
