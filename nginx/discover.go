package nginx

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/medic-watchdog/medic/diagnose"
)

// Report is what Discover found: nginx's backends and who serves them.
type Report struct {
	// Config is the parsed configuration.
	Config *Config
	// Upstreams and Targets are the configuration's upstream{} blocks and
	// *_pass directives.
	Upstreams []Upstream
	Targets   []Target
	// Backends are the distinct addresses nginx sends requests to, in the
	// order the configuration first names them.
	Backends []Backend
	// User is the user nginx's workers run as ("www-data"), from the user
	// directive; "" when not set.
	User string
	// Skipped are *_pass targets that name no address, each with its
	// reason, as "proxy_pass http://$host (file:line): uses variables".
	Skipped []string
	// Unavailable is evidence that could not be gathered (listeners, owners),
	// each a full sentence.
	Unavailable []string
}

// Backend is one address nginx proxies to.
type Backend struct {
	// Network is "tcp" or "unix".
	Network string
	// Address is host:port (as written, with the default port added) or
	// the socket's path.
	Address string
	// Upstreams are the groups it is a server of.
	Upstreams []string
	// Mentions say where the configuration names it.
	Mentions []Mention
	// Backup is true when every server directive naming it says backup;
	// Down when every one says down.
	Backup, Down bool
	// Local is true when the address is on this host (loopback, a local
	// interface's address, or a unix socket).
	Local bool
	// Owner is who listens on it now; nil when nothing was found.
	Owner *Owner
	// Problem says why there is no Owner, e.g. "nothing listens on
	// 127.0.0.1:8080 now" or "not on this host".
	Problem string
}

// Mention is one place in the configuration that names a backend.
type Mention struct {
	// Text is the directive, e.g. `server 127.0.0.1:8080 max_fails=3 in
	// upstream backend` or `proxy_pass http://127.0.0.1:8080/ in location
	// /api/`.
	Text string
	// Server is the upstream server directive, when it is one.
	Server *UpstreamServer
	File   string
	Line   int
}

// Owner is the process and unit that listen on a backend's address.
type Owner struct {
	// Unit is the systemd service the listening process runs in; "" when
	// it runs in none.
	Unit string
	// PID and Comm are the lowest process holding the socket; 0 and ""
	// when the processes' file descriptors could not be read.
	PID  int
	Comm string
	// Listener is the socket that serves the address: "127.0.0.1:8080",
	// "0.0.0.0:8080", "[::]:8080", "unix:/run/app.sock".
	Listener string
}

// Discover reads the nginx configuration in confPath (ParseConfig) and
// lists the backends nginx proxies to, each with the unit that owns the
// socket listening on it now. It maps a TCP address to the listening
// socket that serves it (sock_diag, else /proc/net), the socket to its
// creator's cgroup and so its .service unit, and to the lowest PID holding
// it; a unix socket by its path in the listening unix sockets. Names are
// resolved with the system resolver under ctx.
//
// The error is non-nil only when the configuration cannot be read; missing
// evidence is listed in Report.Unavailable and Backend.Problem.
func Discover(ctx context.Context, confPath string) (Report, error) {
	c, err := ParseConfig(confPath)
	if err != nil {
		return Report{}, err
	}
	r := Report{Config: c, Upstreams: c.Upstreams(), Targets: c.Targets(), User: c.User()}

	byKey := map[string]int{}
	add := func(network, addr string, m Mention, group string) *Backend {
		k := network + "\x00" + addr
		i, ok := byKey[k]
		if !ok {
			i = len(r.Backends)
			byKey[k] = i
			r.Backends = append(r.Backends, Backend{Network: network, Address: addr, Backup: true, Down: true})
		}
		b := &r.Backends[i]
		b.Mentions = append(b.Mentions, m)
		if group != "" && !slices.Contains(b.Upstreams, group) {
			b.Upstreams = append(b.Upstreams, group)
		}
		return b
	}
	// Servers first, in the order of their upstream blocks, then the
	// targets that name an address themselves.
	for _, u := range r.Upstreams {
		for i := range u.Servers {
			s := &u.Servers[i]
			network, addr, err := ServerAddress(s.Addr)
			if err != nil {
				r.Skipped = append(r.Skipped, fmt.Sprintf("server %s in upstream %s (%s:%d): %v", s.Addr, u.Name, s.File, s.Line, err))
				continue
			}
			text := strings.TrimSpace("server " + s.Addr + " " + strings.Join(s.Params, " "))
			b := add(network, addr, Mention{Text: text + " in upstream " + u.Name, Server: s, File: s.File, Line: s.Line}, u.Name)
			b.Backup = b.Backup && s.Backup
			b.Down = b.Down && s.Down
		}
	}
	for _, t := range r.Targets {
		if t.Network == "" {
			if t.Unresolved != "" {
				r.Skipped = append(r.Skipped, fmt.Sprintf("%s %s (%s:%d): %s", t.Directive, t.Value, t.File, t.Line, t.Unresolved))
			}
			continue
		}
		text := t.Directive + " " + t.Value
		if t.Location != "" {
			text += " in location " + t.Location
		}
		if t.Server != "" {
			text += " of server " + t.Server
		}
		b := add(t.Network, t.Address, Mention{Text: text, File: t.File, Line: t.Line}, "")
		b.Backup, b.Down = false, false
	}

	if len(r.Backends) > 0 {
		o := newOwners()
		for i := range r.Backends {
			o.find(ctx, &r.Backends[i])
		}
		r.Unavailable = o.unavailable
	}
	return r, nil
}

