package outbox

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/notify"
)

// recorder is the notifier under the outbox in these tests. The notifier is
// the fault being injected here (a destination that is down, that rejects,
// that asks to wait), so a small fake that records what it accepted and
// fails on demand stands in for the email and webhook notifiers.
type recorder struct {
	name string
	// fail, when set, decides the outcome of each attempt: the message and
	// the number of earlier attempts of the same ID.
	fail func(m *notify.Message, attempt int) (retry bool, err error)

	mu       sync.Mutex
	got      []string          // accepted IDs, in order
	msgs     []*notify.Message // accepted messages, in order
	attempts map[string]int
	times    map[string][]time.Time
	accepted chan string
}

var _ notify.Notifier = (*recorder)(nil)

func newRecorder(name string) *recorder {
	return &recorder{
		name:     name,
		attempts: make(map[string]int),
		times:    make(map[string][]time.Time),
		accepted: make(chan string, 1000),
	}
}

func (r *recorder) Name() string { return r.name }

func (r *recorder) Notify(ctx context.Context, m *notify.Message) (bool, error) {
	r.mu.Lock()
	n := r.attempts[m.ID]
	r.attempts[m.ID]++
	r.times[m.ID] = append(r.times[m.ID], time.Now())
	r.mu.Unlock()
	if r.fail != nil {
		if retry, err := r.fail(m, n); err != nil {
			return retry, err
		}
	}
	r.mu.Lock()
	r.got = append(r.got, m.ID)
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
	r.accepted <- m.ID
	return false, nil
}

func (r *recorder) delivered() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// wait waits for n more accepted messages.
func (r *recorder) wait(t *testing.T, n int) {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for i := range n {
		select {
		case <-r.accepted:
		case <-timeout:
			t.Fatalf("%s: %d of %d messages delivered in time; got %v", r.name, i, n, r.delivered())
		}
	}
}

func msg(id string, kind notify.Kind) *notify.Message {
	return &notify.Message{
		ID:   id,
		Kind: kind,
		At:   time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC),
		Incident: notify.Incident{
			ID: "my-app-20261121T080000.000Z", Check: "my-app", Unit: "my-app.service",
			Host: "web1", Problem: "127.0.0.1:8080 connection refused",
		},
	}
}

func testOptions(t *testing.T, dir string) Options {
	return Options{
		Dir:            dir,
		Backoff:        time.Millisecond,
		BackoffMax:     4 * time.Millisecond,
		AttemptTimeout: 5 * time.Second,
		Log:            zaptest.NewLogger(t),
	}
}

func open(t *testing.T, opts Options, ns ...notify.Notifier) *Outbox {
	t.Helper()
	o, err := Open(opts, ns)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return o
}

// run starts o.Run and returns a function that stops it, waits for it and
// checks that no goroutine is left.
func run(t *testing.T, o *Outbox) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	return func() {
		t.Helper()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after its context ended")
		}
		goleak.VerifyNone(t)
	}
}

func pendingFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() {
			names = append(names, e.Name())
		}
	}
	return names
}

func enqueue(t *testing.T, o *Outbox, notifier string, ms ...*notify.Message) {
	t.Helper()
	for _, m := range ms {
		if err := o.Enqueue(notifier, m); err != nil {
			t.Fatalf("Enqueue(%s, %s): %v", notifier, m.ID, err)
		}
	}
}

func ids(prefix string, n int) []string {
	s := make([]string, n)
	for i := range s {
		s[i] = fmt.Sprintf("%s.%d", prefix, i+1)
	}
	return s
}

