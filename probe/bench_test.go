package probe

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"
)

// closingListener accepts connections on ln and closes each at once, as a
// backend that answers a probe does; it stops when ln is closed.
func closingListener(b *testing.B, ln net.Listener) {
	b.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_ = c.Close()
		}
	}()
	b.Cleanup(func() {
		_ = ln.Close()
		<-done
	})
}

// BenchmarkTCPProbe measures one passing TCP probe of a loopback listener
// that accepts and closes: the probe's own cost (dial, socket options,
// context, Result) plus the kernel's handshake. "timeout" is the agent's
// call (a context without deadline and the check's timeout); "caller
// deadline" passes a context whose deadline comes before the timeout.
func BenchmarkTCPProbe(b *testing.B) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	closingListener(b, ln)
	p := NewTCP(ln.Addr().String())
	b.Run("timeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r := p.Probe(context.Background(), 5*time.Second); !r.OK {
				b.Fatal(r.Err)
			}
		}
	})
	b.Run("caller deadline", func(b *testing.B) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
		defer cancel()
		b.ReportAllocs()
		for b.Loop() {
			if r := p.Probe(ctx, 2*time.Hour); !r.OK {
				b.Fatal(r.Err)
			}
		}
	})
}

// BenchmarkUnixProbe is BenchmarkTCPProbe for a Unix socket without a
// client user.
func BenchmarkUnixProbe(b *testing.B) {
	path := filepath.Join(b.TempDir(), "s.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	closingListener(b, ln)
	p := NewUnix(path)
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(context.Background(), 5*time.Second); !r.OK {
			b.Fatal(r.Err)
		}
	}
}

// TestWithDeadline checks when a probe makes a context of its own: only when
// its timeout ends before the caller's deadline (or the caller has none).
func TestWithDeadline(t *testing.T) {
	start := time.Now()
	early, cancel := context.WithDeadline(context.Background(), start.Add(time.Second))
	defer cancel()
	tests := []struct {
		name        string
		ctx         context.Context
		timeout     time.Duration
		wantSame    bool
		wantBetween [2]time.Duration // the derived deadline's range after start
	}{
		{name: "no timeout", ctx: context.Background(), timeout: 0, wantSame: true},
		{name: "caller deadline first", ctx: early, timeout: 2 * time.Second, wantSame: true},
		{name: "caller deadline equal", ctx: early, timeout: time.Second, wantSame: true},
		{name: "timeout first", ctx: early, timeout: 500 * time.Millisecond, wantBetween: [2]time.Duration{500 * time.Millisecond, 500 * time.Millisecond}},
		{name: "caller without deadline", ctx: context.Background(), timeout: time.Second, wantBetween: [2]time.Duration{time.Second, time.Second}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := withDeadline(tt.ctx, start, tt.timeout)
			defer cancel()
			if same := ctx == tt.ctx; same != tt.wantSame {
				t.Fatalf("derived ctx is the caller's: %v, want %v", same, tt.wantSame)
			}
			if tt.wantSame {
				return
			}
			dl, ok := ctx.Deadline()
			if !ok || dl.Sub(start) < tt.wantBetween[0] || dl.Sub(start) > tt.wantBetween[1] {
				t.Errorf("deadline %v after start (set %v), want %v", dl.Sub(start), ok, tt.wantBetween)
			}
			cancel()
			<-ctx.Done()
			if _, ok := context.Cause(ctx).(*TimeoutError); ok {
				t.Errorf("cause %v after cancel, want context.Canceled", context.Cause(ctx))
			}
		})
	}
}

// BenchmarkHTTPProbe probes a loopback HTTP server that answers 200: one
// connection, one request, the status read.
func BenchmarkHTTPProbe(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	b.Cleanup(srv.Close)
	p, err := NewHTTP(HTTPOptions{URL: srv.URL + "/health"})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if r := p.Probe(context.Background(), 5*time.Second); !r.OK {
			b.Fatal(r.Err)
		}
	}
}
