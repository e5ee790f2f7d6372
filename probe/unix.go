package probe

import (
	"context"
	"errors"
	"net"
	"time"
)

// Unix probes a Unix stream socket (SOCK_STREAM) by connecting to it; a stat
// of the path is not enough, since a socket file outlives the process that
// listened on it. It passes when connect succeeds within the timeout; the
// connection is then closed at once and no byte is sent. It fails with
//
//   - ClassRefused when the socket file exists but nothing listens on it
//     (ECONNREFUSED: a stale socket, or a path that is not a socket at all)
//     and when the path does not exist (ENOENT; Err then says "no such file
//     or directory"), as both mean that no backend serves the path,
//   - ClassPermission when the probing user may not write to the socket
//     (EACCES) or search a directory on its path,
//   - ClassTimeout when the listener's accept queue is full (connect fails
//     at once with EAGAIN, "resource temporarily unavailable"),
//   - ClassOther otherwise (for example EPROTOTYPE for a datagram socket).
//
// A Unix is safe for concurrent use.
type Unix struct {
	path   string
	target string
	dialer net.Dialer
}

var _ Prober = (*Unix)(nil)

// NewUnix returns a Unix probe of the socket at path. A path starting with
// "@" names a socket in Linux's abstract namespace. The Result's Target is
// "unix:" followed by path.
func NewUnix(path string) *Unix {
	return &Unix{path: path, target: "unix:" + path}
}

// Probe connects to the socket once under ctx bounded by timeout (a timeout of
// zero or less leaves ctx alone as the bound).
func (p *Unix) Probe(ctx context.Context, timeout time.Duration) Result {
	start := time.Now()
	ctx, cancel := withDeadline(ctx, timeout)
	defer cancel()
	conn, err := p.dialer.DialContext(ctx, "unix", p.path)
	if err != nil {
		return fail(ctx, p.target, start, ClassNone, err)
	}
	_ = conn.Close()
	return pass(p.target, start)
}

func newUnixSpec(s Spec) (Prober, error) {
	if s.Path == "" {
		return nil, errors.New("new unix probe: path is empty")
	}
	return NewUnix(s.Path), nil
}

func init() { Kinds["unix"] = newUnixSpec }
