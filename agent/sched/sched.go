// Package sched is medic's check engine clock and hands: one Scheduler (a
// timer min-heap served by one goroutine and one time.Timer) that starts
// whatever is due in batches, and one Pool, a fixed set of workers that
// runs what the Scheduler starts.
//
// The model is the kubelet prober (pkg/kubelet/prober) with its per-worker
// timers folded into one heap: on a small machine a wake-up costs more than
// a loopback probe, so the Scheduler wakes at most every few milliseconds
// (its coalescing window) and starts everything due by then. Nothing here
// knows about checks, probes or policy; package agent builds on it.
package sched

import (
	"container/heap"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultCoalesce is the coalescing window of New: entries due within it
// start together, so the Scheduler wakes at most about this often.
const DefaultCoalesce = 2 * time.Millisecond

// MaxCoalesce bounds the window CoalesceFor gives.
const MaxCoalesce = 10 * time.Millisecond

// CoalesceFor is the coalescing window for entries that recur every
// interval at the shortest: 1 % of it, from 1 ms to MaxCoalesce. An entry
// then starts at most 1 % of its interval early, and the Scheduler wakes
// at most every 10 ms for checks at a 1 s interval: on a small machine
// those wake-ups, not the probes, are what a thousand checks cost (the
// bench, 1,000 TCP checks at 1 s on 2 CPUs: 86 µs of CPU per probe waking
// every 2 ms, 69 µs every 10 ms).
func CoalesceFor(interval time.Duration) time.Duration {
	return min(MaxCoalesce, max(time.Millisecond, interval/100))
}

// maxSleep bounds how long the Scheduler's loop sleeps with nothing due,
// so that its heartbeat (LastLoop) stays fresh for a watchdog.
const maxSleep = time.Second

// Entry is one scheduled callback. An Entry is in the Scheduler at most
// once: Schedule moves it, Cancel takes it out. Its callback runs on the
// Scheduler's goroutine and must not block (hand the work to a Pool).
type Entry struct {
	fn    func(due time.Time)
	at    time.Time
	index int // in the heap; -1 when not scheduled
}

// NewEntry returns an unscheduled Entry that calls fn with the time it
// was due.
func NewEntry(fn func(due time.Time)) *Entry { return &Entry{fn: fn, index: -1} }

// Scheduler runs Entries at their time, in batches. The zero value is not
// usable; call New.
type Scheduler struct {
	coalesce atomic.Int64 // nanoseconds

	mu      sync.Mutex
	h       entryHeap
	wakeAt  time.Time     // when the loop is armed to wake; zero: not sleeping
	kick    chan struct{} // buffered 1: an earlier entry than wakeAt arrived
	batch   []*Entry      // reused by the loop
	running bool

	afterBatch func() // see AfterBatch; set before Run

	loops   atomic.Int64 // unix nanoseconds of the loop's last round
	started atomic.Int64 // entries started
	wakeUps atomic.Int64 // rounds of the loop
}

// New returns a Scheduler that starts, at each wake-up, every entry due
// within coalesce (0: DefaultCoalesce).
func New(coalesce time.Duration) *Scheduler {
	if coalesce <= 0 {
		coalesce = DefaultCoalesce
	}
	s := &Scheduler{kick: make(chan struct{}, 1)}
	s.coalesce.Store(int64(coalesce))
	return s
}

// SetCoalesce changes the coalescing window (0: DefaultCoalesce) from the
// loop's next round on.
func (s *Scheduler) SetCoalesce(d time.Duration) {
	if d <= 0 {
		d = DefaultCoalesce
	}
	s.coalesce.Store(int64(d))
}

// AfterBatch sets f to run on the loop's goroutine after the callbacks of
// each batch that started any: callbacks that only collect work can hand
// it out once per batch. Call it before Run.
func (s *Scheduler) AfterBatch(f func()) { s.afterBatch = f }

// Schedule (re)schedules e to run at at (on the monotonic clock: pass
// time.Now().Add(d)). An entry already scheduled is moved.
func (s *Scheduler) Schedule(e *Entry, at time.Time) {
	s.mu.Lock()
	e.at = at
	if e.index >= 0 {
		heap.Fix(&s.h, e.index)
	} else {
		heap.Push(&s.h, e)
	}
	kick := e.index == 0 && (s.wakeAt.IsZero() || at.Before(s.wakeAt))
	s.mu.Unlock()
	if kick {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Cancel takes e out of the Scheduler; it reports whether e was
// scheduled. A callback that the loop already took runs nevertheless.
func (s *Scheduler) Cancel(e *Entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if e.index < 0 {
		return false
	}
	heap.Remove(&s.h, e.index)
	return true
}

// Scheduled reports whether e waits in the Scheduler.
func (s *Scheduler) Scheduled(e *Entry) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return e.index >= 0
}

// Len is the number of entries waiting.
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}

// Stats reports how many rounds the loop made and how many entries it
// started, for tests and benchmarks.
func (s *Scheduler) Stats() (wakeUps, started int64) { return s.wakeUps.Load(), s.started.Load() }

// LastLoop is when the loop last came round (it does at least every
// second while Run runs); zero before Run. A watchdog reads it.
func (s *Scheduler) LastLoop() time.Time {
	n := s.loops.Load()
	if n == 0 {
		return time.Time{}
	}
	return time.Unix(0, n)
}

// Run serves the Scheduler until ctx ends. Only one Run may serve a
// Scheduler at a time.
func (s *Scheduler) Run(ctx context.Context) {
	s.mu.Lock()
	if s.running {
		s.mu.Unlock()
		panic("sched: Run called twice")
	}
	s.running = true
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		s.running, s.wakeAt = false, time.Time{}
		s.mu.Unlock()
	}()

	timer := time.NewTimer(maxSleep)
	defer timer.Stop()
	for {
		now := time.Now()
		s.loops.Store(now.UnixNano())
		s.wakeUps.Add(1)
		batch, next := s.due(now)
		s.started.Add(int64(len(batch)))
		for i, e := range batch {
			e.fn(e.at)
			batch[i] = nil
		}
		if len(batch) > 0 && s.afterBatch != nil {
			s.afterBatch()
		}
		s.mu.Lock()
		s.batch = batch[:0]
		// Entries scheduled by the callbacks above count too.
		if len(s.h) > 0 && s.h[0].at.Before(next) {
			next = s.h[0].at
		}
		sleep := max(0, min(next.Sub(time.Now()), maxSleep))
		s.wakeAt = time.Now().Add(sleep)
		s.mu.Unlock()
		timer.Reset(sleep)
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-s.kick:
			if !timer.Stop() {
				select {
				case <-timer.C:
				default:
				}
			}
		}
	}
}

// due takes every entry due by now+coalesce out of the heap, in order of
// their time, and returns them with the time of the next entry (now+maxSleep
// when none).
func (s *Scheduler) due(now time.Time) ([]*Entry, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	limit := now.Add(time.Duration(s.coalesce.Load()))
	batch := s.batch[:0]
	for len(s.h) > 0 && !s.h[0].at.After(limit) {
		batch = append(batch, heap.Pop(&s.h).(*Entry))
	}
	next := now.Add(maxSleep)
	if len(s.h) > 0 && s.h[0].at.Before(next) {
		next = s.h[0].at
	}
	return batch, next
}

// entryHeap is a min-heap of entries by time.
type entryHeap []*Entry

func (h entryHeap) Len() int           { return len(h) }
func (h entryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h entryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *entryHeap) Push(x any) {
	e := x.(*Entry)
	e.index = len(*h)
	*h = append(*h, e)
}

func (h *entryHeap) Pop() any {
	old := *h
	n := len(old)
	e := old[n-1]
	old[n-1] = nil
	e.index = -1
	*h = old[:n-1]
	return e
}
