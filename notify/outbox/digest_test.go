package outbox

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

// digestMsgs returns n messages of n distinct incidents, like 20 checks
// failing at once behind a shared dependency: all firing but the last
// resolved ones.
func digestMsgs(n, resolved int) []*notify.Message {
	ms := make([]*notify.Message, n)
	for i := range ms {
		kind := notify.Firing
		if i >= n-resolved {
			kind = notify.Resolved
		}
		m := msg(fmt.Sprintf("app%02d-20261121T080000.000Z.1", i+1), kind)
		m.Incident.ID = fmt.Sprintf("app%02d-20261121T080000.000Z", i+1)
		m.Incident.Check = fmt.Sprintf("app%02d", i+1)
		m.Incident.Unit = fmt.Sprintf("app%02d.service", i+1)
		ms[i] = m
	}
	return ms
}

func msgIDs(ms []*notify.Message) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

// accepted returns the messages r accepted, in order.
func (r *recorder) messages() []*notify.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// checkDigest checks that m is the digest of want, in order.
func checkDigest(t *testing.T, m *notify.Message, want []*notify.Message) {
	t.Helper()
	if m.Kind != notify.Digest {
		t.Fatalf("delivered %s (kind %s), want a digest", m.ID, m.Kind)
	}
	if got := msgIDs(m.Digest); !slices.Equal(got, msgIDs(want)) {
		t.Errorf("digest members %v, want %v in order", got, msgIDs(want))
	}
	if id := notify.NewDigest(want).ID; m.ID != id {
		t.Errorf("digest ID %q, want %q", m.ID, id)
	}
}

// clock is a settable Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	c.now = t
	c.mu.Unlock()
}

