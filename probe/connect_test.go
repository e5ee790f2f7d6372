package probe

import (
	"context"
	"errors"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

func TestStarterOf(t *testing.T) {
	for _, tt := range []struct {
		address string
		want    bool
	}{
		{"127.0.0.1:80", true},
		{"[::1]:80", true},
		{"[::ffff:127.0.0.1]:80", true}, // mapped: dialed as IPv4
		{"[2001:db8::1]:65535", true},
		{"0.0.0.0:80", true},            // connect(2) takes it as this host
		{"localhost:80", false},         // a name: resolved at each probe
		{"backend.example:8080", false}, // a name
		{"[fe80::1%lo]:80", false},      // a zone: the net package dials it
		{"127.0.0.1", false},            // no port
		{"127.0.0.1:http", false},       // a service name
		{"127.0.0.1:99999", false},      // not a port
		{"300.0.0.1:80", false},         // not an address
		{"1.2.3.04:80", false},          // leading zero: not a literal to netip
	} {
		got := StarterOf(NewTCP(tt.address)) != nil
		if got != tt.want {
			t.Errorf("StarterOf(NewTCP(%q)) != nil is %t, want %t", tt.address, got, tt.want)
		}
	}
	p, err := NewHTTP(HTTPOptions{URL: "http://127.0.0.1:1/"})
	if err != nil {
		t.Fatal(err)
	}
	if StarterOf(p) != nil {
		t.Error("StarterOf(an HTTP probe) is not nil; only TCP probes of IP literals start without blocking")
	}
}

// startWait runs p.Start and waits for its Result, failing the test when
// done is called more than once.
func startWait(t *testing.T, p Starter, ctx context.Context, timeout time.Duration) Result {
	t.Helper()
	var calls atomic.Int32
	ch := make(chan Result, 2)
	p.Start(ctx, timeout, func(r Result) {
		calls.Add(1)
		ch <- r
	})
	r := <-ch
	time.Sleep(20 * time.Millisecond)
	if n := calls.Load(); n != 1 {
		t.Fatalf("done called %d times, want once", n)
	}
	return r
}

func TestStart(t *testing.T) {
	open := listenTCP(t)
	closed := closedTCP(t)
	full := systemdtest.SYNDropListener(t)
	for _, tt := range []struct {
		name      string
		address   string
		timeout   time.Duration
		wantOK    bool
		wantClass Class
		wantErr   string
	}{
		{"ok", open, time.Second, true, ClassNone, ""},
		{"refused at once", closed, time.Second, false, ClassRefused, "dial tcp " + closed + ": connect: connection refused"},
		{"timeout in the poller", full, 150 * time.Millisecond, false, ClassTimeout, "probe timed out after 150ms: dial tcp " + full + ": i/o timeout"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := startWait(t, StarterOf(NewTCP(tt.address)), context.Background(), tt.timeout)
			checkResult(t, r, tt.address, tt.wantOK, tt.wantClass, tt.wantErr)
			if tt.wantClass == ClassTimeout {
				if took := time.Since(start); took < tt.timeout {
					t.Errorf("timed out after %v, before its timeout %v", took, tt.timeout)
				}
				if r.Duration < tt.timeout {
					t.Errorf("Duration %v, want at least the timeout %v", r.Duration, tt.timeout)
				}
			}
		})
	}
}

// TestStartPollerMany puts many connects in the poller at once, with
// different timeouts and some cancelled, and checks that each ends once,
// in the order of its deadline, and that no socket is left open.
func TestStartPollerMany(t *testing.T) {
	full := systemdtest.SYNDropListener(t)
	p := StarterOf(NewTCP(full))
	before := openFDs(t)

	const n = 60
	type ended struct {
		i   int
		r   Result
		at  time.Duration
		got int32
	}
	var (
		mu    sync.Mutex
		ends  = make([]ended, n)
		calls = make([]atomic.Int32, n)
		wg    sync.WaitGroup
	)
	start := time.Now()
	for i := range n {
		ctx := context.Background()
		if i%3 == 2 {
			c, cancel := context.WithCancel(ctx)
			time.AfterFunc(50*time.Millisecond, cancel)
			ctx = c
		}
		timeout := time.Duration(100+10*(i%10)) * time.Millisecond
		wg.Add(1)
		p.Start(ctx, timeout, func(r Result) {
			calls[i].Add(1)
			mu.Lock()
			ends[i] = ended{i: i, r: r, at: time.Since(start)}
			mu.Unlock()
			wg.Done()
		})
	}
	wg.Wait()
	time.Sleep(20 * time.Millisecond)
	for i := range n {
		if c := calls[i].Load(); c != 1 {
			t.Errorf("probe %d: done called %d times, want once", i, c)
		}
		e := ends[i]
		if e.r.OK {
			t.Errorf("probe %d passed against a full accept queue", i)
			continue
		}
		if i%3 == 2 {
			if !errors.Is(e.r.Err, context.Canceled) || !strings.Contains(e.r.Err.Error(), "operation was canceled") {
				t.Errorf("probe %d (cancelled at 50ms): Err %v, want the dial cancelled", i, e.r.Err)
			}
			if e.at >= 100*time.Millisecond {
				t.Errorf("probe %d (cancelled at 50ms) ended after %v, not at its cancel", i, e.at)
			}
			continue
		}
		timeout := time.Duration(100+10*(i%10)) * time.Millisecond
		if e.r.Class != ClassTimeout || e.at < timeout {
			t.Errorf("probe %d: Class %q after %v, want a timeout after %v", i, e.r.Class, e.at, timeout)
		}
	}
	if after := openFDs(t); after > before {
		t.Errorf("%d file descriptors open after the probes, %d before: sockets leaked", after, before)
	}
}

func TestStartContextEndedBefore(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	open := listenTCP(t)
	r := startWait(t, StarterOf(NewTCP(open)), ctx, time.Second)
	checkResult(t, r, open, false, ClassOther, "dial tcp "+open+": operation was canceled")
}

// listenTCP is a loopback listener that accepts and closes; it returns
// its address.
func listenTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	return ln.Addr().String()
}

// closedTCP is a loopback address nothing listens on.
func closedTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// openFDs counts this process' open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
