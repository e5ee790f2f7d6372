package sched

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// runScheduler serves s until the test ends.
func runScheduler(t testing.TB, s *Scheduler) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

// recorder collects the names of the entries that ran, in order.
type recorder struct {
	mu   sync.Mutex
	ran  []string
	when map[string]time.Time
	dues map[string]time.Time
	all  chan struct{}
	want int
}

func newRecorder(want int) *recorder {
	return &recorder{when: map[string]time.Time{}, dues: map[string]time.Time{}, all: make(chan struct{}), want: want}
}

func (r *recorder) entry(name string) *Entry {
	return NewEntry(func(due time.Time) {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.ran = append(r.ran, name)
		r.when[name], r.dues[name] = time.Now(), due
		if len(r.ran) == r.want {
			close(r.all)
		}
	})
}

func (r *recorder) wait(t *testing.T) []string {
	t.Helper()
	select {
	case <-r.all:
	case <-time.After(5 * time.Second):
		t.Fatalf("only %q ran", r.ran)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.ran)
}

func TestScheduler(t *testing.T) {
	type op struct {
		name   string
		at     time.Duration // from the start
		cancel bool          // cancel the entry instead of scheduling it
	}
	tests := []struct {
		name      string
		beforeRun bool // schedule everything before the loop runs
		ops       []op
		wantRan   []string
	}{
		{"in order of time", false, []op{{"c", 300 * time.Millisecond, false}, {"a", 100 * time.Millisecond, false}, {"b", 200 * time.Millisecond, false}}, []string{"a", "b", "c"}},
		{"past entries at once, oldest first", true, []op{{"b", -time.Millisecond, false}, {"a", -time.Second, false}}, []string{"a", "b"}},
		{"rescheduled entry moves", false, []op{{"a", 100 * time.Millisecond, false}, {"b", 200 * time.Millisecond, false}, {"a", 300 * time.Millisecond, false}}, []string{"b", "a"}},
		{"cancelled entry never runs", false, []op{{"a", 100 * time.Millisecond, false}, {"b", 200 * time.Millisecond, false}, {"a", 0, true}}, []string{"b"}},
		{"earlier entry wakes a sleeping loop", false, []op{{"late", 400 * time.Millisecond, false}, {"early", 5 * time.Millisecond, false}}, []string{"early", "late"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(0)
			if !tt.beforeRun {
				runScheduler(t, s)
			}
			rec := newRecorder(len(tt.wantRan))
			entries := map[string]*Entry{}
			start := time.Now()
			for _, o := range tt.ops {
				e := entries[o.name]
				if e == nil {
					e = rec.entry(o.name)
					entries[o.name] = e
				}
				if o.cancel {
					if !s.Cancel(e) {
						t.Fatalf("Cancel(%s) = false, want true", o.name)
					}
					continue
				}
				s.Schedule(e, start.Add(o.at))
				// Let the loop go to sleep between schedules, so that the
				// kick of an earlier entry is what wakes it.
				time.Sleep(time.Millisecond)
			}
			if tt.beforeRun {
				runScheduler(t, s)
			}
			got := rec.wait(t)
			time.Sleep(50 * time.Millisecond) // nothing else runs
			rec.mu.Lock()
			got = slices.Clone(rec.ran)
			rec.mu.Unlock()
			if !slices.Equal(got, tt.wantRan) {
				t.Errorf("ran %q, want %q", got, tt.wantRan)
			}
			for name, at := range rec.when {
				if due := rec.dues[name]; at.Before(due.Add(-2 * DefaultCoalesce)) {
					t.Errorf("%s ran %s before it was due", name, due.Sub(at))
				}
			}
			if n := s.Len(); n != 0 {
				t.Errorf("%d entries left", n)
			}
		})
	}
}

// TestSchedulerCoalesces: entries due within the coalescing window start
// in one wake-up of the loop.
func TestSchedulerCoalesces(t *testing.T) {
	s := New(20 * time.Millisecond)
	const n = 100
	rec := newRecorder(n)
	start := time.Now().Add(100 * time.Millisecond)
	for i := range n {
		// Spread over 10 ms: all within one window.
		s.Schedule(rec.entry("e"), start.Add(time.Duration(i)*100*time.Microsecond))
	}
	runScheduler(t, s)
	rec.wait(t)
	wakeUps, started := s.Stats()
	if started != n {
		t.Errorf("started %d, want %d", started, n)
	}
	// The first round, the sleep until start, and at most a couple more.
	if wakeUps > 4 {
		t.Errorf("%d wake-ups for %d entries due within one window; want at most 4", wakeUps, n)
	}
}

// TestSchedulerCallbackReschedules: a callback may schedule its own entry
// again, as a check arms its next probe.
func TestSchedulerCallbackReschedules(t *testing.T) {
	s := New(0)
	var n atomic.Int32
	done := make(chan struct{})
	var e *Entry
	e = NewEntry(func(time.Time) {
		if n.Add(1) == 5 {
			close(done)
			return
		}
		s.Schedule(e, time.Now().Add(5*time.Millisecond))
	})
	s.Schedule(e, time.Now())
	runScheduler(t, s)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatalf("ran %d times, want 5", n.Load())
	}
	if s.Scheduled(e) {
		t.Error("entry still scheduled after its last run")
	}
}

