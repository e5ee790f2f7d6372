package config

import "github.com/medic-watchdog/medic/probe"

// UnixProbe is the table of a "unix" probe: it passes when a connect to the
// Unix stream socket at Path succeeds, and the check's client_user could
// connect too (probe.Unix).
type UnixProbe struct {
	// Path is the absolute path of the socket.
	Path string `toml:"path"`
}

var unixProbeKind = ProbeKind{Type: probe.TypeUnix, Table: func(p *Probe) ProbeSettings { return &p.UnixProbe }}

func (u *UnixProbe) validate(v *validator, key string) {
	if u.Path == "" {
		v.errorf(key+".path", "missing socket path")
		return
	}
	v.socketPath(key+".path", u.Path)
}

func (u *UnixProbe) spec(clientUser string) probe.Spec {
	return probe.Spec{Path: u.Path, ClientUser: clientUser}
}

// CheckSocketPath returns what is wrong with a unix probe's socket path, as
// Validate reports it, or "" when it is absolute and fits in a Unix socket
// address.
func CheckSocketPath(path string) string {
	v := &validator{}
	v.socketPath("", path)
	if len(v.errs) == 0 {
		return ""
	}
	return v.errs[0].Msg
}
