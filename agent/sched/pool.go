package sched

import (
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultStall is the Pool's stall time when NewPool is given 0: a task
// that has run this long is waiting on something (a target that does not
// answer), not using a CPU.
const DefaultStall = 10 * time.Millisecond

// DefaultMaxWorkers bounds the workers of a Pool, stalled ones included,
// when NewPool is given 0.
const DefaultMaxWorkers = 16384

// DefaultWorkers is the pool size for n CPUs: 64 workers per CPU, at least
// 64 and at most 1024. A probe of a loopback target uses a CPU for about a
// hundred microseconds but takes a millisecond or more from connect to
// close (the connection completes in the kernel, then the network poller
// wakes the prober), and on a busy host many times that, so 10,000 probes a
// second need tens in flight. A parked worker costs a few kilobytes; the
// bound still keeps a host short of CPU from running thousands of probes
// at once, each slower. (The bench, 10,000 checks of which 5,000 hang, on 2
// CPUs: 128 workers probed the healthy half 30 % more often than 32.)
func DefaultWorkers(n int) int { return min(1024, max(64, 64*n)) }

// AutoWorkers is DefaultWorkers of this machine's CPUs.
func AutoWorkers() int { return DefaultWorkers(runtime.NumCPU()) }

// Pool runs tasks, first in first out, on a fixed number of workers.
//
// A worker whose task has run longer than the stall time (a probe waiting
// on a target that does not answer) gives its place up: a new worker takes
// its slot at once, and the stalled one ends when its task returns. So a
// hung target holds a slot for the stall time only, never for its whole
// timeout, and cannot delay the tasks queued behind it; the number of
// tasks using a CPU stays bounded by the pool's size, so that a machine
// that is short of CPU runs tasks late rather than many at once (each
// slower). The workers of a Pool, stalled ones included, never exceed its
// maximum.
type Pool struct {
	size       int
	stall      time.Duration
	maxWorkers int

	mu      sync.Mutex
	cond    *sync.Cond
	queue   []func()
	head    int
	idle    int
	workers []*worker // the slots: never more than size
	total   int       // worker goroutines, stalled ones included
	closed  bool
	spill   *time.Timer
	armed   bool

	progress  atomic.Int64 // unix nanoseconds of the last task start
	stalled   atomic.Int64 // workers that gave their slot up, in all
	completed atomic.Int64
	lane      atomic.Int64 // tasks running on goroutines of their own
	wg        sync.WaitGroup
}

type worker struct {
	started  atomic.Int64 // unix nanoseconds the current task started; 0 idle
	detached bool         // guarded by Pool.mu
}

// NewPool returns a Pool of size workers (at least 1), started as tasks
// arrive: a Pool whose tasks are few never starts them all. stall is the time
// after which a running task gives its worker's slot up (0:
// DefaultStall); maxWorkers bounds all workers (0: DefaultMaxWorkers).
func NewPool(size int, stall time.Duration, maxWorkers int) *Pool {
	size = max(1, size)
	if stall <= 0 {
		stall = DefaultStall
	}
	if maxWorkers <= 0 {
		maxWorkers = DefaultMaxWorkers
	}
	p := &Pool{size: size, stall: stall, maxWorkers: max(size, maxWorkers)}
	p.cond = sync.NewCond(&p.mu)
	p.progress.Store(time.Now().UnixNano())
	return p
}

// Size is the number of worker slots.
func (p *Pool) Size() int { return p.size }

// startLocked starts a worker in a new slot; p.mu is held.
func (p *Pool) startLocked() {
	w := &worker{}
	p.workers = append(p.workers, w)
	p.total++
	p.wg.Add(1)
	go p.work(w)
}

// Submit queues fn; it never blocks. It reports false, and drops fn, once
// the Pool is closed.
func (p *Pool) Submit(fn func()) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	if p.head == len(p.queue) {
		// The queue starts waiting now: Wedged measures from here.
		p.progress.Store(time.Now().UnixNano())
	}
	p.queue = append(p.queue, fn)
	if p.idle > 0 {
		// The worker woken is no longer idle from now on: the next
		// Submit must not count on it.
		p.idle--
		p.cond.Signal()
		return true
	}
	if len(p.workers) < p.size && p.total < p.maxWorkers {
		p.startLocked()
		return true
	}
	p.scanLocked(time.Now())
	if !p.armed {
		p.armed = true
		if p.spill == nil {
			p.spill = time.AfterFunc(p.stall, p.onSpill)
		} else {
			p.spill.Reset(p.stall)
		}
	}
	return true
}