// owners finds who listens on backends' addresses; it reads the listeners
// and the cgroup tree once.
type owners struct {
	tcp, unixSocks []diagnose.Socket
	local          []netip.Addr
	cgroups        map[uint64]string // cgroup v2 id -> path, read on first use
	unavailable    []string
}

func newOwners() *owners {
	o := &owners{}
	note := func(format string, args ...any) {
		o.unavailable = append(o.unavailable, fmt.Sprintf(format, args...))
	}
	tcp, tcpErr := diagnose.SockDiagListeners()
	unixSocks, unixErr := diagnose.SockDiagUnix()
	if tcpErr != nil || unixErr != nil {
		proc, err := diagnose.ProcListeners("")
		if err != nil {
			note("listening sockets: %v.", err)
		}
		for _, s := range proc {
			switch {
			case s.Proto == "unix" && unixErr != nil:
				unixSocks = append(unixSocks, s)
			case s.Proto != "unix" && tcpErr != nil:
				tcp = append(tcp, s)
			}
		}
	}
	o.tcp, o.unixSocks = tcp, unixSocks
	local, err := diagnose.LocalAddrs()
	if err != nil {
		note("local addresses: %v; only loopback addresses count as this host.", err)
	}
	o.local = local
	return o
}

func (o *owners) find(ctx context.Context, b *Backend) {
	if b.Network == "unix" {
		b.Local = true
		for _, s := range o.unixSocks {
			if s.Path == b.Address {
				b.Owner = o.owner(s)
				return
			}
		}
		if _, err := os.Stat(b.Address); errors.Is(err, fs.ErrNotExist) {
			b.Problem = "the socket " + b.Address + " does not exist"
		} else {
			b.Problem = "nothing listens on " + b.Address + " now"
		}
		return
	}
	host, portStr, err := net.SplitHostPort(b.Address)
	if err != nil {
		b.Problem = err.Error()
		return
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		b.Problem = "bad port " + portStr
		return
	}
	rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	addrs, err := diagnose.Resolve(rctx, host)
	cancel()
	if err != nil {
		b.Problem = fmt.Sprintf("%s does not resolve: %v", host, err)
		return
	}
	for _, a := range addrs {
		if !diagnose.IsLocal(a, o.local) {
			continue
		}
		b.Local = true
		ap := netip.AddrPortFrom(a, uint16(port))
		for _, s := range o.tcp {
			if diagnose.Serves(ap, []diagnose.Socket{s}) {
				b.Owner = o.owner(s)
				return
			}
		}
	}
	if !b.Local {
		b.Problem = "not on this host: medic can probe it but cannot restart what serves it"
		return
	}
	b.Problem = "nothing listens on " + b.Address + " now"
}

// owner names the unit and process behind a listening socket.
func (o *owners) owner(s diagnose.Socket) *Owner {
	ow := &Owner{Listener: s.String()}
	if s.CgroupID != 0 {
		ow.Unit = serviceOf(o.cgroupPath(s.CgroupID))
	}
	pid, comm, unit, err := diagnose.SocketOwner("", s.Inode)
	if err != nil {
		if ow.Unit == "" {
			o.unavailable = append(o.unavailable, fmt.Sprintf("owner of %s: %v.", s, err))
		}
		return ow
	}
	ow.PID, ow.Comm = pid, comm
	if ow.Unit == "" {
		ow.Unit = unit
	}
	return ow
}

// cgroupPath returns the cgroup v2 path whose directory has inode id, or
// "", walking the cgroup2 hierarchy once.
func (o *owners) cgroupPath(id uint64) string {
	if o.cgroups == nil {
		o.cgroups = map[uint64]string{}
		for _, root := range []string{"/sys/fs/cgroup/unified", "/sys/fs/cgroup"} {
			var st unix.Statfs_t
			if err := unix.Statfs(root, &st); err != nil || st.Type != unix.CGROUP2_SUPER_MAGIC {
				continue
			}
			_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
				if err != nil || !d.IsDir() {
					return nil
				}
				var st unix.Stat_t
				if unix.Stat(p, &st) == nil {
					o.cgroups[st.Ino] = strings.TrimPrefix(p, root)
				}
				return nil
			})
			break
		}
	}
	return o.cgroups[id]
}

// serviceOf returns the last element of a cgroup path that is a service:
// "x.service" for "/medic-test-1/app.slice/x.service/worker".
func serviceOf(cg string) string {
	parts := strings.Split(cg, "/")
	for i := len(parts) - 1; i >= 0; i-- {
		if strings.HasSuffix(parts[i], ".service") && len(parts[i]) > len(".service") {
			return parts[i]
		}
	}
	return ""
}
