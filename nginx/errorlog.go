// Package nginx is medic's nginx integration: it recognises nginx's
// upstream errors in its error log (ParseErrorLine), follows that log across
// rotations (Follow, Follower), and reads nginx's configuration to list the
// backends it proxies to and the units that serve them (ParseConfig,
// Discover).
package nginx

import (
	"net/netip"
	"strconv"
	"strings"
	"time"
)

// Kinds of upstream errors.
const (
	// KindConnectFailed: connect(2) to the upstream failed: refused (111),
	// no route to host (113), permission denied on a unix socket (13), no
	// such socket file (2), or another errno.
	KindConnectFailed = "connect_failed"
	// KindTimedOut: nginx gave up waiting for the upstream (110), while
	// connecting or while reading its response.
	KindTimedOut = "timed_out"
	// KindNoLiveUpstreams: every server of an upstream group is marked
	// failed (max_fails within fail_timeout) or down.
	KindNoLiveUpstreams = "no_live_upstreams"
)

// UpstreamError is one line of nginx's error log that says a request could
// not reach its upstream.
type UpstreamError struct {
	// Time is when nginx wrote the line, read in the local time zone (nginx
	// writes local time without a zone).
	Time time.Time
	// Level is the severity in brackets: "error", "crit" (unix sockets) ...
	Level string
	// PID and TID are the worker's process and thread ids ("1234#1234").
	PID, TID int
	// Conn is the connection number (the "*5"); 0 when the line has none.
	Conn int64
	// Errno is the error number in parentheses: 111 (connection refused),
	// 113 (no route to host), 110 (timed out), 13 (permission denied), 2 (no
	// such file) ...; 0 for "no live upstreams".
	Errno int
	// Kind is KindConnectFailed, KindTimedOut or KindNoLiveUpstreams.
	Kind string
	// Message is the error text before the context, e.g. "connect() failed
	// (111: Connection refused) while connecting to upstream".
	Message string
	// Upstream is the upstream as nginx wrote it:
	// "http://127.0.0.1:8080/health", "http://unix:/run/app.sock:/",
	// "fastcgi://127.0.0.1:9000", "127.0.0.1:5432" (stream), or
	// "http://backend/" for "no live upstreams".
	Upstream string
	// Addr is the address the upstream error is about, normalised:
	// "127.0.0.1:8080", "[::1]:8080", "unix:/run/app.sock", or a name with
	// its port as written ("app.internal:8080"); "" when the line names an
	// upstream group instead (no live upstreams).
	Addr string
	// Group is the upstream group of a "no live upstreams" line ("backend").
	Group string
	// Client, Server, Request and Host are the request's context; Request
	// and Host come from the client and are not to be trusted.
	Client, Server, Request, Host string
}