func TestEnqueueDeliverRemoves(t *testing.T) {
	dir := t.TempDir() // mode 0755: Open makes it private
	r := newRecorder("ops-email")
	o := open(t, testOptions(t, dir), r)

	enqueue(t, o, "ops-email", msg("inc.1", notify.Firing))
	files := pendingFiles(t, filepath.Join(dir, "ops-email"))
	if len(files) != 1 || files[0] != "00000000000000000001.json" {
		t.Fatalf("files before delivery = %v, want [00000000000000000001.json]", files)
	}
	var rec record
	data, err := os.ReadFile(filepath.Join(dir, "ops-email", files[0]))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil || rec.Message.ID != "inc.1" || rec.Attempts != 0 {
		t.Fatalf("stored record = %+v, %v", rec, err)
	}
	if st := o.Stats()[0]; st.Pending != 1 || st.OldestPending.IsZero() {
		t.Errorf("Stats before delivery = %+v, want 1 pending with OldestPending", st)
	}

	stop := run(t, o)
	r.wait(t, 1)
	stop()

	if files := pendingFiles(t, filepath.Join(dir, "ops-email")); len(files) != 0 {
		t.Errorf("files after delivery = %v, want none", files)
	}
	st := o.Stats()[0]
	if st.Pending != 0 || st.Delivered != 1 || !st.OldestPending.IsZero() {
		t.Errorf("Stats after delivery = %+v", st)
	}
	if info, err := os.Stat(dir); err != nil || info.Mode().Perm() != 0o700 {
		t.Errorf("outbox dir mode = %v, %v; want 0700", info.Mode().Perm(), err)
	}
}

