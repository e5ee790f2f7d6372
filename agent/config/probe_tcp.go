package config

import (
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/medic-watchdog/medic/probe"
)

// TCPProbe is the table of a "tcp" probe: it passes when a TCP handshake
// with Address completes (probe.TCP).
type TCPProbe struct {
	// Address is host:port; the host may be a name, resolved at each probe.
	Address string `toml:"address"`
}

var tcpProbeKind = ProbeKind{Type: probe.TypeTCP, Table: func(p *Probe) ProbeSettings { return &p.TCPProbe }}

func (t *TCPProbe) validate(v *validator, key string) {
	if t.Address == "" {
		v.errorf(key+".address", "missing address: want host:port, e.g. \"127.0.0.1:8080\"")
		return
	}
	if msg := checkHostPort(t.Address); msg != "" {
		v.errorf(key+".address", "%s", msg)
	}
}

func (t *TCPProbe) spec(string) probe.Spec { return probe.Spec{Address: t.Address} }

// CheckAddress returns what is wrong with a tcp probe's host:port address,
// as Validate reports it ("missing port", `invalid port "99999": want a
// number from 1 to 65535`), or "" when it is valid.
func CheckAddress(addr string) string { return checkHostPort(addr) }

// checkHostPort checks a tcp probe address and returns what is wrong, or "".
func checkHostPort(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			if strings.Contains(ae.Err, "missing port") {
				return "missing port"
			}
			return fmt.Sprintf("invalid address %q: %s", addr, ae.Err)
		}
		return fmt.Sprintf("invalid address %q", addr)
	}
	if host == "" {
		return "missing host"
	}
	return checkPort(port)
}
