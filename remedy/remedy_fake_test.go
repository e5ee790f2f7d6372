package remedy

// Unit tests with a fake Systemd, only for faults that a real systemd
// cannot produce on demand: a bus connection that drops (before a call,
// during a call, while a job result is awaited), a bus that cannot be
// dialed at all, and the bookkeeping around them. Everything systemd itself
// decides is tested on the real user manager in remedy_systemd_test.go.

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/dbus"
	godbus "github.com/godbus/dbus/v5"
	"go.uber.org/zap/zaptest"
)

type fakeConn struct {
	mu        sync.Mutex
	connected bool
	closed    bool
	active    string // ActiveState reported
	job       uint32 // the unit's Job property
	// propsErr, if set, fails GetAllPropertiesContext once and drops the
	// connection, like a bus that went away mid-call.
	propsErr error
	// onQueue runs when a job is queued; it may send on ch.
	onQueue func(f *fakeConn, ch chan<- string)
	// queueErr, if set, fails the next queue call and drops the
	// connection; the job may or may not have been queued.
	queueErr error
	// refuse, if set, fails every queue call with it on a connection that
	// stays up, as a manager refusing the caller does.
	refuse   error
	queued   int
	resets   int
	lastMode string
}

var _ Systemd = (*fakeConn)(nil)

func newFake() *fakeConn { return &fakeConn{connected: true, active: "active"} }

func (f *fakeConn) queue(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	f.mu.Lock()
	if !f.connected {
		f.mu.Unlock()
		return 0, godbus.ErrClosed
	}
	if f.refuse != nil {
		f.mu.Unlock()
		return 0, f.refuse
	}
	if f.queueErr != nil {
		err := f.queueErr
		f.queueErr = nil
		f.connected = false
		f.mu.Unlock()
		return 0, err
	}
	f.queued++
	f.lastMode = mode
	on := f.onQueue
	f.mu.Unlock()
	if on != nil {
		on(f, ch)
	}
	return 41 + f.queued, nil
}

func (f *fakeConn) RestartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	return f.queue(ctx, name, mode, ch)
}

func (f *fakeConn) StartUnitContext(ctx context.Context, name, mode string, ch chan<- string) (int, error) {
	return f.queue(ctx, name, mode, ch)
}

func (f *fakeConn) ResetFailedUnitContext(ctx context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.resets++
	return nil
}

func (f *fakeConn) GetAllPropertiesContext(ctx context.Context, unit string) (map[string]any, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return nil, godbus.ErrClosed
	}
	if f.propsErr != nil {
		err := f.propsErr
		f.propsErr = nil
		f.connected = false
		return nil, err
	}
	return map[string]any{
		"Id":                   unit,
		"LoadState":            "loaded",
		"ActiveState":          f.active,
		"SubState":             "running",
		"Result":               "success",
		"ExecMainCode":         int32(0),
		"MainPID":              uint32(1234),
		"NRestarts":            uint32(2),
		"ActiveEnterTimestamp": uint64(1_700_000_000_000_000),
		"Job":                  []any{f.job, godbus.ObjectPath("/org/freedesktop/systemd1/job/1")},
	}, nil
}

func (f *fakeConn) GetUnitPropertyContext(ctx context.Context, unit, name string) (*dbus.Property, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.connected {
		return nil, godbus.ErrClosed
	}
	return &dbus.Property{Name: name, Value: godbus.MakeVariant([]any{f.job, godbus.ObjectPath("/org/freedesktop/systemd1/job/1")})}, nil
}

func (f *fakeConn) ListJobsContext(ctx context.Context) ([]dbus.JobStatus, error) { return nil, nil }

func (f *fakeConn) Connected() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.connected
}

func (f *fakeConn) Close() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected = false
	f.closed = true
}

func (f *fakeConn) drop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.connected = false
}

// fakeDialer hands out the given connections in order, then errors.
type fakeDialer struct {
	mu    sync.Mutex
	conns []*fakeConn
	times []time.Time
	ctxs  []context.Context
	err   error
}

func (d *fakeDialer) dial(ctx context.Context) (Systemd, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.times = append(d.times, time.Now())
	d.ctxs = append(d.ctxs, ctx)
	if len(d.conns) == 0 {
		if d.err != nil {
			return nil, d.err
		}
		return nil, errors.New("connect to systemd user bus: no more fake connections")
	}
	c := d.conns[0]
	d.conns = d.conns[1:]
	return c, nil
}

func (d *fakeDialer) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.times)
}

func newFakeRemediator(t *testing.T, d *fakeDialer, allowed ...string) (*Remediator, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	r := New(ctx, d.dial, allowed, zaptest.NewLogger(t))
	r.backoffMin, r.backoffMax, r.pollEvery = 10*time.Millisecond, 40*time.Millisecond, 5*time.Millisecond
	return r, cancel
}

