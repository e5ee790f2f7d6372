package probe

import (
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Starter is a Prober that can start a probe without blocking its caller:
// no goroutine waits on the target while the probe is in flight. Start
// returns at once; done is called exactly once with the Result, either
// before Start returns (on the caller's goroutine: a loopback connect
// completes, or is refused, inside connect(2)) or later on the goroutine
// of a shared poller. done must not block. ctx and timeout bound the probe
// as they bound Prober.Probe.
//
// StarterOf tells which probes are Starters.
type Starter interface {
	Start(ctx context.Context, timeout time.Duration, done func(Result))
}

// StarterOf returns p as a Starter when p can probe without blocking: a
// TCP probe of an IP address (a host name needs a DNS lookup, which
// blocks). It returns nil otherwise.
func StarterOf(p Prober) Starter {
	if t, ok := p.(*TCP); ok && t.sa != nil {
		return t
	}
	return nil
}

// sockaddr is an IP address and port in the form connect(2) takes,
// built once per probe: the x/sys/unix Sockaddr types build theirs at
// every call, in place, which is not safe for concurrent use.
type sockaddr struct {
	ptr unsafe.Pointer // *unix.RawSockaddrInet4 or *unix.RawSockaddrInet6
	len uintptr
}

// sockaddrOf parses address as an IP literal with a port, once, into the
// sockaddr connect(2) takes, its socket family and the address that error
// texts name. It returns nil for a host name, a malformed address or an
// IPv6 address with a zone (the net package dials those).
func sockaddrOf(address string) (*sockaddr, int, *net.TCPAddr) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil || ap.Addr().Zone() != "" || !ap.Addr().IsValid() {
		return nil, 0, nil
	}
	addr := ap.Addr().Unmap()
	tcp := net.TCPAddrFromAddrPort(netip.AddrPortFrom(addr, ap.Port()))
	var port [2]byte
	binary.BigEndian.PutUint16(port[:], ap.Port())
	if addr.Is4() {
		raw := &unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: addr.As4()}
		raw.Port = *(*uint16)(unsafe.Pointer(&port))
		return &sockaddr{unsafe.Pointer(raw), unix.SizeofSockaddrInet4}, unix.AF_INET, tcp
	}
	raw := &unix.RawSockaddrInet6{Family: unix.AF_INET6, Addr: addr.As16()}
	raw.Port = *(*uint16)(unsafe.Pointer(&port))
	return &sockaddr{unsafe.Pointer(raw), unix.SizeofSockaddrInet6}, unix.AF_INET6, tcp
}

// connect calls connect(2) on the non-blocking socket fd. It does not
// block, so it runs as a raw system call.
func (sa *sockaddr) connect(fd int) error {
	_, _, e := unix.RawSyscall(unix.SYS_CONNECT, uintptr(fd), uintptr(sa.ptr), sa.len)
	if e != 0 {
		return e
	}
	return nil
}

// Start begins a probe of an IP-literal target (see StarterOf; a TCP of a
// host name runs Probe on a goroutine of its own instead). The socket is
// non-blocking: connect(2) completes or fails at once on loopback, where
// the handshake runs inside the call, and a second connect(2) reports how
// it ended; a connect still in progress is handed to the shared poller
// (one epoll(7) instance, one goroutine), which reads SO_ERROR when the
// socket turns writable, or gives up at the deadline. See connect(2),
// EINPROGRESS and EALREADY. The Result and its error texts are those of
// Probe.
func (p *TCP) Start(ctx context.Context, timeout time.Duration, done func(Result)) {
	if p.sa == nil {
		go func() { done(p.Probe(ctx, timeout)) }()
		return
	}
	start := time.Now()
	if ctx.Err() != nil {
		done(p.failed(start, p.ended(ctx)))
		return
	}
	fd, err := unix.Socket(p.family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		done(p.failed(start, p.opError(os.NewSyscallError("socket", err))))
		return
	}
	err = p.sa.connect(fd)
	if err == unix.EINPROGRESS {
		// On loopback the handshake has run by now: the second call says
		// how it ended (0 connected, the error, or EALREADY: in progress).
		err = p.sa.connect(fd)
		if err == unix.EISCONN {
			err = nil
		}
	}
	switch err {
	case nil:
		closeRaw(fd)
		done(pass(p.address, start))
	case unix.EALREADY, unix.EINPROGRESS, unix.EINTR:
		sharedPoller().add(ctx, p, fd, start, timeout, done)
	default:
		closeRaw(fd)
		done(p.failed(start, p.opError(os.NewSyscallError("connect", err))))
	}
}

// closeRaw closes fd with a raw close(2): on a socket without SO_LINGER
// it does not block, and a raw call keeps the caller's P (a Syscall that
// runs long may lose it to another goroutine and wait in the run queue
// before it goes on: the Scheduler's goroutine must not).
func closeRaw(fd int) {
	_, _, _ = unix.RawSyscall(unix.SYS_CLOSE, uintptr(fd), 0, 0)
}