func TestOrderPreserved(t *testing.T) {
	r := newRecorder("hook")
	o := open(t, testOptions(t, t.TempDir()), r)
	stop := run(t, o)
	want := ids("inc", 50)
	for _, id := range want {
		enqueue(t, o, "hook", msg(id, notify.Reminder))
	}
	r.wait(t, 50)
	stop()
	if got := r.delivered(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

// An SMTP server down for a while: every message arrives once it is back,
// in order, each once.
func TestRetryableFailuresThenOK(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("ops-email")
	var mu sync.Mutex
	down := 5
	r.fail = func(m *notify.Message, attempt int) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		if down > 0 {
			down--
			return true, errors.New("establish connection to server: dial tcp 127.0.0.1:25: connect: connection refused")
		}
		return false, nil
	}
	o := open(t, testOptions(t, dir), r)
	want := ids("inc", 10)
	for _, id := range want {
		enqueue(t, o, "ops-email", msg(id, notify.Firing))
	}
	stop := run(t, o)
	r.wait(t, len(want))
	stop()

	if got := r.delivered(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
	if r.attempts["inc.1"] != 6 {
		t.Errorf("attempts of the head = %d, want 6 (5 failures, 1 success)", r.attempts["inc.1"])
	}
	for _, id := range want[1:] {
		if r.attempts[id] != 1 {
			t.Errorf("attempts of %s = %d, want 1: no message may overtake the failing head", id, r.attempts[id])
		}
	}
	st := o.Stats()[0]
	if st.Delivered != 10 || st.Pending != 0 || !strings.Contains(st.LastError, "connection refused") || st.LastErrorAt.IsZero() {
		t.Errorf("Stats = %+v", st)
	}
	if files := pendingFiles(t, filepath.Join(dir, "ops-email")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestNotRetryableMovedToFailed(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	r.fail = func(m *notify.Message, _ int) (bool, error) {
		if m.ID == "inc.1" {
			return false, errors.New("post webhook: 400 Bad Request")
		}
		return false, nil
	}
	o := open(t, testOptions(t, dir), r)
	enqueue(t, o, "hook", msg("inc.1", notify.Firing), msg("inc.2", notify.Resolved))
	stop := run(t, o)
	r.wait(t, 1)
	stop()

	if got := r.delivered(); !slices.Equal(got, []string{"inc.2"}) {
		t.Errorf("delivered %v, want [inc.2]", got)
	}
	if r.attempts["inc.1"] != 1 {
		t.Errorf("inc.1 attempted %d times, want 1 (retry=false)", r.attempts["inc.1"])
	}
	failed := pendingFiles(t, filepath.Join(dir, "hook", FailedDir))
	if len(failed) != 1 {
		t.Fatalf("failed/ holds %v, want one file", failed)
	}
	rec, err := readRecord(filepath.Join(dir, "hook", FailedDir, failed[0]))
	if err != nil || rec.Message.ID != "inc.1" || !strings.Contains(rec.LastError, "400") || rec.Attempts != 1 {
		t.Errorf("failed record = %+v, %v", rec, err)
	}
	if st := o.Stats()[0]; st.Failed != 1 || st.Delivered != 1 || st.Pending != 0 {
		t.Errorf("Stats = %+v", st)
	}

	// A new Open counts failed/ and never resends from it; new sequence
	// numbers continue after the highest in failed/ (1), so they never
	// collide with a failed one.
	o2 := open(t, testOptions(t, dir), newRecorder("hook"))
	if st := o2.Stats()[0]; st.Failed != 1 || st.Pending != 0 {
		t.Errorf("Stats after reopen = %+v", st)
	}
	enqueue(t, o2, "hook", msg("inc.3", notify.Firing))
	if files := pendingFiles(t, filepath.Join(dir, "hook")); !slices.Equal(files, []string{"00000000000000000002.json"}) {
		t.Errorf("new file %v, want sequence 2", files)
	}
}

func TestRetryDelay(t *testing.T) {
	low := func(int64) int64 { return 0 }
	high := func(n int64) int64 { return n - 1 }
	tests := []struct {
		attempts   int
		base, max  time.Duration
		retryAfter time.Duration
		wantMin    time.Duration // with the lowest jitter
		wantMax    time.Duration // with the highest jitter
	}{
		{1, time.Second, 5 * time.Minute, 0, 500 * time.Millisecond, time.Second},
		{2, time.Second, 5 * time.Minute, 0, time.Second, 2 * time.Second},
		{3, time.Second, 5 * time.Minute, 0, 2 * time.Second, 4 * time.Second},
		{9, time.Second, 5 * time.Minute, 0, 128 * time.Second, 256 * time.Second},
		{10, time.Second, 5 * time.Minute, 0, 150 * time.Second, 5 * time.Minute},
		{1000000, time.Second, 5 * time.Minute, 0, 150 * time.Second, 5 * time.Minute},
		// RetryAfter is a lower bound, also above the cap.
		{1, time.Second, 5 * time.Minute, 30 * time.Second, 30 * time.Second, 30 * time.Second},
		{3, time.Second, 5 * time.Minute, 3 * time.Second, 3 * time.Second, 4 * time.Second},
		{20, time.Second, 5 * time.Minute, time.Hour, time.Hour, time.Hour},
		{1, time.Nanosecond, time.Nanosecond, 0, 0, time.Nanosecond},
	}
	for _, tt := range tests {
		name := fmt.Sprintf("attempts=%d,base=%s,max=%s,retryAfter=%s", tt.attempts, tt.base, tt.max, tt.retryAfter)
		t.Run(name, func(t *testing.T) {
			if got := retryDelay(tt.attempts, tt.base, tt.max, tt.retryAfter, low); got != tt.wantMin {
				t.Errorf("lowest jitter: %s, want %s", got, tt.wantMin)
			}
			if got := retryDelay(tt.attempts, tt.base, tt.max, tt.retryAfter, high); got != tt.wantMax {
				t.Errorf("highest jitter: %s, want %s", got, tt.wantMax)
			}
		})
	}
}

// The real rand stays within the bounds and differs between calls.
func TestRetryDelayJitter(t *testing.T) {
	seen := map[time.Duration]bool{}
	for range 200 {
		d := retryDelay(4, time.Second, time.Minute, 0, rand.Int64N)
		if d < 4*time.Second || d > 8*time.Second {
			t.Fatalf("delay %s outside [4s, 8s]", d)
		}
		seen[d] = true
	}
	if len(seen) < 10 {
		t.Errorf("only %d distinct delays in 200: no jitter?", len(seen))
	}
}

func TestRetryAfterHonoured(t *testing.T) {
	r := newRecorder("hook")
	const after = 300 * time.Millisecond
	r.fail = func(m *notify.Message, attempt int) (bool, error) {
		if attempt == 0 {
			return true, &notify.RetryAfterError{After: after, Err: errors.New("post webhook: 429 Too Many Requests")}
		}
		return false, nil
	}
	o := open(t, testOptions(t, t.TempDir()), r) // Backoff is 1ms
	enqueue(t, o, "hook", msg("inc.1", notify.Firing))
	stop := run(t, o)
	r.wait(t, 1)
	stop()
	ts := r.times["inc.1"]
	if len(ts) != 2 {
		t.Fatalf("%d attempts, want 2", len(ts))
	}
	if gap := ts[1].Sub(ts[0]); gap < after || gap > after+5*time.Second {
		t.Errorf("retry after %s, want at least %s (Retry-After)", gap, after)
	}
}

// The attempt count is on disk, so backoff continues after a restart.
func TestAttemptsPersisted(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	calls := 0
	r.fail = func(*notify.Message, int) (bool, error) {
		calls++
		if calls == 3 {
			// Stop after the third failure has been recorded: the Run
			// below returns once this attempt is done.
			time.AfterFunc(20*time.Millisecond, cancel)
		}
		return true, errors.New("post webhook: 503")
	}
	o := open(t, testOptions(t, dir), r)
	enqueue(t, o, "hook", msg("inc.1", notify.Firing))
	if err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	rec, err := readRecord(filepath.Join(dir, "hook", "00000000000000000001.json"))
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	n := r.attempts["inc.1"]
	r.mu.Unlock()
	if rec.Attempts < 2 || rec.Attempts != n || rec.LastError != "post webhook: 503" {
		t.Errorf("record = attempts %d, last error %q; notifier saw %d attempts", rec.Attempts, rec.LastError, n)
	}
}

func TestAttemptTimeout(t *testing.T) {
	r := newRecorder("hook")
	blocking := &blockingNotifier{name: "slow", started: make(chan struct{}, 10), honour: true}
	opts := testOptions(t, t.TempDir())
	opts.AttemptTimeout = 20 * time.Millisecond
	o := open(t, opts, r, blocking)
	enqueue(t, o, "slow", msg("inc.1", notify.Firing))
	stop := run(t, o)
	for range 2 { // timed out once, retried
		<-blocking.started
	}
	stop()
	st := o.Stats()[1]
	if !strings.Contains(st.LastError, "attempt timed out after 20ms") || st.Pending != 1 {
		t.Errorf("Stats = %+v, want the timeout cause in LastError and the message pending", st)
	}
}

// blockingNotifier never accepts: with honour it returns when its context
// ends, otherwise it blocks forever (only in the killed child process).
type blockingNotifier struct {
	name    string
	started chan struct{}
	honour  bool
}

func (b *blockingNotifier) Name() string { return b.name }

func (b *blockingNotifier) Notify(ctx context.Context, m *notify.Message) (bool, error) {
	select {
	case b.started <- struct{}{}:
	default:
	}
	if !b.honour {
		select {}
	}
	<-ctx.Done()
	return true, fmt.Errorf("send %s: %w", m.ID, ctx.Err())
}

const helperEnv = "MEDIC_OUTBOX_HELPER_DIR"

// TestHelperProcess is the child of TestSIGKILLDurability: it enqueues three
// messages to a notifier that never answers, says "enqueued" and waits to be
// killed.
func TestHelperProcess(t *testing.T) {
	dir := os.Getenv(helperEnv)
	if dir == "" {
		t.Skip("helper process for TestSIGKILLDurability")
	}
	b := &blockingNotifier{name: "ops-email", started: make(chan struct{}, 1)}
	o, err := Open(Options{Dir: dir}, []notify.Notifier{b})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	go o.Run(context.Background())
	for _, id := range ids("inc", 3) {
		if err := o.Enqueue("ops-email", msg(id, notify.Firing)); err != nil {
			fmt.Println("enqueue:", err)
			os.Exit(2)
		}
	}
	<-b.started // the first message is in flight
	fmt.Println("enqueued")
	select {}
}

func TestSIGKILLDurability(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(out).ReadString('\n')
		line <- s
	}()
	select {
	case s := <-line:
		if strings.TrimSpace(s) != "enqueued" {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("child said %q, want \"enqueued\"", s)
		}
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not enqueue in time")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()

	r := newRecorder("ops-email")
	o := open(t, testOptions(t, dir), r)
	if st := o.Stats()[0]; st.Pending != 3 {
		t.Fatalf("pending after restart = %d, want 3", st.Pending)
	}
	stop := run(t, o)
	r.wait(t, 3)
	stop()
	if got, want := r.delivered(), ids("inc", 3); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v, each once", got, want)
	}
	if files := pendingFiles(t, filepath.Join(dir, "ops-email")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

func TestCorruptFilesQuarantined(t *testing.T) {
	dir := t.TempDir()
	qdir := filepath.Join(dir, "hook")
	if err := os.MkdirAll(qdir, 0o700); err != nil {
		t.Fatal(err)
	}
	good := func(seq uint64, id string) {
		data, _ := json.Marshal(record{EnqueuedAt: time.Now(), Message: msg(id, notify.Firing)})
		if err := os.WriteFile(filepath.Join(qdir, seqName(seq)), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	good(1, "inc.1")
	full, _ := json.Marshal(record{Message: msg("inc.2", notify.Firing)})
	os.WriteFile(filepath.Join(qdir, seqName(2)), full[:len(full)/2], 0o600) // truncated
	os.WriteFile(filepath.Join(qdir, seqName(3)), nil, 0o600)                // empty
	os.WriteFile(filepath.Join(qdir, seqName(4)), []byte(`{"attempts":1}`), 0o600)
	good(5, "inc.5")
	os.WriteFile(filepath.Join(qdir, ".tmp-123"), []byte(`{"mess`), 0o600) // unfinished Enqueue

	r := newRecorder("hook")
	o := open(t, testOptions(t, dir), r)
	if st := o.Stats()[0]; st.Pending != 2 {
		t.Errorf("pending = %d, want 2", st.Pending)
	}
	corrupt := pendingFiles(t, filepath.Join(dir, CorruptDir))
	want := []string{"hook-" + seqName(2), "hook-" + seqName(3), "hook-" + seqName(4)}
	if !slices.Equal(corrupt, want) {
		t.Errorf("corrupt/ = %v, want %v", corrupt, want)
	}
	stop := run(t, o)
	r.wait(t, 2)
	stop()
	if got := r.delivered(); !slices.Equal(got, []string{"inc.1", "inc.5"}) {
		t.Errorf("delivered %v", got)
	}
	if files := pendingFiles(t, qdir); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	// New messages continue after the highest sequence seen, corrupt or not.
	enqueue(t, o, "hook", msg("inc.6", notify.Firing))
	if files := pendingFiles(t, qdir); !slices.Equal(files, []string{seqName(6)}) {
		t.Errorf("files = %v, want [%s]", files, seqName(6))
	}

	// A second corrupt file of the same name does not overwrite the first.
	os.WriteFile(filepath.Join(qdir, seqName(2)), []byte("{"), 0o600)
	open(t, testOptions(t, dir), newRecorder("hook"))
	if corrupt := pendingFiles(t, filepath.Join(dir, CorruptDir)); len(corrupt) != 4 {
		t.Errorf("corrupt/ = %v, want 4 files", corrupt)
	}
}

func TestBound(t *testing.T) {
	dir := t.TempDir()
	opts := testOptions(t, dir)
	opts.MaxPending = 5
	r := newRecorder("hook")
	o := open(t, opts, r)
	enqueue(t, o, "hook",
		msg("a.1", notify.Firing),
		msg("a.2", notify.Reminder),
		msg("b.1", notify.Firing),
		msg("a.3", notify.Reminder),
		msg("b.2", notify.Reminder),
		// Full: each new message drops the oldest reminder.
		msg("a.4", notify.Resolved),  // drops a.2
		msg("c.1", notify.Recovered), // drops a.3
		msg("b.3", notify.Reminder),  // drops b.2
		msg("b.4", notify.Resolved),  // drops b.3
		msg("d.1", notify.Firing),    // drops c.1 (recovered after reminders)
		// Only firing and resolved remain: over the bound, nothing dropped.
		msg("e.1", notify.Firing),
		// A new reminder is the only droppable message: it is dropped.
		msg("e.2", notify.Reminder),
		msg("e.3", notify.Resolved),
	)
	st := o.Stats()[0]
	if st.Dropped != 6 || st.Pending != 7 {
		t.Errorf("Stats = %+v, want 6 dropped, 7 pending", st)
	}
	if files := pendingFiles(t, filepath.Join(dir, "hook")); len(files) != 7 {
		t.Errorf("files on disk = %v, want 7", files)
	}
	stop := run(t, o)
	r.wait(t, 7)
	stop()
	want := []string{"a.1", "b.1", "a.4", "b.4", "d.1", "e.1", "e.3"}
	if got := r.delivered(); !slices.Equal(got, want) {
		t.Errorf("delivered %v, want %v", got, want)
	}
}

func TestDedupByID(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	o := open(t, testOptions(t, dir), r)
	enqueue(t, o, "hook", msg("inc.1", notify.Firing), msg("inc.1", notify.Firing), msg("inc.2", notify.Firing))
	if st := o.Stats()[0]; st.Pending != 2 {
		t.Errorf("pending = %d, want 2", st.Pending)
	}
	// Also across a restart.
	o = open(t, testOptions(t, dir), r)
	enqueue(t, o, "hook", msg("inc.2", notify.Firing))
	if files := pendingFiles(t, filepath.Join(dir, "hook")); len(files) != 2 {
		t.Errorf("files = %v, want 2", files)
	}
	stop := run(t, o)
	r.wait(t, 2)
	stop()
	if got := r.delivered(); !slices.Equal(got, []string{"inc.1", "inc.2"}) {
		t.Errorf("delivered %v", got)
	}
}

func TestEnqueueErrors(t *testing.T) {
	o := open(t, testOptions(t, t.TempDir()), newRecorder("hook"))
	// A notifier that is not configured keeps the message (see
	// TestChangeNotifiers); a name that cannot be a directory is refused.
	if err := o.Enqueue("nope", msg("inc.1", notify.Firing)); err != nil {
		t.Errorf("Enqueue to an unconfigured notifier: %v", err)
	}
	if st := o.Stats(); len(st) != 2 || st[1].Notifier != "nope" || !st[1].Unconfigured || st[1].Pending != 1 {
		t.Errorf("stats after Enqueue to an unconfigured notifier: %+v", st)
	}
	for _, bad := range []string{"..", ".hidden", "a/b", CorruptDir, ""} {
		if err := o.Enqueue(bad, msg("inc.2", notify.Firing)); err == nil {
			t.Errorf("Enqueue to notifier %q: nil error", bad)
		}
	}
	if err := o.Enqueue("hook", msg("", notify.Firing)); err == nil {
		t.Error("Enqueue of a message without ID: nil error")
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		opts    Options
		ns      []notify.Notifier
		wantErr string
	}{
		{"no dir", Options{}, nil, "no directory"},
		{"duplicate", Options{Dir: dir}, []notify.Notifier{newRecorder("a"), newRecorder("a")}, `duplicate notifier "a"`},
		{"reserved", Options{Dir: dir}, []notify.Notifier{newRecorder("corrupt")}, "reserved"},
		{"slash", Options{Dir: dir}, []notify.Notifier{newRecorder("a/b")}, "path separator"},
		{"dot", Options{Dir: dir}, []notify.Notifier{newRecorder("..")}, "dot"},
		{"nil", Options{Dir: dir}, []notify.Notifier{nil}, "nil notifier"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Open(tt.opts, tt.ns)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Open: %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

// A notifier removed from the configuration keeps its messages on disk.
func TestOrphanNotifierKept(t *testing.T) {
	dir := t.TempDir()
	o := open(t, testOptions(t, dir), newRecorder("old"), newRecorder("hook"))
	enqueue(t, o, "old", msg("inc.1", notify.Firing))
	o = open(t, testOptions(t, dir), newRecorder("hook"))
	if len(o.Stats()) != 1 {
		t.Errorf("Stats = %+v, want only hook", o.Stats())
	}
	if files := pendingFiles(t, filepath.Join(dir, "old")); len(files) != 1 {
		t.Errorf("old notifier's files = %v, want kept", files)
	}
}

func TestFlush(t *testing.T) {
	dir := t.TempDir()
	ok := newRecorder("ok")
	down := newRecorder("down")
	down.fail = func(*notify.Message, int) (bool, error) {
		return true, errors.New("establish connection to server: connection refused")
	}
	o := open(t, testOptions(t, dir), ok, down)
	enqueue(t, o, "ok", msg("inc.1", notify.Firing), msg("inc.2", notify.Resolved))
	enqueue(t, o, "down", msg("inc.1", notify.Firing), msg("inc.2", notify.Resolved))

	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	err := o.Flush(ctx)
	var ue *UndeliveredError
	if !errors.As(err, &ue) {
		t.Fatalf("Flush: %v, want *UndeliveredError", err)
	}
	if len(ue.Pending) != 1 || ue.Pending["down"] != 2 {
		t.Errorf("undelivered = %v, want down: 2", ue.Pending)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Flush error %v does not carry the deadline", err)
	}
	if want := "flush outbox: 2 messages undelivered (down 2): context deadline exceeded"; err.Error() != want {
		t.Errorf("Flush error = %q, want %q", err, want)
	}
	if got := ok.delivered(); !slices.Equal(got, []string{"inc.1", "inc.2"}) {
		t.Errorf("ok delivered %v", got)
	}
	if files := pendingFiles(t, filepath.Join(dir, "down")); len(files) != 2 {
		t.Errorf("down's files = %v, want both kept for the next start", files)
	}

	// Once the notifier is back, Flush returns nil as soon as all is out.
	down.fail = nil
	if err := o.Flush(t.Context()); err != nil {
		t.Errorf("Flush: %v", err)
	}
	if got := down.delivered(); !slices.Equal(got, []string{"inc.1", "inc.2"}) {
		t.Errorf("down delivered %v", got)
	}
	goleak.VerifyNone(t)
}

func TestRunFlushExclusive(t *testing.T) {
	o := open(t, testOptions(t, t.TempDir()), newRecorder("hook"))
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- o.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for !o.busy.Load() && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := o.Flush(t.Context()); !errors.Is(err, ErrBusy) {
		t.Errorf("Flush during Run: %v, want ErrBusy", err)
	}
	if err := o.Run(t.Context()); !errors.Is(err, ErrBusy) {
		t.Errorf("second Run: %v, want ErrBusy", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if err := o.Flush(t.Context()); err != nil {
		t.Errorf("Flush after Run: %v", err)
	}
	goleak.VerifyNone(t)
}

// A shutdown that interrupts an attempt does not count as a failure, and
// Run waits for the attempt to return.
func TestRunWaitsForInflight(t *testing.T) {
	dir := t.TempDir()
	b := &blockingNotifier{name: "hook", started: make(chan struct{}, 1), honour: true}
	o := open(t, testOptions(t, dir), b)
	enqueue(t, o, "hook", msg("inc.1", notify.Firing))
	stop := run(t, o)
	<-b.started
	stop()
	st := o.Stats()[0]
	if st.Pending != 1 || st.LastError != "" || st.Failed != 0 {
		t.Errorf("Stats = %+v, want 1 pending and no error", st)
	}
	rec, err := readRecord(filepath.Join(dir, "hook", seqName(1)))
	if err != nil || rec.Attempts != 0 {
		t.Errorf("record = %+v, %v; want 0 attempts", rec, err)
	}
}

// A notifier's panic is a bug: the message goes to failed/, medic lives on.
func TestNotifierPanic(t *testing.T) {
	r := newRecorder("hook")
	r.fail = func(m *notify.Message, _ int) (bool, error) {
		if m.ID == "inc.1" {
			panic("boom")
		}
		return false, nil
	}
	o := open(t, testOptions(t, t.TempDir()), r)
	enqueue(t, o, "hook", msg("inc.1", notify.Firing), msg("inc.2", notify.Firing))
	stop := run(t, o)
	r.wait(t, 1)
	stop()
	if st := o.Stats()[0]; st.Failed != 1 || !strings.Contains(st.LastError, "panicked: boom") {
		t.Errorf("Stats = %+v", st)
	}
}

// TestRejectedCounts: Rejected counts every message rejected since Open and
// never decreases, unlike Failed, which counts the files in failed/.
func TestRejectedCounts(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	r.fail = func(*notify.Message, int) (bool, error) { return false, errors.New("400 Bad Request") }
	o := open(t, testOptions(t, dir), r)
	enqueue(t, o, "hook", msg("a.1", notify.Firing), msg("a.2", notify.Firing))
	stop := run(t, o)
	deadline := time.Now().Add(5 * time.Second)
	for o.Stats()[0].Rejected < 2 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	stop()
	if st := o.Stats()[0]; st.Rejected != 2 || st.Failed != 2 {
		t.Fatalf("stats = %+v, want 2 rejected and 2 failed", st)
	}
	if err := os.RemoveAll(filepath.Join(dir, "hook", FailedDir)); err != nil {
		t.Fatal(err)
	}
	o2 := open(t, testOptions(t, dir), newRecorder("hook"))
	if st := o2.Stats()[0]; st.Failed != 0 || st.Rejected != 0 {
		t.Errorf("after clearing failed/ and reopening: %+v", st)
	}
}
