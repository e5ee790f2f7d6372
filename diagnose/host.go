package diagnose

import (
	"context"
	"fmt"
	"net"
	"net/netip"
)

// LocalAddrs lists the addresses of this host's interfaces
// (net.InterfaceAddrs), IPv4-mapped addresses unmapped and zones dropped.
func LocalAddrs() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("list interface addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		var ip net.IP
		switch v := a.(type) {
		case *net.IPNet:
			ip = v.IP
		case *net.IPAddr:
			ip = v.IP
		default:
			continue
		}
		if na, ok := netip.AddrFromSlice(ip); ok {
			out = append(out, na.Unmap())
		}
	}
	return out, nil
}

// IsLocal says whether addr is on this host: a loopback address
// (127.0.0.0/8, ::1), an unspecified address (0.0.0.0, ::, which connect
// to this host), or one of local (from LocalAddrs). IPv4-mapped IPv6
// addresses are compared as IPv4 and zones are ignored.
func IsLocal(addr netip.Addr, local []netip.Addr) bool {
	addr = addr.Unmap().WithZone("")
	if !addr.IsValid() {
		return false
	}
	if addr.IsLoopback() || addr.IsUnspecified() {
		return true
	}
	for _, l := range local {
		if l.Unmap().WithZone("") == addr {
			return true
		}
	}
	return false
}

// Resolve looks up host with the system resolver (net.DefaultResolver,
// so /etc/hosts and nsswitch apply) and returns its addresses, unmapped.
// An IP literal is returned as is, without a lookup.
//
// Errors wrap the resolver's error: errors.As(err, &dnsErr) with a
// *net.DNSError gives IsNotFound (the name does not exist: a wrong host),
// IsTimeout and IsTemporary; a context error ends the lookup early.
func Resolve(ctx context.Context, host string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(host); err == nil {
		return []netip.Addr{a.Unmap()}, nil
	}
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", host, err)
	}
	for i := range addrs {
		addrs[i] = addrs[i].Unmap()
	}
	return addrs, nil
}

// Serves says whether one of listeners (TCP sockets, Proto "tcp" or
// "tcp6") accepts connections to probed: a listener on the same port and
// the same address (IPv4-mapped addresses compared as IPv4, zones
// ignored), on 0.0.0.0 for an IPv4 address, or on [::] for any address.
//
// A listener on [::] is counted as serving IPv4 too, as it does with
// Linux's default net.ipv6.bindv6only=0 unless the program set
// IPV6_V6ONLY; Socket does not carry that flag.
func Serves(probed netip.AddrPort, listeners []Socket) bool {
	for _, l := range listeners {
		if servesOne(probed, l) {
			return true
		}
	}
	return false
}

func servesOne(probed netip.AddrPort, l Socket) bool {
	if (l.Proto != "tcp" && l.Proto != "tcp6") || l.Addr.Port() != probed.Port() {
		return false
	}
	want := probed.Addr().Unmap().WithZone("")
	got := l.Addr.Addr()
	if got.Is6() && got.IsUnspecified() {
		return true // [::] takes IPv6 and, by default, IPv4
	}
	got = got.Unmap().WithZone("")
	if got.Is4() && got.IsUnspecified() {
		return want.Is4()
	}
	return got == want
}

// AltBindings returns the TCP listeners on probed's port that do not
// serve probed's address (see Serves): the backend listens on the right
// port at another address. This is the localhost mix-up (the probe dials
// 127.0.0.1 while the backend is bound to ::1, or the reverse; or
// "localhost" resolved to the other family) or a backend bound to
// another interface's address. The result is nil when there are none.
func AltBindings(probed netip.AddrPort, listeners []Socket) []Socket {
	var out []Socket
	for _, l := range listeners {
		if (l.Proto != "tcp" && l.Proto != "tcp6") || l.Addr.Port() != probed.Port() {
			continue
		}
		if !servesOne(probed, l) {
			out = append(out, l)
		}
	}
	return out
}