// 20 incidents within the window: one delivery, holding the 20 in order,
// not before the window passed; every file is removed.
func TestDigestGroupsWithinWindow(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("ops-email")
	const window = 30 * time.Second
	t0 := time.Date(2026, 11, 21, 8, 0, 0, 0, time.UTC)
	c := &clock{now: t0}
	opts := testOptions(t, dir)
	opts.Now = c.Now
	o := open(t, opts, notify.WithDigest(r, window))
	stop := run(t, o)
	ms := digestMsgs(20, 2)
	for i, m := range ms {
		c.Set(t0.Add(time.Duration(i) * time.Second)) // all within the window
		enqueue(t, o, "ops-email", m)
	}
	time.Sleep(100 * time.Millisecond)
	if got := r.delivered(); len(got) != 0 {
		t.Fatalf("delivered %v before the window passed", got)
	}
	if files := pendingFiles(t, filepath.Join(dir, "ops-email")); len(files) != 20 {
		t.Errorf("%d files while waiting for the window, want 20: each message is stored on its own", len(files))
	}
	c.Set(t0.Add(window))
	o.queues["ops-email"].wake <- struct{}{} // the timer is real; wake the loop to read the clock
	r.wait(t, 1)
	time.Sleep(50 * time.Millisecond) // room for a wrong extra delivery
	stop()

	got := r.messages()
	if len(got) != 1 {
		t.Fatalf("%d deliveries %v, want 1 digest", len(got), r.delivered())
	}
	checkDigest(t, got[0], ms)
	if want := "[medic] DIGEST 20 incidents on web1: 18 firing, 2 resolved"; got[0].Subject() != want {
		t.Errorf("subject %q, want %q", got[0].Subject(), want)
	}
	if files := pendingFiles(t, filepath.Join(dir, "ops-email")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
	if st := o.Stats()[0]; st.Delivered != 20 || st.Pending != 0 {
		t.Errorf("Stats = %+v, want 20 delivered (members count)", st)
	}
}

// Window 0: WithDigest returns the notifier itself, 20 deliveries.
func TestDigestWindowZero(t *testing.T) {
	r := newRecorder("hook")
	n := notify.WithDigest(r, 0)
	if n != notify.Notifier(r) {
		t.Fatalf("WithDigest(r, 0) = %T, want r itself", n)
	}
	o := open(t, testOptions(t, t.TempDir()), n)
	ms := digestMsgs(20, 0)
	enqueue(t, o, "hook", ms...)
	stop := run(t, o)
	r.wait(t, 20)
	stop()
	if got := r.delivered(); !slices.Equal(got, msgIDs(ms)) {
		t.Errorf("delivered %v, want each of %v", got, msgIDs(ms))
	}
}

// A digest that fails is retried with the same members and ID, also when
// messages arrive meanwhile; those go in the next digest.
func TestDigestRetrySameID(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	ms := digestMsgs(8, 0)
	var o *Outbox
	var mu sync.Mutex
	calls := 0
	var ids []string
	r.fail = func(m *notify.Message, attempt int) (bool, error) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		ids = append(ids, m.ID)
		if calls == 1 {
			// Arrive during the digest's backoff.
			for _, late := range ms[5:] {
				if err := o.Enqueue("hook", late); err != nil {
					t.Error(err)
				}
			}
		}
		if calls <= 2 {
			return true, errors.New("post webhook: 503 Service Unavailable")
		}
		return false, nil
	}
	opts := testOptions(t, dir)
	opts.Backoff, opts.BackoffMax = 20*time.Millisecond, 40*time.Millisecond
	o = open(t, opts, notify.WithDigest(r, 50*time.Millisecond))
	enqueue(t, o, "hook", ms[:5]...)
	stop := run(t, o)
	r.wait(t, 2)
	stop()

	got := r.messages()
	if len(got) != 2 {
		t.Fatalf("delivered %v, want two digests", r.delivered())
	}
	checkDigest(t, got[0], ms[:5])
	checkDigest(t, got[1], ms[5:])
	mu.Lock()
	defer mu.Unlock()
	if want := []string{got[0].ID, got[0].ID, got[0].ID, got[1].ID}; !slices.Equal(ids, want) {
		t.Errorf("attempts %v, want %v: a retry sends the same digest", ids, want)
	}
	if files := pendingFiles(t, filepath.Join(dir, "hook")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}

// The attempts of a failing digest are recorded in every member's file.
func TestDigestAttemptsPersisted(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	calls := 0
	r.fail = func(*notify.Message, int) (bool, error) {
		calls++
		if calls == 3 {
			cancel() // this attempt is cut short by the shutdown: not counted
		}
		return true, errors.New("post webhook: 503")
	}
	o := open(t, testOptions(t, dir), notify.WithDigest(r, time.Millisecond))
	enqueue(t, o, "hook", digestMsgs(3, 0)...)
	if err := o.Run(ctx); err != nil {
		t.Fatal(err)
	}
	for seq := uint64(1); seq <= 3; seq++ {
		rec, err := readRecord(filepath.Join(dir, "hook", seqName(seq)))
		if err != nil {
			t.Fatal(err)
		}
		if rec.Attempts != 2 || rec.LastError != "post webhook: 503" {
			t.Errorf("member %d: attempts %d, last error %q; want 2 and the error", seq, rec.Attempts, rec.LastError)
		}
	}
}

// A digest rejected for good moves every member to failed/.
func TestDigestNotRetryableMovedToFailed(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	r.fail = func(m *notify.Message, _ int) (bool, error) {
		if m.Kind == notify.Digest {
			return false, errors.New("post webhook: 400 Bad Request")
		}
		return false, nil
	}
	o := open(t, testOptions(t, dir), notify.WithDigest(r, 10*time.Millisecond))
	ms := digestMsgs(5, 1)
	enqueue(t, o, "hook", ms...)
	if err := o.Flush(t.Context()); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	failed := pendingFiles(t, filepath.Join(dir, "hook", FailedDir))
	if len(failed) != 5 {
		t.Fatalf("failed/ holds %v, want the 5 members", failed)
	}
	for i, f := range failed {
		rec, err := readRecord(filepath.Join(dir, "hook", FailedDir, f))
		if err != nil || rec.Message.ID != ms[i].ID || !strings.Contains(rec.LastError, "400") || rec.Attempts != 1 {
			t.Errorf("failed record %s = %+v, %v", f, rec, err)
		}
	}
	if st := o.Stats()[0]; st.Failed != 5 || st.Pending != 0 || st.Delivered != 0 {
		t.Errorf("Stats = %+v", st)
	}
	if files := pendingFiles(t, filepath.Join(dir, "hook")); len(files) != 0 {
		t.Errorf("pending files left: %v", files)
	}
}

// MaxDigest pending messages go at once, without waiting for the window;
// Flush sends the rest at once too, as a digest.
func TestDigestMaxAndFlush(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	o := open(t, testOptions(t, dir), notify.WithDigest(r, time.Hour))
	ms := digestMsgs(MaxDigest+5, 0)
	stop := run(t, o)
	enqueue(t, o, "hook", ms...)
	r.wait(t, 1)
	stop()
	got := r.messages()
	if len(got) != 1 {
		t.Fatalf("delivered %v, want one digest of %d", r.delivered(), MaxDigest)
	}
	checkDigest(t, got[0], ms[:MaxDigest])
	if st := o.Stats()[0]; st.Pending != 5 {
		t.Errorf("pending = %d, want 5 waiting for the window", st.Pending)
	}

	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := o.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	got = r.messages()
	if len(got) != 2 {
		t.Fatalf("delivered %v after Flush, want two digests", r.delivered())
	}
	checkDigest(t, got[1], ms[MaxDigest:])
}

// A digest of one message is that message.
func TestDigestOfOne(t *testing.T) {
	r := newRecorder("hook")
	o := open(t, testOptions(t, t.TempDir()), notify.WithDigest(r, 10*time.Millisecond))
	enqueue(t, o, "hook", msg("inc.1", notify.Firing))
	stop := run(t, o)
	r.wait(t, 1)
	stop()
	if got := r.messages(); len(got) != 1 || got[0].ID != "inc.1" || got[0].Kind != notify.Firing {
		t.Errorf("delivered %v, want inc.1 itself", r.delivered())
	}
}

// The members of a digest under way are not dropped by the bound, even
// between attempts.
func TestDigestMembersNotDropped(t *testing.T) {
	dir := t.TempDir()
	r := newRecorder("hook")
	attempted := make(chan struct{}, 10)
	r.fail = func(_ *notify.Message, attempt int) (bool, error) {
		attempted <- struct{}{}
		if attempt == 0 {
			return true, errors.New("post webhook: 503")
		}
		return false, nil
	}
	opts := testOptions(t, dir)
	opts.MaxPending = 3
	opts.Backoff, opts.BackoffMax = 100*time.Millisecond, 100*time.Millisecond
	o := open(t, opts, notify.WithDigest(r, time.Millisecond))
	first := []*notify.Message{msg("a.2", notify.Reminder), msg("b.2", notify.Reminder), msg("c.2", notify.Reminder)}
	enqueue(t, o, "hook", first...)
	stop := run(t, o)
	<-attempted
	// Full; the only droppable messages are the digest's members: the new
	// reminder goes instead.
	enqueue(t, o, "hook", msg("d.2", notify.Reminder))
	r.wait(t, 1)
	stop()
	got := r.messages()
	checkDigest(t, got[0], first)
	if st := o.Stats()[0]; st.Dropped != 1 || st.Pending != 0 {
		t.Errorf("Stats = %+v, want d.2 dropped and nothing pending", st)
	}
}

const digestHelperEnv = "MEDIC_OUTBOX_DIGEST_HELPER_DIR"

// idNotifier reports the ID of every attempt and never answers.
type idNotifier struct {
	name string
	ids  chan string
}

func (n *idNotifier) Name() string { return n.name }

func (n *idNotifier) Notify(_ context.Context, m *notify.Message) (bool, error) {
	n.ids <- m.ID
	select {}
}

// TestDigestHelperProcess is the child of TestDigestSIGKILL: it enqueues 3
// messages for a notifier with a digest window that never answers, prints
// the ID of the digest in flight and waits to be killed.
func TestDigestHelperProcess(t *testing.T) {
	dir := os.Getenv(digestHelperEnv)
	if dir == "" {
		t.Skip("helper process for TestDigestSIGKILL")
	}
	n := &idNotifier{name: "ops-email", ids: make(chan string, 1)}
	o, err := Open(Options{Dir: dir}, []notify.Notifier{notify.WithDigest(n, 20*time.Millisecond)})
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	for _, m := range digestMsgs(3, 1) {
		if err := o.Enqueue("ops-email", m); err != nil {
			fmt.Println("enqueue:", err)
			os.Exit(2)
		}
	}
	go o.Run(context.Background())
	fmt.Println(<-n.ids)
	select {}
}

// A digest in flight when medic is killed: its members are on disk, and the
// next run delivers them as the same digest.
func TestDigestSIGKILL(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "outbox")
	cmd := exec.Command(os.Args[0], "-test.run=^TestDigestHelperProcess$")
	cmd.Env = append(os.Environ(), digestHelperEnv+"="+dir)
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
		line <- strings.TrimSpace(s)
	}()
	var inflight string
	select {
	case inflight = <-line:
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		cmd.Wait()
		t.Fatal("child did not attempt a digest in time")
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	cmd.Wait()
	ms := digestMsgs(3, 1)
	if want := notify.NewDigest(ms).ID; inflight != want {
		t.Fatalf("child attempted %q, want the digest %q", inflight, want)
	}

	r := newRecorder("ops-email")
	o := open(t, testOptions(t, dir), notify.WithDigest(r, 20*time.Millisecond))
	if st := o.Stats()[0]; st.Pending != 3 {
		t.Fatalf("pending after restart = %d, want 3", st.Pending)
	}
	stop := run(t, o)
	r.wait(t, 1)
	stop()
	got := r.messages()
	if len(got) != 1 {
		t.Fatalf("delivered %v, want one digest", r.delivered())
	}
	checkDigest(t, got[0], ms)
	if got[0].ID != inflight {
		t.Errorf("digest after restart %q, want the same ID as before the kill %q", got[0].ID, inflight)
	}
	if files := pendingFiles(t, filepath.Join(dir, "ops-email")); len(files) != 0 {
		t.Errorf("files left: %v", files)
	}
}