// onSpill runs while tasks wait and no worker is idle: it frees the slots
// of stalled workers, and comes back while the backlog lasts.
func (p *Pool) onSpill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armed = false
	if p.closed || p.head == len(p.queue) {
		return
	}
	p.scanLocked(time.Now())
	if p.head < len(p.queue) && p.idle == 0 {
		p.armed = true
		p.spill.Reset(p.stall)
	}
}

// scanLocked gives the slot of every worker whose task has run longer
// than the stall time to a new worker; p.mu is held.
func (p *Pool) scanLocked(now time.Time) {
	limit := now.Add(-p.stall).UnixNano()
	for i, w := range p.workers {
		if p.total >= p.maxWorkers {
			return
		}
		s := w.started.Load()
		if s == 0 || s > limit {
			continue
		}
		w.detached = true
		p.stalled.Add(1)
		nw := &worker{}
		p.workers[i] = nw
		p.total++
		p.wg.Add(1)
		go p.work(nw)
	}
}

func (p *Pool) work(w *worker) {
	defer p.wg.Done()
	p.mu.Lock()
	for {
		for p.head == len(p.queue) && !p.closed {
			p.idle++ // Submit takes it off when it wakes this worker
			p.cond.Wait()
		}
		if p.head == len(p.queue) { // closed and drained
			p.total--
			p.mu.Unlock()
			return
		}
		fn := p.queue[p.head]
		p.queue[p.head] = nil
		p.head++
		if p.head == len(p.queue) {
			p.queue, p.head = p.queue[:0], 0
		} else if p.head >= 1024 && p.head*2 >= len(p.queue) {
			n := copy(p.queue, p.queue[p.head:])
			clear(p.queue[n:])
			p.queue, p.head = p.queue[:n], 0
		}
		p.mu.Unlock()

		start := time.Now().UnixNano()
		w.started.Store(start)
		p.progress.Store(start)
		fn()
		w.started.Store(0)
		p.completed.Add(1)

		p.mu.Lock()
		if w.detached {
			p.total--
			p.mu.Unlock()
			return
		}
	}
}

// Go runs fn at once on a goroutine of its own, outside the workers'
// slots: for a task known to wait long (a probe of a target that did not
// answer last time), which would only hold a slot until it stalled. It
// reports false, and drops fn, once the Pool is closed.
func (p *Pool) Go(fn func()) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	p.total++
	p.wg.Add(1)
	p.mu.Unlock()
	p.lane.Add(1)
	go func() {
		defer p.wg.Done()
		fn()
		p.lane.Add(-1)
		p.mu.Lock()
		p.total--
		p.mu.Unlock()
	}()
	return true
}

// Lane is the number of tasks running on goroutines of their own (Go).
func (p *Pool) Lane() int { return int(p.lane.Load()) }

// Close stops taking tasks, lets the workers run what is queued, and
// waits for every worker, stalled ones included, to end.
func (p *Pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.idle = 0
	if p.spill != nil {
		p.spill.Stop()
	}
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// Queued is the number of tasks waiting for a worker.
func (p *Pool) Queued() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue) - p.head
}

// Workers is the number of worker goroutines, stalled ones included.
func (p *Pool) Workers() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.total
}

// Stats reports the tasks completed and the workers that gave their slot
// up because their task stalled, since the Pool started.
func (p *Pool) Stats() (completed, stalled int64) { return p.completed.Load(), p.stalled.Load() }

// Wedged reports whether tasks have waited while no task started for
// longer than limit: the Pool makes no progress. A watchdog reads it.
func (p *Pool) Wedged(now time.Time, limit time.Duration) bool {
	if p.Queued() == 0 {
		return false
	}
	return now.Sub(time.Unix(0, p.progress.Load())) > limit
}