func TestLostConnectionIsClosedAndRedialed(t *testing.T) {
	c1, c2 := newFake(), newFake()
	d := &fakeDialer{conns: []*fakeConn{c1, c2}}
	r, _ := newFakeRemediator(t, d, "a.service")
	if _, err := r.State(t.Context(), "a.service"); err != nil {
		t.Fatal(err)
	}
	c1.drop() // Connected() == false
	s, err := r.State(t.Context(), "a.service")
	if err != nil {
		t.Fatal(err)
	}
	if !c1.closed || d.count() != 2 || s.ActiveState != "active" || s.NRestarts != 2 || s.MainPID != 1234 {
		t.Errorf("closed=%v dials=%d state=%v; want the lost connection closed and one redial", c1.closed, d.count(), s)
	}
}

func TestCallFailingWithDisconnectRedials(t *testing.T) {
	c1, c2 := newFake(), newFake()
	c1.propsErr = io.EOF // the bus went away during the call
	d := &fakeDialer{conns: []*fakeConn{c1, c2}}
	r, _ := newFakeRemediator(t, d, "a.service")
	if _, err := r.State(t.Context(), "a.service"); err != nil {
		t.Fatalf("State after a disconnect mid-call = %v, want a redial and success", err)
	}
	if d.count() != 2 || !c1.closed {
		t.Errorf("dials=%d closed=%v", d.count(), c1.closed)
	}
}

func TestDialFailuresBackOffExponentially(t *testing.T) {
	d := &fakeDialer{err: errors.New("connect to systemd user bus: dial unix /run/user/0/bus: connect: no such file or directory")}
	r, _ := newFakeRemediator(t, d, "a.service")
	for range 5 {
		_, err := r.State(t.Context(), "a.service")
		if err == nil || !strings.Contains(err.Error(), "connect to systemd user bus") {
			t.Fatalf("State error = %v, want the dial error", err)
		}
	}
	// Gaps between dials: >= 10ms, 20ms, 40ms, 40ms (capped).
	want := []time.Duration{10, 20, 40, 40}
	for i, w := range want {
		gap := d.times[i+1].Sub(d.times[i])
		if gap < w*time.Millisecond {
			t.Errorf("gap before dial %d = %s, want >= %dms", i+2, gap, w)
		}
	}
	// A caller whose ctx ends during the backoff gets the last dial error
	// and the ctx's cause, without another dial. (The backoff is made long
	// here: on a loaded machine 40 ms can pass before the next call.)
	r.mu.Lock()
	r.nextDial = time.Now().Add(time.Hour)
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), time.Millisecond)
	defer cancel()
	n := d.count()
	_, err := r.State(ctx, "a.service")
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "connect to systemd user bus") {
		t.Errorf("State during backoff = %v", err)
	}
	if d.count() != n {
		t.Errorf("dialed during the backoff")
	}
}

func TestBackoffResetsAfterGoodDial(t *testing.T) {
	d := &fakeDialer{err: errors.New("connect to systemd user bus: refused")}
	r, _ := newFakeRemediator(t, d, "a.service")
	_, _ = r.State(t.Context(), "a.service")
	_, _ = r.State(t.Context(), "a.service")
	d.mu.Lock()
	d.conns = []*fakeConn{newFake()}
	d.mu.Unlock()
	if _, err := r.State(t.Context(), "a.service"); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.backoff != 0 || r.lastErr != nil {
		t.Errorf("backoff=%s lastErr=%v after a good dial, want reset", r.backoff, r.lastErr)
	}
}

func TestDialGetsTheRootContext(t *testing.T) {
	d := &fakeDialer{conns: []*fakeConn{newFake()}}
	r, cancelRoot := newFakeRemediator(t, d, "a.service")
	ctx, cancel := context.WithTimeout(t.Context(), time.Second)
	if _, err := r.State(ctx, "a.service"); err != nil {
		t.Fatal(err)
	}
	cancel()
	if d.ctxs[0].Err() != nil {
		t.Fatal("the connection's context ended with the call's; it must live as long as the Remediator's")
	}
	cancelRoot()
	if d.ctxs[0].Err() == nil {
		t.Fatal("the connection's context outlived the root context")
	}
}

func TestNotAllowedNeverDials(t *testing.T) {
	d := &fakeDialer{conns: []*fakeConn{newFake()}}
	r, _ := newFakeRemediator(t, d, "a.service")
	_, err := r.Remedy(t.Context(), "b.service", Restart, time.Second)
	if !errors.Is(err, ErrNotAllowed) {
		t.Fatalf("error = %v, want ErrNotAllowed", err)
	}
	if d.count() != 0 {
		t.Errorf("dialed %d times", d.count())
	}
	if _, err := r.Remedy(t.Context(), "a.service", "stop", time.Second); !errors.Is(err, ErrUnknownAction) {
		t.Errorf("unknown action error = %v", err)
	}
}

