package probe

import (
	"context"
	"errors"
	"log"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/medic-watchdog/medic/internal/sockperm"
)

// Unix probes a Unix stream socket (SOCK_STREAM) by connecting to it; a stat
// of the path is not enough, since a socket file outlives the process that
// listened on it. It passes when connect succeeds within the timeout and,
// when the probe has a client user other than medic's own uid, that client
// could connect too (see NewUnixAs); the connection is closed at once and no
// byte is sent. It fails with
//
//   - ClassRefused when the socket file exists but nothing listens on it
//     (ECONNREFUSED: a stale socket, or a path that is not a socket at all)
//     and when the path does not exist (ENOENT; Err then says "no such file
//     or directory"), as both mean that no backend serves the path,
//   - ClassPermission when the probing user may not write to the socket
//     (EACCES) or search a directory on its path, and when medic may
//     connect but the client user may not (Err is then a
//     *sockperm.DeniedError naming the client and what it lacks),
//   - ClassTimeout when the listener's accept queue is full (connect fails
//     at once with EAGAIN, "resource temporarily unavailable"),
//   - ClassOther otherwise (for example EPROTOTYPE for a datagram socket).
//
// A Unix is safe for concurrent use.
type Unix struct {
	path   string
	target string
	// addr is path as the dialer takes it, made once: dialing it needs no
	// resolution.
	addr   *net.UnixAddr
	dialer net.Dialer

	// client is the user whose access is checked after a successful
	// connect; "" checks none.
	client string
	// logf reports, once, that client is unknown on this host.
	logf func(format string, args ...any)

	mu       sync.Mutex
	cred     sockperm.Credential
	credOK   bool      // cred holds the client's credential
	credAt   time.Time // when cred was looked up; zero: never
	credWarn bool      // the lookup failure was reported
}

var _ Prober = (*Unix)(nil)

// clientLookupTTL is how long a client user's uid and groups are reused
// before they are looked up again, so that a group added to the client
// counts without a reload.
const clientLookupTTL = time.Minute

// NewUnix returns a Unix probe of the socket at path. A path starting with
// "@" names a socket in Linux's abstract namespace. The Result's Target is
// "unix:" followed by path.
func NewUnix(path string) *Unix {
	return &Unix{
		path:   path,
		target: "unix:" + path,
		addr:   &net.UnixAddr{Name: path, Net: "unix"},
		logf:   log.Printf,
	}
}

// NewUnixAs returns a Unix probe of the socket at path that passes only when
// client (a user name, the proxy's user, e.g. "www-data") could connect to
// it as well. When medic's effective uid is not client's, a successful
// connect is followed by the checks connect(2) would make for client:
// search (x) permission on every directory of the path, path_resolution(7),
// and write permission on the socket file, unix(7), with client's primary
// and supplementary groups; a denial fails the probe with ClassPermission.
// uid 0 as client, an abstract socket ("@name") and an empty client check
// nothing more. When client does not exist on this host, the probe says so
// once in the process log and probes as medic alone. client's uid and groups
// are looked up at the first probe and again after a minute.
func NewUnixAs(path, client string) *Unix {
	p := NewUnix(path)
	p.client = client
	return p
}

// Probe connects to the socket once under ctx bounded by timeout (a timeout of
// zero or less leaves ctx alone as the bound; a ctx whose deadline comes no
// later than timeout from now is used as it is), then checks the client's
// permissions.
func (p *Unix) Probe(ctx context.Context, timeout time.Duration) Result {
	start := time.Now()
	ctx, cancel := withDeadline(ctx, start, timeout)
	defer cancel()
	conn, err := p.dialer.DialUnix(ctx, "unix", nil, p.addr)
	if err != nil {
		return fail(ctx, p.target, start, ClassNone, err)
	}
	_ = conn.Close()
	if err := p.clientDenied(); err != nil {
		return fail(ctx, p.target, start, ClassPermission, err)
	}
	return pass(p.target, start)
}

// clientDenied returns a *sockperm.DeniedError when the client may not
// connect to the socket medic just connected to, else nil. Whatever keeps
// it from judging (unknown client, a file gone since the connect) is nil:
// the connect decided.
func (p *Unix) clientDenied() error {
	if p.client == "" || strings.HasPrefix(p.path, "@") {
		return nil
	}
	c, ok := p.credential()
	if !ok || c.UID == uint32(os.Geteuid()) || c.UID == 0 {
		return nil
	}
	f, err := sockperm.Stat(p.path)
	if err != nil || !f.Exists {
		return nil
	}
	if v := f.Access(c); !v.OK() {
		return &sockperm.DeniedError{User: c.Name, File: f, Verdict: v}
	}
	return nil
}

// credential returns the client's credential, looked up at most once per
// clientLookupTTL; ok is false when the client could not be looked up.
func (p *Unix) credential() (sockperm.Credential, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := time.Now()
	if !p.credAt.IsZero() && now.Sub(p.credAt) < clientLookupTTL {
		return p.cred, p.credOK
	}
	p.credAt = now
	c, err := sockperm.Lookup(p.client)
	if err != nil {
		p.credOK = false
		if !p.credWarn {
			p.credWarn = true
			p.logf("probe %s: client_user %s: %v; probing as medic's own user only", p.target, p.client, err)
		}
		return p.cred, false
	}
	p.cred, p.credOK, p.credWarn = c, true, false
	return c, true
}

func newUnixSpec(s Spec) (Prober, error) {
	if s.Path == "" {
		return nil, errors.New("new unix probe: path is empty")
	}
	return NewUnixAs(s.Path, s.ClientUser), nil
}

// unixKind connects to the socket at Spec.Path.
var unixKind = Kind{
	New:      newUnixSpec,
	Endpoint: func(s Spec) (string, string) { return "unix", s.Path },
}