// opError wraps err as the net package's dialer does, so the text reads
// "dial tcp 127.0.0.1:8080: connect: connection refused".
func (p *TCP) opError(err error) error {
	return &net.OpError{Op: "dial", Net: "tcp", Addr: p.tcpAddr, Err: err}
}

// failed is the Result of a failed probe started at start.
func (p *TCP) failed(start time.Time, err error) Result {
	return Result{OK: false, Class: Classify(err), Duration: elapsed(start), Err: boundErr(err), Target: p.address}
}

// poller waits for the connects that did not complete inside connect(2):
// one epoll(7) instance, served by one goroutine, with an eventfd(2) that
// wakes it when a connect with an earlier deadline arrives, and a min-heap
// of deadlines. Only its goroutine closes a socket it holds.
type poller struct {
	epfd, wakefd int

	mu      sync.Mutex
	pending map[int32]*connecting // by socket
	byTime  connectHeap
	seq     uint32
	sleep   time.Time // when the goroutine wakes at the latest; zero: not before an event
	woken   bool      // a wake-up is written and not yet read
}

// connecting is one connect in the poller.
type connecting struct {
	probe    *TCP
	fd       int32
	seq      uint32 // tells this socket from a later one with the same number
	start    time.Time
	deadline time.Time // start+timeout; far away for no timeout
	timeout  time.Duration
	done     func(Result)
	ctx      context.Context
	stop     func() bool // stops the context.AfterFunc
	cause    error       // why it ends early (its context ended); guarded by poller.mu
	index    int         // in byTime; -1 when out
}

var (
	pollerOnce sync.Once
	thePoller  *poller
)

// sharedPoller is the process' poller, started on first use. It lives as
// long as the process, as the net package's own poller does.
func sharedPoller() *poller {
	pollerOnce.Do(func() {
		p, err := newPoller()
		if err != nil {
			// epoll_create1 and eventfd fail only when the process is
			// out of file descriptors or memory at its first probe.
			panic(fmt.Sprintf("probe: start the connect poller: %v", err))
		}
		thePoller = p
		go p.run()
	})
	return thePoller
}

func newPoller() (*poller, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, os.NewSyscallError("epoll_create1", err)
	}
	wakefd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, os.NewSyscallError("eventfd", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wakefd)}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wakefd, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wakefd)
		return nil, os.NewSyscallError("epoll_ctl", err)
	}
	return &poller{epfd: epfd, wakefd: wakefd, pending: make(map[int32]*connecting)}, nil
}

// add hands the poller a socket whose connect is in progress.
func (pl *poller) add(ctx context.Context, p *TCP, fd int, start time.Time, timeout time.Duration, done func(Result)) {
	c := &connecting{probe: p, fd: int32(fd), start: start, timeout: timeout, done: done, ctx: ctx, index: -1}
	c.deadline = start.Add(timeout)
	if timeout <= 0 {
		c.deadline = start.Add(math.MaxInt64 / 2)
	}
	if ctx.Done() != nil {
		// Set before c is published: the poller's goroutine reads it. A
		// context that ends before c is in the poller is seen below.
		c.stop = context.AfterFunc(ctx, func() { pl.cancel(c) })
	}
	pl.mu.Lock()
	pl.seq++
	c.seq = pl.seq
	ev := unix.EpollEvent{Events: unix.EPOLLOUT, Fd: c.fd, Pad: int32(c.seq)}
	if err := unix.EpollCtl(pl.epfd, unix.EPOLL_CTL_ADD, fd, &ev); err != nil {
		pl.mu.Unlock()
		if c.stop != nil {
			c.stop()
		}
		unix.Close(fd)
		done(p.failed(start, p.opError(os.NewSyscallError("epoll_ctl", err))))
		return
	}
	if ctx.Err() != nil {
		c.cause, c.deadline = context.Cause(ctx), time.Time{}
	}
	pl.pending[c.fd] = c
	heap.Push(&pl.byTime, c)
	wake := pl.wakeIfBeforeLocked(c.deadline)
	pl.mu.Unlock()
	if wake {
		pl.wake()
	}
}

// cancel ends c now because its context ended.
func (pl *poller) cancel(c *connecting) {
	pl.mu.Lock()
	if c.index < 0 || pl.pending[c.fd] != c {
		pl.mu.Unlock()
		return
	}
	c.cause = context.Cause(c.ctx)
	c.deadline = time.Time{}
	heap.Fix(&pl.byTime, c.index)
	wake := pl.wakeIfBeforeLocked(c.deadline)
	pl.mu.Unlock()
	if wake {
		pl.wake()
	}
}

