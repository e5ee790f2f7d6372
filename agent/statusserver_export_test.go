package agent

import (
	"context"
	"net"
	"net/http"
	"time"

	"golang.org/x/sys/unix"
)

// StatusLimits are the status socket's timeouts and connection limit,
// shortened by tests.
type StatusLimits struct {
	ReadHeader, Read, Write, Idle time.Duration
	MaxConns                      int
	// Observe is told the number of open connections at each change.
	Observe func(open int)
}

// ServeStatusWithLimits is ServeStatus with lim instead of the defaults.
func ServeStatusWithLimits(ctx context.Context, ln net.Listener, ctl Controller, lim StatusLimits) error {
	return serveStatus(ctx, ln, ctl, serverLimits{
		readHeader: lim.ReadHeader, read: lim.Read, write: lim.Write, idle: lim.Idle,
		maxConns: lim.MaxConns, observe: lim.Observe,
	})
}

// StatusHandler is the status socket's HTTP handler.
func StatusHandler(ctl Controller) http.Handler { return statusHandler(ctl) }

// WithPeer returns ctx as the status server gives it to a handler for a
// peer of uid (no credentials at all when uid is negative).
func WithPeer(ctx context.Context, uid int) context.Context {
	if uid < 0 {
		return ctx
	}
	return context.WithValue(ctx, peerKey{}, &unix.Ucred{Pid: 1, Uid: uint32(uid), Gid: uint32(uid)})
}
