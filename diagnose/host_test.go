package diagnose

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

func TestLocalAddrs(t *testing.T) {
	addrs, err := LocalAddrs()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(addrs, netip.MustParseAddr("127.0.0.1")) {
		t.Errorf("LocalAddrs() = %v; want 127.0.0.1 among them", addrs)
	}
	for _, a := range addrs {
		if !IsLocal(a, addrs) {
			t.Errorf("IsLocal(%v, LocalAddrs()) = false", a)
		}
	}
}

func TestIsLocal(t *testing.T) {
	local := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1", true},
		{"127.1.2.3", true},
		{"::1", true},
		{"0.0.0.0", true},
		{"::", true},
		{"::ffff:127.0.0.1", true},
		{"192.0.2.10", true},
		{"::ffff:192.0.2.10", true},
		{"2001:db8::10", true},
		{"192.0.2.11", false},
		{"10.0.0.1", false},
		{"2001:db8::11", false},
		{"fe80::1%lo", false},
	}
	for _, tt := range tests {
		if got := IsLocal(netip.MustParseAddr(tt.addr), local); got != tt.want {
			t.Errorf("IsLocal(%s) = %v; want %v", tt.addr, got, tt.want)
		}
	}
	if IsLocal(netip.Addr{}, local) {
		t.Error("IsLocal(zero Addr) = true; want false")
	}
}

func TestResolve(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()

	got, err := Resolve(ctx, "127.0.0.1")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("Resolve(127.0.0.1) = %v, %v; want [127.0.0.1]", got, err)
	}
	got, err = Resolve(ctx, "::ffff:10.0.0.1")
	if err != nil || len(got) != 1 || got[0] != netip.MustParseAddr("10.0.0.1") {
		t.Errorf("Resolve(::ffff:10.0.0.1) = %v, %v; want [10.0.0.1]", got, err)
	}
	got, err = Resolve(ctx, "localhost") // /etc/hosts
	if err != nil {
		t.Fatalf("Resolve(localhost): %v", err)
	}
	if !slices.ContainsFunc(got, netip.Addr.IsLoopback) {
		t.Errorf("Resolve(localhost) = %v; want a loopback address", got)
	}

	// .invalid never resolves (RFC 6761); with no network the resolver
	// may say "not found" or fail to reach a server, but it is a DNSError.
	_, err = Resolve(ctx, "no-such-host.medic.invalid")
	var dnsErr *net.DNSError
	if !errors.As(err, &dnsErr) {
		t.Fatalf("Resolve(no-such-host.medic.invalid) = %v; want a *net.DNSError", err)
	}
	t.Logf("Resolve(no-such-host.medic.invalid): %v (IsNotFound %v)", err, dnsErr.IsNotFound)
	if dnsErr.Name != "no-such-host.medic.invalid" {
		t.Errorf("DNSError.Name = %q", dnsErr.Name)
	}

	done, cancelDone := context.WithCancel(t.Context())
	cancelDone()
	if _, err := Resolve(done, "example.medic.invalid"); err == nil {
		t.Error("Resolve with a canceled context: nil error")
	}
}

func tcpListener(addr string) Socket {
	ap := netip.MustParseAddrPort(addr)
	proto := "tcp"
	if ap.Addr().Is6() {
		proto = "tcp6"
	}
	return Socket{Proto: proto, Addr: ap}
}

func TestServesAndAltBindings(t *testing.T) {
	tests := []struct {
		name      string
		probed    string
		listeners []Socket
		wantServe bool
		wantAlt   []string
	}{
		{"same address", "127.0.0.1:8080", []Socket{tcpListener("127.0.0.1:8080")}, true, nil},
		{"nothing on the port", "127.0.0.1:8080", []Socket{tcpListener("127.0.0.1:3000")}, false, nil},
		{"v4 wildcard", "127.0.0.1:8080", []Socket{tcpListener("0.0.0.0:8080")}, true, nil},
		{"v6 wildcard takes v4", "127.0.0.1:8080", []Socket{tcpListener("[::]:8080")}, true, nil},
		{"v6 wildcard takes v6", "[::1]:8080", []Socket{tcpListener("[::]:8080")}, true, nil},
		{"v4 wildcard does not take v6", "[::1]:8080", []Socket{tcpListener("0.0.0.0:8080")}, false, []string{"0.0.0.0:8080"}},
		{"localhost mix-up: backend on ::1", "127.0.0.1:8080", []Socket{tcpListener("[::1]:8080")}, false, []string{"[::1]:8080"}},
		{"localhost mix-up: backend on 127.0.0.1", "[::1]:8080", []Socket{tcpListener("127.0.0.1:8080")}, false, []string{"127.0.0.1:8080"}},
		{"another interface", "127.0.0.1:8080", []Socket{tcpListener("192.0.2.10:8080"), tcpListener("127.0.0.1:9090")}, false, []string{"192.0.2.10:8080"}},
		{"other loopback address", "127.0.0.1:8080", []Socket{tcpListener("127.0.0.2:8080")}, false, []string{"127.0.0.2:8080"}},
		{"v4-mapped listener", "127.0.0.1:8080", []Socket{tcpListener("[::ffff:127.0.0.1]:8080")}, true, nil},
		{"served and an alt binding", "127.0.0.1:8080", []Socket{tcpListener("[::1]:8080"), tcpListener("127.0.0.1:8080")}, true, []string{"[::1]:8080"}},
		{"unix ignored", "127.0.0.1:8080", []Socket{{Proto: "unix", Path: "/run/app.sock"}}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			probed := netip.MustParseAddrPort(tt.probed)
			if got := Serves(probed, tt.listeners); got != tt.wantServe {
				t.Errorf("Serves = %v; want %v", got, tt.wantServe)
			}
			var alt []string
			for _, s := range AltBindings(probed, tt.listeners) {
				alt = append(alt, s.String())
			}
			if !slices.Equal(alt, tt.wantAlt) {
				t.Errorf("AltBindings = %q; want %q", alt, tt.wantAlt)
			}
		})
	}
}

// TestAltBindingsReal listens on [::1]:P and probes 127.0.0.1:P: the dial
// is refused, the listener does not serve the probe, and it is the alt
// binding.
func TestAltBindingsReal(t *testing.T) {
	l, err := net.Listen("tcp6", "[::1]:0")
	if err != nil {
		systemdtest.Missing(t, "no IPv6 loopback: %v", err)
	}
	defer l.Close()
	bound := l.Addr().(*net.TCPAddr).AddrPort()
	probed := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), bound.Port())

	c, err := net.DialTimeout("tcp", probed.String(), time.Second)
	if err == nil {
		c.Close()
		t.Skipf("%v is taken by another listener", probed)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial %v: %v; want connection refused", probed, err)
	}

	listeners := []Socket{{Proto: "tcp6", Addr: bound}}
	if Serves(probed, listeners) {
		t.Errorf("Serves(%v, [%v]) = true", probed, bound)
	}
	alt := AltBindings(probed, listeners)
	if len(alt) != 1 || alt[0].String() != "[::1]:"+strconv.Itoa(int(bound.Port())) {
		t.Errorf("AltBindings(%v) = %v; want [::1]:%d", probed, alt, bound.Port())
	}
	if !Serves(netip.AddrPortFrom(netip.IPv6Loopback(), bound.Port()), listeners) {
		t.Errorf("Serves([::1]:%d) = false", bound.Port())
	}
}