// wakeIfBeforeLocked reports whether the goroutine must be woken for a
// deadline at t, and notes that it will be; pl.mu is held.
func (pl *poller) wakeIfBeforeLocked(t time.Time) bool {
	if pl.woken || (!pl.sleep.IsZero() && !t.Before(pl.sleep)) {
		return false
	}
	pl.woken = true
	return true
}

func (pl *poller) wake() {
	var one = [8]byte{1}
	_, _ = unix.Write(pl.wakefd, one[:])
}

// run serves the poller for the life of the process.
func (pl *poller) run() {
	events := make([]unix.EpollEvent, 256)
	var ended []*connecting
	for {
		now := time.Now()
		pl.mu.Lock()
		for len(pl.byTime) > 0 && !pl.byTime[0].deadline.After(now) {
			c := heap.Pop(&pl.byTime).(*connecting)
			delete(pl.pending, c.fd)
			ended = append(ended, c)
		}
		wait := -1
		pl.sleep = time.Time{}
		if len(pl.byTime) > 0 {
			next := pl.byTime[0].deadline
			// epoll_wait counts milliseconds: round up, never wake early.
			wait = int(min((next.Sub(now)+time.Millisecond-1)/time.Millisecond, math.MaxInt32))
			pl.sleep = next
		}
		pl.mu.Unlock()
		for i, c := range ended {
			unix.Close(int(c.fd))
			c.finish(c.timedOut())
			ended[i] = nil
		}
		ended = ended[:0]

		n, err := unix.EpollWait(pl.epfd, events, wait)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			panic(fmt.Sprintf("probe: connect poller: epoll_wait: %v", err))
		}
		for _, ev := range events[:n] {
			if int(ev.Fd) == pl.wakefd {
				var buf [8]byte
				_, _ = unix.Read(pl.wakefd, buf[:])
				pl.mu.Lock()
				pl.woken = false
				pl.mu.Unlock()
				continue
			}
			pl.mu.Lock()
			c := pl.pending[ev.Fd]
			if c == nil || c.seq != uint32(ev.Pad) {
				pl.mu.Unlock()
				continue
			}
			delete(pl.pending, c.fd)
			heap.Remove(&pl.byTime, c.index)
			pl.mu.Unlock()
			soErr, err := unix.GetsockoptInt(int(c.fd), unix.SOL_SOCKET, unix.SO_ERROR)
			unix.Close(int(c.fd))
			switch {
			case err != nil:
				c.finish(c.probe.failed(c.start, c.probe.opError(os.NewSyscallError("getsockopt", err))))
			case soErr != 0:
				c.finish(c.probe.failed(c.start, c.probe.opError(os.NewSyscallError("connect", unix.Errno(soErr)))))
			default:
				c.finish(pass(c.probe.address, c.start))
			}
		}
	}
}

// timedOut is the Result of c when its deadline passed ("probe timed out
// after 1s: dial tcp 10.0.0.1:80: i/o timeout") or its context ended (see
// ended).
func (c *connecting) timedOut() Result {
	if c.cause == nil {
		return c.probe.failed(c.start, fmt.Errorf("%w: %w", &TimeoutError{After: c.timeout}, c.probe.opError(os.ErrDeadlineExceeded)))
	}
	return c.probe.failed(c.start, c.probe.ended(c.ctx))
}

// ended is the error of a probe whose context ended, worded as the net
// package's dialer and fail word it: "dial tcp 127.0.0.1:8080: i/o
// timeout" for a deadline, "... operation was canceled" for a
// cancellation, with the context's cause in front when it says more.
func (p *TCP) ended(ctx context.Context) error {
	var inner error = os.ErrDeadlineExceeded
	if errors.Is(ctx.Err(), context.Canceled) {
		inner = errCanceled{}
	}
	err := p.opError(inner)
	if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
		err = fmt.Errorf("%w: %w", cause, err)
	}
	return err
}

// errCanceled is the net package's error for a dial whose context was
// cancelled: it reads "operation was canceled" and is context.Canceled.
type errCanceled struct{}

func (errCanceled) Error() string        { return "operation was canceled" }
func (errCanceled) Is(target error) bool { return target == context.Canceled }

// finish reports r once the socket is closed.
func (c *connecting) finish(r Result) {
	if c.stop != nil {
		c.stop()
	}
	c.done(r)
}

// connectHeap is a min-heap of connects by deadline.
type connectHeap []*connecting

func (h connectHeap) Len() int           { return len(h) }
func (h connectHeap) Less(i, j int) bool { return h[i].deadline.Before(h[j].deadline) }
func (h connectHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *connectHeap) Push(x any) {
	c := x.(*connecting)
	c.index = len(*h)
	*h = append(*h, c)
}

func (h *connectHeap) Pop() any {
	old := *h
	n := len(old)
	c := old[n-1]
	old[n-1] = nil
	c.index = -1
	*h = old[:n-1]
	return c
}