func TestJobResultComesOnTheChannel(t *testing.T) {
	c := newFake()
	c.onQueue = func(f *fakeConn, ch chan<- string) { ch <- JobDone }
	d := &fakeDialer{conns: []*fakeConn{c}}
	r, _ := newFakeRemediator(t, d, "a.service")
	out, err := r.Remedy(t.Context(), "a.service", Restart, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out.JobResult != JobDone || out.JobResultInferred || out.Attempts != 1 || out.Job != 42 || c.lastMode != "replace" {
		t.Errorf("outcome = %+v, mode %q", out, c.lastMode)
	}
}

func TestConnectionLostWhileWaitingForJob(t *testing.T) {
	c1, c2 := newFake(), newFake()
	// The job is queued, then the bus drops before its result arrives.
	c1.onQueue = func(f *fakeConn, ch chan<- string) {
		time.AfterFunc(20*time.Millisecond, f.drop)
	}
	d := &fakeDialer{conns: []*fakeConn{c1, c2}}
	r, _ := newFakeRemediator(t, d, "a.service")
	out, err := r.Remedy(t.Context(), "a.service", Restart, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	// On the new connection the unit has no job and is active: done,
	// judged from the state.
	if out.JobResult != JobDone || !out.JobResultInferred || out.WaitedForJob || out.Attempts != 1 || d.count() != 2 {
		t.Errorf("outcome = %+v, dials %d", out, d.count())
	}
}

func TestConnectionLostBetweenCallsIsRedialedBeforeActing(t *testing.T) {
	c1, c2 := newFake(), newFake()
	d := &fakeDialer{conns: []*fakeConn{c1, c2}}
	r, _ := newFakeRemediator(t, d, "a.service")
	if _, err := r.State(t.Context(), "a.service"); err != nil {
		t.Fatal(err)
	}
	c1.drop()
	c2.onQueue = func(f *fakeConn, ch chan<- string) { ch <- JobDone }
	out, err := r.Remedy(t.Context(), "a.service", Restart, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if out.JobResult != JobDone || out.Attempts != 1 || c2.queued != 1 || !c1.closed {
		t.Errorf("outcome = %+v, queued on new conn %d", out, c2.queued)
	}
}

// The queue call fails with a disconnect, but systemd did queue the job:
// after the redial Remedy finds it pending and follows it rather than
// queueing a second restart.
func TestQueueFailingWithDisconnectFollowsThePendingJob(t *testing.T) {
	c1, c2 := newFake(), newFake()
	c1.queueErr = io.EOF
	c2.job = 42
	c2.active = "activating"
	d := &fakeDialer{conns: []*fakeConn{c1, c2}}
	r, _ := newFakeRemediator(t, d, "a.service")
	time.AfterFunc(30*time.Millisecond, func() {
		c2.mu.Lock()
		c2.job, c2.active = 0, "active"
		c2.mu.Unlock()
	})
	out, err := r.Remedy(t.Context(), "a.service", Restart, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if c2.queued != 0 || out.Job != 42 || out.JobResult != JobDone || !out.JobResultInferred || !c1.closed {
		t.Errorf("outcome = %+v, queued again %d times", out, c2.queued)
	}
}

func TestContextEndsWaitForJob(t *testing.T) {
	c := newFake() // never sends a result
	d := &fakeDialer{conns: []*fakeConn{c}}
	r, _ := newFakeRemediator(t, d, "a.service")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	_, err := r.Remedy(ctx, "a.service", Restart, time.Minute)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want context.DeadlineExceeded", err)
	}
}

func TestJobTimeoutWithoutResult(t *testing.T) {
	c := newFake()
	d := &fakeDialer{conns: []*fakeConn{c}}
	r, _ := newFakeRemediator(t, d, "a.service")
	out, err := r.Remedy(t.Context(), "a.service", Start, 30*time.Millisecond)
	if !errors.Is(err, ErrJobTimeout) || out.JobResult != JobTimeout {
		t.Fatalf("Remedy = %+v, %v; want ErrJobTimeout and JobResult timeout", out, err)
	}
	if !strings.Contains(err.Error(), "timeout waiting for job") {
		t.Errorf("error text = %q", err)
	}
}

func TestDialUnknownBus(t *testing.T) {
	_, err := Dial("session")(t.Context())
	if err == nil || !strings.Contains(err.Error(), "connect to systemd session bus: unknown bus") {
		t.Fatalf("Dial(session) error = %v", err)
	}
}

func TestDialUserBusErrorText(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/medic/bus")
	_, err := Dial("user")(t.Context())
	if err == nil || !strings.HasPrefix(err.Error(), "connect to systemd user bus: ") {
		t.Fatalf("Dial(user) error = %v", err)
	}
}

func TestDialUserBusWithoutAddressDoesNotAutolaunch(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "")
	if sessionBusKnown() {
		t.Skip("/run/user/<uid>/bus exists here")
	}
	_, err := Dial("user")(t.Context())
	if err == nil || !strings.Contains(err.Error(), "DBUS_SESSION_BUS_ADDRESS is not set") {
		t.Fatalf("Dial(user) error = %v", err)
	}
}

func TestUnitStateFromProperties(t *testing.T) {
	s := unitStateFrom("x.service", map[string]any{
		"Id": "x.service", "LoadState": "loaded", "ActiveState": "failed", "SubState": "failed",
		"Result": "signal", "ExecMainCode": int32(2), "ExecMainStatus": int32(9),
		"NRestarts": uint32(3), "MainPID": uint32(0), "ControlGroup": "",
		"ActiveEnterTimestamp":   uint64(1_700_000_000_123_456),
		"InactiveEnterTimestamp": uint64(0),
		"Job":                    []any{uint32(7), godbus.ObjectPath("/org/freedesktop/systemd1/job/7")},
	})
	if s.ExecMainCode != 2 || s.ExecMainStatus != 9 || s.NRestarts != 3 || s.Job != 7 || s.Result != "signal" {
		t.Errorf("state = %v", s)
	}
	if !s.ActiveEnterTimestamp.Equal(time.UnixMicro(1_700_000_000_123_456)) || !s.InactiveEnterTimestamp.IsZero() {
		t.Errorf("timestamps = %v, %v", s.ActiveEnterTimestamp, s.InactiveEnterTimestamp)
	}
	if got := s.String(); !strings.Contains(got, "x.service loaded failed/failed result=signal code=2 status=9") {
		t.Errorf("String() = %q", got)
	}
}

// A restart that polkit refuses comes back as ErrNotAuthorized with the
// unit, the verb and systemd's own words, on the connection it was asked
// on (no redial: the bus is fine). The fake stands in for polkit's answer,
// which a user manager never gives (it lets its own user do anything);
// ostest checks the real answer of polkit under PID-1 systemd.
func TestRefusedRestartIsNotAuthorized(t *testing.T) {
	for _, name := range []string{dbusErrInteractiveAuth, dbusErrAccessDenied} {
		c := newFake()
		c.refuse = godbus.Error{Name: name, Body: []any{"Interactive authentication required."}}
		d := &fakeDialer{conns: []*fakeConn{c}}
		r, _ := newFakeRemediator(t, d, "a.service")
		_, err := r.Remedy(t.Context(), "a.service", Restart, 5*time.Second)
		if !errors.Is(err, ErrNotAuthorized) {
			t.Fatalf("%s: err = %v, want ErrNotAuthorized", name, err)
		}
		var ae *AuthorizationError
		if !errors.As(err, &ae) || ae.Unit != "a.service" || ae.Verb != "restart" || ae.Name != name {
			t.Fatalf("%s: err = %#v", name, ae)
		}
		if want := "not authorized to restart a.service: Interactive authentication required."; !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %q does not say %q", name, err, want)
		}
		if d.count() != 1 || c.closed {
			t.Errorf("%s: dialed %d times, closed %v: a refusal is not a lost bus", name, d.count(), c.closed)
		}
	}
	// Other D-Bus errors stay what they are.
	c := newFake()
	c.refuse = godbus.Error{Name: "org.freedesktop.systemd1.NoSuchUnit", Body: []any{"Unit a.service not found."}}
	r, _ := newFakeRemediator(t, &fakeDialer{conns: []*fakeConn{c}}, "a.service")
	if _, err := r.Remedy(t.Context(), "a.service", Restart, 5*time.Second); err == nil || errors.Is(err, ErrNotAuthorized) {
		t.Errorf("NoSuchUnit: err = %v, want an error that is not ErrNotAuthorized", err)
	}
}

// TestBusError: nil before any dial, the dial's error while the bus cannot
// be reached (for medic status), without dialing again itself.
func TestBusError(t *testing.T) {
	t.Setenv("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/medic/bus")
	r := New(t.Context(), Dial("user"), []string{"app.service"}, nil)
	defer r.Close()
	if err := r.BusError(); err != nil {
		t.Fatalf("BusError before any dial = %v, want nil", err)
	}
	if err := r.Connect(t.Context()); err == nil {
		t.Fatal("Connect to a bus that does not exist succeeded")
	}
	err := r.BusError()
	if err == nil || !strings.Contains(err.Error(), "/nonexistent/medic/bus") {
		t.Errorf("BusError after a failed dial = %v, want the dial's error naming the bus", err)
	}
}
