package probe

import (
	"context"
	"fmt"
	"net"
	"time"
)

// TCP probes a TCP port. It passes when a TCP handshake with Address
// completes within the timeout; the connection is then closed at once and no
// byte is sent. It fails with
//
//   - ClassRefused when the host answers the SYN with a reset (nothing listens),
//   - ClassTimeout when the handshake does not complete in time (a firewall
//     that drops packets, a full accept queue, a host that is down),
//   - ClassDNS when the host name does not resolve,
//   - ClassUnreachable on EHOSTUNREACH or ENETUNREACH,
//   - ClassPermission on EPERM or EACCES (a local firewall rule that rejects
//     outgoing packets),
//   - ClassOther otherwise.
//
// A host name is resolved again at every probe, so a changed DNS record is
// followed. The socket gets no TCP keep-alive options: it is closed at once.
// A TCP is safe for concurrent use.
type TCP struct {
	address string
	dialer  net.Dialer
	// For an IP-literal address, parsed once: what connect(2) takes, the
	// socket's family and the address error texts name. sa is nil for a
	// host name, which the dialer resolves at each probe.
	sa      *sockaddr
	family  int
	tcpAddr *net.TCPAddr
}

var _ Prober = (*TCP)(nil)

// NewTCP returns a TCP probe of address, a "host:port" as accepted by
// net.Dial ("127.0.0.1:8080", "[::1]:8080", "backend.example:8080"). It does
// not check address; a malformed one makes every probe fail with ClassOther.
// Use New with a Spec of type "tcp" to have address checked first.
func NewTCP(address string) *TCP {
	p := &TCP{address: address, dialer: noKeepAlive()}
	p.sa, p.family, p.tcpAddr = sockaddrOf(address)
	return p
}

// Probe dials the address once under ctx bounded by timeout (a timeout of zero
// or less leaves ctx alone as the bound). When ctx's deadline comes no later
// than timeout from now, ctx is used as it is, without a context of the
// probe's own. The Result's Target is the address.
//
// An IP-literal address is connected to as Start does (a non-blocking
// socket; no resolver, no context of its own); the caller waits for the
// Result.
func (p *TCP) Probe(ctx context.Context, timeout time.Duration) Result {
	if p.sa != nil {
		ch := make(chan Result, 1)
		p.Start(ctx, timeout, func(r Result) { ch <- r })
		return <-ch
	}
	start := time.Now()
	ctx, cancel := withDeadline(ctx, start, timeout)
	defer cancel()
	conn, err := p.dialer.DialContext(ctx, "tcp", p.address)
	if err != nil {
		return fail(ctx, p.address, start, ClassNone, err)
	}
	_ = conn.Close()
	return pass(p.address, start)
}

func newTCPSpec(s Spec) (Prober, error) {
	host, port, err := net.SplitHostPort(s.Address)
	if err != nil {
		return nil, fmt.Errorf("new tcp probe: address %q: %w", s.Address, err)
	}
	if host == "" || port == "" {
		return nil, fmt.Errorf("new tcp probe: address %q: want host:port with both parts", s.Address)
	}
	return NewTCP(s.Address), nil
}

// tcpKind connects to Spec.Address.
var tcpKind = Kind{
	New:      newTCPSpec,
	Endpoint: func(s Spec) (string, string) { return "tcp", s.Address },
}