// TestSchedulerHeartbeat: the loop comes round at least every second with
// nothing scheduled, so a watchdog can tell it from a wedged one.
func TestSchedulerHeartbeat(t *testing.T) {
	if testing.Short() {
		t.Skip("waits over a second")
	}
	s := New(0)
	if !s.LastLoop().IsZero() {
		t.Fatal("LastLoop before Run is not zero")
	}
	runScheduler(t, s)
	time.Sleep(1500 * time.Millisecond)
	if age := time.Since(s.LastLoop()); age > 1100*time.Millisecond {
		t.Errorf("last loop %s ago with nothing scheduled; want within a second", age)
	}
}

func TestPool(t *testing.T) {
	tests := []struct {
		name       string
		size       int
		tasks      int
		hang       int           // tasks among them that block for hold
		hold       time.Duration // how long a hanging task blocks
		stall      time.Duration
		wantMaxIn  int // most tasks running at once that are not hanging; 0: no bound checked
		wantWithin time.Duration
	}{
		{"runs every task", 2, 100, 0, 0, time.Hour, 2, 2 * time.Second},
		{"one worker serialises", 1, 20, 0, 0, time.Hour, 1, 2 * time.Second},
		// 40 tasks that hang for 300 ms on 2 workers: without giving the
		// slots of stalled workers up, the quick ones would wait 6 s. (A
		// quick task that a busy machine slows past the stall time gives
		// its slot up too: no bound on how many run at once.)
		{"hung tasks do not delay the others", 2, 200, 40, 300 * time.Millisecond, 5 * time.Millisecond, 0, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool(tt.size, tt.stall, 0)
			var running, maxRunning, done atomic.Int32
			var wg sync.WaitGroup
			start := time.Now()
			var quickDone atomic.Int64
			for i := range tt.tasks {
				wg.Add(1)
				hang := i%(max(1, tt.tasks/max(1, tt.hang))) == 0 && tt.hang > 0
				p.Submit(func() {
					defer wg.Done()
					defer done.Add(1)
					if hang {
						time.Sleep(tt.hold)
						return
					}
					n := running.Add(1)
					for {
						m := maxRunning.Load()
						if n <= m || maxRunning.CompareAndSwap(m, n) {
							break
						}
					}
					time.Sleep(100 * time.Microsecond) // a quick probe
					running.Add(-1)
					quickDone.Store(int64(time.Since(start)))
				})
			}
			wg.Wait()
			p.Close()
			if n := done.Load(); int(n) != tt.tasks {
				t.Errorf("%d tasks ran, want %d", n, tt.tasks)
			}
			if tt.wantMaxIn > 0 && int(maxRunning.Load()) > tt.wantMaxIn {
				t.Errorf("%d quick tasks ran at once on %d workers", maxRunning.Load(), tt.size)
			}
			if d := time.Duration(quickDone.Load()); d > tt.wantWithin {
				t.Errorf("the quick tasks took %s, want within %s", d, tt.wantWithin)
			}
			if n := p.Workers(); n != 0 {
				t.Errorf("%d workers left after Close", n)
			}
		})
	}
}

// TestPoolCloseRunsQueued: Close runs what is queued before it returns,
// and Submit after Close drops the task.
func TestPoolCloseRunsQueued(t *testing.T) {
	p := NewPool(1, 0, 0)
	block := make(chan struct{})
	p.Submit(func() { <-block })
	var ran atomic.Int32
	for range 10 {
		p.Submit(func() { ran.Add(1) })
	}
	closed := make(chan struct{})
	go func() { p.Close(); close(closed) }()
	time.Sleep(10 * time.Millisecond)
	close(block)
	<-closed
	if n := ran.Load(); n != 10 {
		t.Errorf("%d queued tasks ran at Close, want 10", n)
	}
	if p.Submit(func() { t.Error("task ran after Close") }) {
		t.Error("Submit after Close = true")
	}
}

// TestPoolWedged: a pool whose tasks wait while nothing starts is wedged;
// a busy pool that keeps starting tasks is not.
func TestPoolWedged(t *testing.T) {
	p := NewPool(1, time.Hour, 1) // one worker that may never be replaced
	defer p.Close()
	if p.Wedged(time.Now(), 0) {
		t.Fatal("idle pool reads wedged")
	}
	block := make(chan struct{})
	p.Submit(func() { <-block })
	p.Submit(func() {})
	time.Sleep(20 * time.Millisecond)
	if !p.Wedged(time.Now(), 10*time.Millisecond) {
		t.Error("pool with a task waiting behind a blocked worker for 20 ms does not read wedged at 10 ms")
	}
	if p.Wedged(time.Now(), time.Second) {
		t.Error("pool reads wedged at a limit of 1 s after 20 ms")
	}
	close(block)
}