// ParseErrorLine recognises a line of nginx's error log (with or without
// its trailing newline) that reports an upstream error:
//
//	2026/11/21 08:00:00 [error] 1234#1234: *5 connect() failed (111: Connection refused) while connecting to upstream, client: 127.0.0.1, server: _, request: "GET / HTTP/1.1", upstream: "http://127.0.0.1:8080/", host: "127.0.0.1:8081"
//
// It knows "connect() failed (N: ...) while connecting to upstream",
// "connect() to ADDR failed (N: ...) while connecting to upstream" (ADDR is
// "unix:PATH" or host:port),
// "upstream timed out (110: ...) while ... upstream" and "no live upstreams
// while connecting to upstream", from the http and the stream modules. It
// returns false for every other line, and for lines that name no upstream.
//
// ParseErrorLine is pure; its strings are substrings of line.
func ParseErrorLine(line string) (UpstreamError, bool) {
	var e UpstreamError
	line = strings.TrimRight(line, "\r\n")

	// "2026/11/21 08:00:00 [error] 1234#1234: "
	if len(line) < 20 || line[19] != ' ' {
		return e, false
	}
	t, err := time.ParseInLocation("2006/01/02 15:04:05", line[:19], time.Local)
	if err != nil {
		return e, false
	}
	e.Time = t
	rest := line[20:]
	if !strings.HasPrefix(rest, "[") {
		return e, false
	}
	end := strings.IndexByte(rest, ']')
	if end < 0 {
		return e, false
	}
	e.Level, rest = rest[1:end], rest[end+1:]
	rest, ok := strings.CutPrefix(rest, " ")
	if !ok {
		return e, false
	}
	ids, rest, ok := strings.Cut(rest, ": ")
	if !ok {
		return e, false
	}
	pid, tid, ok := strings.Cut(ids, "#")
	if !ok {
		return e, false
	}
	if e.PID, ok = atoi(pid); !ok {
		return e, false
	}
	if e.TID, ok = atoi(tid); !ok {
		return e, false
	}
	if r, ok := strings.CutPrefix(rest, "*"); ok {
		n, after, ok := strings.Cut(r, " ")
		if !ok {
			return e, false
		}
		c, err := strconv.ParseInt(n, 10, 64)
		if err != nil || c < 0 {
			return e, false
		}
		e.Conn, rest = c, after
	}

	// The message ends where the context begins.
	msg, ctx, ok := strings.Cut(rest, ", client: ")
	if !ok {
		return e, false
	}
	e.Message = msg
	var unixPath string
	errAt := -1 // where "N: text)" starts
	switch {
	case strings.HasPrefix(msg, "no live upstreams while "):
		e.Kind = KindNoLiveUpstreams
	case strings.HasPrefix(msg, "connect() failed ("):
		e.Kind = KindConnectFailed
		errAt = len("connect() failed (")
	case strings.HasPrefix(msg, "connect() to "):
		// nginx writes the peer when connect(2) fails at once: "connect() to
		// unix:/run/app.sock failed (13: Permission denied)", "connect() to
		// 10.0.0.5:8080 failed (113: No route to host)".
		i := strings.LastIndex(msg, " failed (")
		if i < len("connect() to ") {
			return e, false
		}
		e.Kind = KindConnectFailed
		errAt = i + len(" failed (")
		if p, ok := strings.CutPrefix(msg[len("connect() to "):i], "unix:"); ok && p != "" {
			unixPath = p
		}
	case strings.HasPrefix(msg, "upstream timed out ("):
		e.Kind = KindTimedOut
		errAt = len("upstream timed out (")
	default:
		return e, false
	}
	if !strings.HasSuffix(msg, " upstream") {
		return e, false
	}
	if errAt >= 0 {
		n, _, ok := strings.Cut(msg[errAt:], ": ")
		if !ok {
			return e, false
		}
		if e.Errno, ok = atoi(n); !ok {
			return e, false
		}
	}

	// The context: client: A, server: S[, request: "R"][, subrequest:
	// "R"], upstream: "U"[, host: "H"][, referrer: "F"]. The request line
	// comes from the client but holds no spaces (nginx refuses those since
	// 1.21.1), so the first `, upstream: "` is nginx's.
	e.Client, ctx, _ = strings.Cut(ctx, ", ")
	if s, ok := strings.CutPrefix(ctx, "server: "); ok {
		e.Server, ctx, _ = strings.Cut(s, ", ")
	}
	if r, ok := strings.CutPrefix(ctx, `request: "`); ok {
		if i := strings.Index(r, `", `); i >= 0 {
			e.Request, ctx = r[:i], r[i+3:]
		} else {
			e.Request, ctx = strings.TrimSuffix(r, `"`), ""
		}
	}
	i := strings.Index(ctx, `upstream: "`)
	if i < 0 {
		return e, false
	}
	u := ctx[i+len(`upstream: "`):]
	j := strings.IndexByte(u, '"')
	if j < 0 {
		return e, false
	}
	e.Upstream, ctx = u[:j], u[j+1:]
	if i := strings.Index(ctx, `host: "`); i >= 0 {
		h := ctx[i+len(`host: "`):]
		if j := strings.IndexByte(h, '"'); j >= 0 {
			e.Host = h[:j]
		}
	}

	addr, group := upstreamAddr(e.Upstream)
	switch {
	case unixPath != "":
		e.Addr = "unix:" + unixPath
	case e.Kind == KindNoLiveUpstreams:
		e.Group = group
		if e.Group == "" {
			e.Group = addr
		}
	default:
		e.Addr = addr
		e.Group = group
	}
	if e.Addr == "" && e.Group == "" {
		return e, false
	}
	return e, true
}

// upstreamAddr returns the normalised address of an upstream as nginx logs
// it ("http://127.0.0.1:8080/x", "http://unix:/run/a.sock:/x",
// "127.0.0.1:5432"), or, when it names no port, the name as group.
func upstreamAddr(u string) (addr, group string) {
	if i := strings.Index(u, "://"); i >= 0 {
		u = u[i+3:]
	}
	if p, ok := strings.CutPrefix(u, "unix:"); ok {
		// nginx writes the socket path, ":" and the URI.
		if i := strings.Index(p, ":/"); i >= 0 {
			p = p[:i]
		} else {
			p = strings.TrimSuffix(p, ":")
		}
		if p == "" {
			return "", ""
		}
		return "unix:" + p, ""
	}
	if i := strings.IndexByte(u, '/'); i >= 0 {
		u = u[:i]
	}
	return NormalizeAddr(u)
}

// NormalizeAddr normalises a host:port the way ParseErrorLine fills
// UpstreamError.Addr, so that a check's probe address compares equal to it:
// IP addresses as netip prints them ("127.0.0.1:8080", "[::1]:8080"), names
// lowercased with their port. A host without a port is returned as group
// (an upstream group's name), with addr "".
func NormalizeAddr(hostport string) (addr, group string) {
	if hostport == "" {
		return "", ""
	}
	if ap, err := netip.ParseAddrPort(hostport); err == nil {
		var buf [64]byte
		b := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()).AppendTo(buf[:0])
		if string(b) == hostport {
			return hostport, "" // already normal: no allocation
		}
		return string(b), ""
	}
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 || strings.HasSuffix(hostport, "]") {
		return "", hostport
	}
	host, port := hostport[:i], hostport[i+1:]
	if _, ok := atoi(port); !ok || host == "" || strings.ContainsAny(host, "[]:") {
		return "", ""
	}
	return strings.ToLower(hostport), ""
}

// atoi parses a non-negative decimal int of at most 9 digits.
func atoi(s string) (int, bool) {
	if s == "" || len(s) > 9 {
		return 0, false
	}
	n := 0
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}
