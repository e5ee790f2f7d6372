package probe

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// Loopback cannot produce ClassUnreachable (EHOSTUNREACH/ENETUNREACH need a
// route or a host that answers with ICMP unreachable, which means changing
// the machine's routing) nor ClassPermission for TCP (connect(2) to a TCP
// port is not permission-checked without a firewall rule). TestClassify
// covers their mapping instead.

func TestTCP(t *testing.T) {
	open := acceptingListener(t).Addr().String()
	// The listener need not accept: the kernel completes the handshake
	// while the connection waits in the accept queue.
	backlogOnly, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = backlogOnly.Close() })
	closed := closedTCPAddr(t)
	full := systemdtest.SYNDropListener(t)

	tests := []struct {
		name       string
		address    string
		timeout    time.Duration
		wantOK     bool
		wantClass  Class
		wantErrHas []string
	}{
		{name: "ok", address: open, timeout: time.Second, wantOK: true},
		{name: "ok without accept", address: backlogOnly.Addr().String(), timeout: time.Second, wantOK: true},
		{name: "ok localhost name", address: "localhost:" + port(t, open), timeout: time.Second, wantOK: true},
		{name: "refused", address: closed, timeout: time.Second, wantClass: ClassRefused,
			wantErrHas: []string{"dial tcp " + closed + ": connect: connection refused"}},
		{name: "timeout", address: full, timeout: 200 * time.Millisecond, wantClass: ClassTimeout,
			wantErrHas: []string{"probe timed out after 200ms: dial tcp " + full + ": i/o timeout"}},
		{name: "malformed", address: "127.0.0.1", timeout: time.Second, wantClass: ClassOther,
			wantErrHas: []string{"missing port in address"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "ok localhost name" && !resolvesLocalhost() {
				skipOrFail(t, "localhost does not resolve to a loopback address here")
			}
			start := time.Now()
			r := NewTCP(tt.address).Probe(context.Background(), tt.timeout)
			checkResult(t, r, tt.address, tt.wantOK, tt.wantClass, tt.wantErrHas...)
			if took := time.Since(start); took > 5*tt.timeout {
				t.Errorf("probe took %v with a timeout of %v", took, tt.timeout)
			}
		})
	}
}

func TestTCPDNS(t *testing.T) {
	// .invalid is reserved (RFC 2606, RFC 6761): no resolver may answer it
	// with an address. Resolvers answer NXDOMAIN at once, offline too when
	// resolv.conf points at nothing (the dial to the server fails and the
	// error is still a *net.DNSError). A resolver that swallows the query
	// makes the lookup time out instead; that is ClassTimeout by design
	// (see Classify), so the test then skips rather than assert dns.
	const addr = "nonexistent.invalid:80"
	r := NewTCP(addr).Probe(context.Background(), 3*time.Second)
	if r.Class == ClassTimeout {
		t.Skipf("the resolver did not answer for %s within 3s: %v", addr, r.Err)
	}
	checkResult(t, r, addr, false, ClassDNS, "lookup nonexistent.invalid")
	if _, ok := errors.AsType[*net.DNSError](r.Err); !ok {
		t.Errorf("Err %v does not wrap a *net.DNSError", r.Err)
	}
}

// TestTCPContextDeadline checks that the earlier of ctx's deadline and the
// probe timeout bounds the probe, and that the error then carries ctx's cause.
func TestTCPContextDeadline(t *testing.T) {
	full := systemdtest.SYNDropListener(t)
	cause := errors.New("check my-app stopping")
	ctx, cancel := context.WithTimeoutCause(context.Background(), 150*time.Millisecond, cause)
	defer cancel()
	start := time.Now()
	r := NewTCP(full).Probe(ctx, 30*time.Second)
	took := time.Since(start)
	checkResult(t, r, full, false, ClassTimeout, "check my-app stopping: dial tcp "+full)
	if took > 5*150*time.Millisecond {
		t.Errorf("probe took %v, want about 150ms (ctx deadline)", took)
	}
}

func TestTCPCancel(t *testing.T) {
	full := systemdtest.SYNDropListener(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := NewTCP(full).Probe(ctx, 30*time.Second)
	took := time.Since(start)
	checkResult(t, r, full, false, ClassOther, "operation was canceled")
	if !errors.Is(r.Err, context.Canceled) {
		t.Errorf("Err %v does not wrap context.Canceled", r.Err)
	}
	if took > 2*time.Second {
		t.Errorf("canceled probe took %v, want about 100ms", took)
	}
}

// TestTCPConcurrent runs one TCP from many goroutines; with -race it checks
// that a probe is safe for concurrent use.
func TestTCPConcurrent(t *testing.T) {
	open := acceptingListener(t).Addr().String()
	p := NewTCP(open)
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if r := p.Probe(context.Background(), 2*time.Second); !r.OK {
				t.Errorf("concurrent probe failed: %v", r.Err)
			}
		})
	}
	wg.Wait()
}

func port(t *testing.T, addr string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func resolvesLocalhost() bool {
	addrs, err := net.LookupIP("localhost")
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if a.Equal(net.IPv4(127, 0, 0, 1)) {
			return true
		}
	}
	return false
}