func TestDefaultWorkers(t *testing.T) {
	for _, tt := range []struct{ cpus, want int }{{1, 64}, {2, 128}, {8, 512}, {64, 1024}} {
		if got := DefaultWorkers(tt.cpus); got != tt.want {
			t.Errorf("DefaultWorkers(%d) = %d, want %d", tt.cpus, got, tt.want)
		}
	}
}

// BenchmarkScheduler measures a round of n checks, each rescheduling
// itself an interval later, through the Scheduler and a Pool: the cost of
// the engine per probe round with the probe itself left out.
func BenchmarkScheduler(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			s := New(0)
			p := NewPool(DefaultWorkers(2), 0, 0)
			defer p.Close()
			var left atomic.Int64
			left.Store(int64(b.N))
			done := make(chan struct{})
			entries := make([]*Entry, n)
			for i := range entries {
				var e *Entry
				e = NewEntry(func(time.Time) {
					p.Submit(func() {
						switch v := left.Add(-1); {
						case v == 0:
							close(done)
						case v > 0:
							s.Schedule(e, time.Now().Add(time.Duration(n)*time.Microsecond))
						}
					})
				})
				entries[i] = e
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i, e := range entries {
				s.Schedule(e, time.Now().Add(time.Duration(i)*time.Microsecond))
			}
			runScheduler(b, s)
			<-done
			b.StopTimer()
			wakeUps, started := s.Stats()
			b.ReportMetric(float64(started)/float64(max(1, wakeUps)), "entries/wake-up")
		})
	}
}

func TestCoalesceFor(t *testing.T) {
	for _, tt := range []struct{ interval, want time.Duration }{
		{time.Second, 10 * time.Millisecond},
		{10 * time.Second, MaxCoalesce},
		{500 * time.Millisecond, 5 * time.Millisecond},
		{50 * time.Millisecond, time.Millisecond},
		{0, time.Millisecond},
	} {
		if got := CoalesceFor(tt.interval); got != tt.want {
			t.Errorf("CoalesceFor(%v) = %v, want %v", tt.interval, got, tt.want)
		}
	}
}

// TestSetCoalesce checks that a wider window starts an entry due later
// together with one due now.
func TestSetCoalesce(t *testing.T) {
	s := New(time.Millisecond)
	s.SetCoalesce(200 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	ran := make(chan time.Time, 2)
	now := time.Now()
	s.Schedule(NewEntry(func(time.Time) { ran <- time.Now() }), now.Add(20*time.Millisecond))
	s.Schedule(NewEntry(func(time.Time) { ran <- time.Now() }), now.Add(150*time.Millisecond))
	a, b := <-ran, <-ran
	if d := b.Sub(a); d > 50*time.Millisecond {
		t.Errorf("entries 130ms apart started %v apart with a 200ms window, want together", d)
	}
}

// TestPoolStartsWorkersAsNeeded checks that a Pool starts a worker only
// when no idle one can take a task, up to its size.
func TestPoolStartsWorkersAsNeeded(t *testing.T) {
	p := NewPool(8, time.Hour, 0)
	defer p.Close()
	if n := p.Workers(); n != 0 {
		t.Fatalf("a new Pool has %d workers, want 0 until tasks arrive", n)
	}
	for range 20 {
		done := make(chan struct{})
		p.Submit(func() { close(done) })
		<-done
		// Let the worker park again before the next task.
		for deadline := time.Now().Add(time.Second); p.idleWorkers() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	if n := p.Workers(); n != 1 {
		t.Errorf("20 tasks one after another started %d workers, want 1", n)
	}
	release := make(chan struct{})
	for range 12 {
		p.Submit(func() { <-release })
	}
	if n := p.Workers(); n != 8 {
		t.Errorf("12 blocked tasks started %d workers, want the Pool's size 8", n)
	}
	close(release)
}

// idleWorkers is the number of workers waiting for a task.
func (p *Pool) idleWorkers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle
}

// TestAfterBatch checks that the hook runs once after each batch that
// started entries, after their callbacks, on the loop's goroutine.
func TestAfterBatch(t *testing.T) {
	s := New(50 * time.Millisecond)
	var (
		mu      sync.Mutex
		ran     []string
		batches = make(chan []string, 4)
	)
	s.AfterBatch(func() {
		mu.Lock()
		defer mu.Unlock()
		batches <- ran
		ran = nil
	})
	now := time.Now()
	for i, at := range []time.Duration{20 * time.Millisecond, 30 * time.Millisecond, 300 * time.Millisecond} {
		name := fmt.Sprint("e", i)
		s.Schedule(NewEntry(func(time.Time) { mu.Lock(); ran = append(ran, name); mu.Unlock() }), now.Add(at))
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	first, second := <-batches, <-batches
	if len(first) != 2 || len(second) != 1 {
		t.Errorf("batches %v then %v, want the two entries 10ms apart together, then the third", first, second)
	}
	select {
	case b := <-batches:
		t.Errorf("a third batch %v with nothing due", b)
	case <-time.After(100 * time.Millisecond):
	}
}
