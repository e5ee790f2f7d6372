package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/medic-watchdog/medic/internal/termsafe"
	"github.com/medic-watchdog/medic/notify/outbox"
)

// Report is what the status socket answers to GET /v1/status, as JSON.
type Report struct {
	Version string    `json:"version"`
	Host    string    `json:"host"`
	Started time.Time `json:"started"`
	// Checks lists every check in configuration order.
	Checks []Status `json:"checks"`
	// Outbox lists per notifier the messages waiting for delivery.
	Outbox []outbox.Stat `json:"outbox,omitempty"`
	// ReloadError is why the last reload failed (the running configuration
	// stayed); "" once a reload succeeded.
	ReloadError string `json:"reload_error,omitempty"`
	// BusError is why the systemd bus cannot be reached while it cannot
	// (remediation waits for it; medic keeps redialing); "" while it can.
	BusError string `json:"bus_error,omitempty"`
}

// StatusPath is the HTTP path of the report on the status socket.
const StatusPath = "/v1/status"

// statusDirMode is the mode of the socket's directory when medic creates
// it: medic's user writes, medic's group may reach the socket.
const statusDirMode = 0o750

// statusSocketMode is the socket's mode: medic's user and group may
// connect (reading the status is the group's role; see mayControl for who
// may change state).
const statusSocketMode = 0o660

// ListenStatus binds the status socket at path, mode 0660 (medic's group
// may read the status), removing a stale socket left by an earlier run.
//
// The socket's directory is created (mode 0750) if needed and must then
// belong to medic's user or to root and be writable by its owner only:
// otherwise someone else could plant a symlink or another file at path, or
// swap it after the checks. ListenStatus fails when it is not, when path
// exists and is not a socket (a symlink, a regular file: it is left
// alone), or when another medic answers on it. Closing the listener removes
// the socket file, and only if it is still the one bound here.
//
// Why not simply os.Chmod(path): chmod(2) follows a symlink at path, so in
// a directory another user may write to, a symlink planted there made a
// root-owned 0600 file 0660. fchmod(2) on the socket's descriptor before
// bind does not help on Linux: it changes the mode of the socket's sockfs
// inode, while connect(2) checks the filesystem inode that bind creates
// (mode 0777 &^ umask), and changing the umask around bind would change it
// for every goroutine of medic at once. So medic checks the directory,
// binds, opens what is at path with O_PATH|O_NOFOLLOW (a symlink there is
// opened as itself, never followed), checks that it is a socket of medic's
// user and the one path leads to, and changes the mode of exactly that
// inode: fchmodat2(fd, "", AT_EMPTY_PATH) on Linux 6.6 and later, else
// chmod of /proc/self/fd/N, which names the opened inode and is not
// resolved again (what glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does).
func ListenStatus(path string) (net.Listener, error) {
	dir, base := filepath.Dir(path), filepath.Base(path)
	if base == "." || base == "/" || base == ".." {
		return nil, fmt.Errorf("bind status socket %s: not a file name", path)
	}
	if err := os.MkdirAll(dir, statusDirMode); err != nil {
		return nil, fmt.Errorf("bind status socket: %w", err)
	}
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("bind status socket: open %s: %w", dir, err)
	}
	ln, err := listenStatusIn(dfd, dir, base, path)
	if err != nil {
		unix.Close(dfd)
		return nil, fmt.Errorf("bind status socket %s: %w", path, err)
	}
	return ln, nil
}

// listenStatusIn is ListenStatus in the opened directory dfd.
func listenStatusIn(dfd int, dir, base, path string) (*statusListener, error) {
	euid := uint32(os.Geteuid())
	var st unix.Stat_t
	if err := unix.Fstat(dfd, &st); err != nil {
		return nil, fmt.Errorf("stat %s: %w", dir, err)
	}
	if st.Uid != euid && st.Uid != 0 {
		return nil, fmt.Errorf("directory %s belongs to uid %d, not to medic's user (uid %d) or root", dir, st.Uid, euid)
	}
	if st.Mode&0o022 != 0 {
		return nil, fmt.Errorf("directory %s is writable by group or others (mode %04o); the socket's directory must be writable by its owner only", dir, st.Mode&0o7777)
	}
	var old unix.Stat_t
	switch err := unix.Fstatat(dfd, base, &old, unix.AT_SYMLINK_NOFOLLOW); {
	case errors.Is(err, unix.ENOENT):
	case err != nil:
		return nil, fmt.Errorf("stat: %w", err)
	case old.Mode&unix.S_IFMT != unix.S_IFSOCK:
		return nil, fmt.Errorf("it exists and is not a socket (%s); medic leaves it alone", fs.FileMode(old.Mode&0o777)|modeType(old.Mode))
	default:
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errors.New("another medic is running")
		}
		if err := unix.Unlinkat(dfd, base, 0); err != nil && !errors.Is(err, unix.ENOENT) {
			return nil, fmt.Errorf("remove stale socket: %w", err)
		}
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		return nil, err
	}
	ln.SetUnlinkOnClose(false)
	sl := &statusListener{UnixListener: ln, dirfd: dfd, base: base}
	if err := sl.secure(path, euid); err != nil {
		ln.Close()
		if sl.ino != 0 {
			sl.unlinkOurs()
		}
		return nil, err
	}
	return sl, nil
}

// modeType returns the type bits of a stat mode as an fs.FileMode.
func modeType(m uint32) fs.FileMode {
	switch m & unix.S_IFMT {
	case unix.S_IFLNK:
		return fs.ModeSymlink
	case unix.S_IFDIR:
		return fs.ModeDir
	case unix.S_IFIFO:
		return fs.ModeNamedPipe
	case unix.S_IFCHR:
		return fs.ModeDevice | fs.ModeCharDevice
	case unix.S_IFBLK:
		return fs.ModeDevice
	case unix.S_IFSOCK:
		return fs.ModeSocket
	}
	return 0
}

// statusListener is the bound status socket. It keeps its directory open
// so that Close removes the socket it bound and nothing else.
type statusListener struct {
	*net.UnixListener
	dirfd    int
	base     string
	dev, ino uint64

	once sync.Once
	err  error
}

// secure checks that path leads to the socket just bound, a socket of
// euid in the checked directory, and sets its mode without following a
// symlink (see ListenStatus).
func (l *statusListener) secure(path string, euid uint32) error {
	fd, err := unix.Openat(l.dirfd, l.base, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open the bound socket: %w", err)
	}
	defer unix.Close(fd)
	var st, viaPath unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat the bound socket: %w", err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFSOCK || st.Uid != euid {
		return fmt.Errorf("what was bound is not a socket of uid %d (mode %o, uid %d)", euid, st.Mode, st.Uid)
	}
	l.dev, l.ino = st.Dev, st.Ino
	if err := unix.Lstat(path, &viaPath); err != nil || viaPath.Dev != st.Dev || viaPath.Ino != st.Ino {
		return errors.New("the path no longer leads to the bound socket (a directory on it was replaced)")
	}
	err = unix.Fchmodat(fd, "", statusSocketMode, unix.AT_EMPTY_PATH)
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOSYS) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EBADF) {
		// No fchmodat2 (Linux < 6.6): the magic link names the inode
		// opened above.
		err = unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), statusSocketMode)
	}
	if err != nil {
		return fmt.Errorf("set the socket's mode: %w", err)
	}
	return nil
}

// unlinkOurs removes the socket file if it is still the one bound here.
func (l *statusListener) unlinkOurs() {
	var st unix.Stat_t
	if unix.Fstatat(l.dirfd, l.base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev == l.dev && st.Ino == l.ino {
		_ = unix.Unlinkat(l.dirfd, l.base, 0)
	}
}

// Close stops listening and removes the socket file.
func (l *statusListener) Close() error {
	l.once.Do(func() {
		l.err = l.UnixListener.Close()
		l.unlinkOurs()
		unix.Close(l.dirfd)
	})
	return l.err
}

// Controller is what the status socket serves: the report, and the
// control verbs of `medic reload`, `medic pause` and `medic resume`.
type Controller interface {
	Report() Report
	// Reload reads the configuration file again and swaps it in; it
	// returns when the reload is done, with the error that kept the
	// running configuration.
	Reload(ctx context.Context) error
	Pause(ctx context.Context, check string, d time.Duration, reason string) (Pause, error)
	Resume(ctx context.Context, check string) error
}

// The status socket's API, version 1 (JSON over HTTP on a unix socket;
// there is no TCP listener for control):
//
//	GET  /v1/status                              → Report
//	POST /v1/reload                              → {"ok":true} or {"error":"..."} (422)
//	POST /v1/pause  {"check","for","reason"}     → {"ok":true,"until":...}
//	POST /v1/resume {"check"}                    → {"ok":true}, with "not_paused":true when it was not paused
//
// "for" is a Go duration string. Errors answer 400 (bad request), 403 (the
// peer may read the status but not change state, see mayControl), 404 (no
// such check) or 422 (the reload failed), with {"error": "..."}.
const (
	ReloadPath = "/v1/reload"
	PausePath  = "/v1/pause"
	ResumePath = "/v1/resume"
)

// maxRequestBody bounds a control request.
const maxRequestBody = 64 << 10

// MaxPause is the longest pause `medic pause` may ask for. A longer
// maintenance is a change of configuration (action = "none"), not a pause.
const MaxPause = 24 * time.Hour

// MaxPauseReason is the longest pause reason, in bytes once its control
// characters are escaped.
const MaxPauseReason = 256

// The status socket's bounds (see serverLimits). A connection that sends
// no complete request header within statusReadHeaderTimeout, or no
// complete request within statusReadTimeout, is closed; so is one idle
// between requests for statusIdleTimeout. statusWriteTimeout bounds a
// reply from the end of the request to its last byte, which is longer
// than controlTimeout, the time a control verb (a reload) may take. At
// most statusMaxConns connections are open at once; more wait in the
// kernel's accept queue until one closes.
const (
	statusReadHeaderTimeout = 5 * time.Second
	statusReadTimeout       = 10 * time.Second
	statusWriteTimeout      = 2 * time.Minute
	statusIdleTimeout       = 10 * time.Second
	statusMaxConns          = 64
	statusMaxHeaderBytes    = 16 << 10
	controlTimeout          = 90 * time.Second
)

// serverLimits are the status socket's timeouts and connection limit;
// tests shorten them. observe, when set, is told the number of open
// connections at each change.
type serverLimits struct {
	readHeader, read, write, idle time.Duration
	maxConns                      int
	observe                       func(open int)
}

var defaultServerLimits = serverLimits{
	readHeader: statusReadHeaderTimeout,
	read:       statusReadTimeout,
	write:      statusWriteTimeout,
	idle:       statusIdleTimeout,
	maxConns:   statusMaxConns,
}

// PauseRequest is the body of POST /v1/pause.
type PauseRequest struct {
	Check  string `json:"check"`
	For    string `json:"for"`
	Reason string `json:"reason,omitempty"`
}

// ControlResponse is the answer to a control verb.
type ControlResponse struct {
	OK    bool      `json:"ok"`
	Error string    `json:"error,omitempty"`
	Until time.Time `json:"until,omitzero"`
	// NotPaused, in the answer to a resume, says the check was not
	// paused (never paused, or its pause had ended): nothing was resumed.
	NotPaused bool `json:"not_paused,omitempty"`
}

// ParsePauseRequest decodes and checks a pause request body: a known field
// set, a check name, a positive duration of at most MaxPause, and a reason
// of at most MaxPauseReason bytes. The reason comes back with its control
// characters escaped (termsafe.Escape), as it is stored and shown.
func ParsePauseRequest(body []byte) (PauseRequest, time.Duration, error) {
	var req PauseRequest
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return req, 0, fmt.Errorf("parse pause request: %w", err)
	}
	if dec.More() {
		return req, 0, errors.New("parse pause request: data after the JSON object")
	}
	if req.Check == "" {
		return req, 0, errors.New("parse pause request: missing check")
	}
	d, err := time.ParseDuration(req.For)
	if err != nil || d <= 0 || d > MaxPause {
		return req, 0, fmt.Errorf("parse pause request: for %q: want a duration like 30m, up to %s", termsafe.Truncate(termsafe.Escape(req.For), 64), fmtHours(MaxPause))
	}
	req.Reason = termsafe.Escape(req.Reason)
	if len(req.Reason) > MaxPauseReason {
		return req, 0, fmt.Errorf("parse pause request: reason: %d bytes, at most %d", len(req.Reason), MaxPauseReason)
	}
	return req, d, nil
}

// fmtHours writes d as a whole number of hours, e.g. "24h".
func fmtHours(d time.Duration) string { return strconv.Itoa(int(d/time.Hour)) + "h" }

// peerKey is the context key of a connection's peer credentials.
type peerKey struct{}

// peerCred returns the credentials of the process at the other end of the
// status socket connection that ctx belongs to: SO_PEERCRED, read when the
// connection was accepted. ok is false when they could not be read.
func peerCred(ctx context.Context) (cred unix.Ucred, ok bool) {
	c, ok := ctx.Value(peerKey{}).(*unix.Ucred)
	if !ok || c == nil {
		return unix.Ucred{}, false
	}
	return *c, true
}

// mayControl reports whether the peer may change medic's state (pause,
// resume, reload): root, or medic's own user. Everyone else who can
// connect (the socket is mode 0660: medic's group) may only read the
// status.
func mayControl(cred unix.Ucred, ok bool) bool {
	return ok && (cred.Uid == 0 || cred.Uid == uint32(os.Geteuid()))
}

// errForbidden answers a control verb from a peer that may only read.
var errForbidden = errors.New("permission denied")

// ServeStatus serves the status API on ln until ctx ends, then closes ln
// (which removes the socket file). The connection limits and timeouts are
// the status* constants above; every connection's peer credentials are
// read at accept (SO_PEERCRED) and decide what it may do (mayControl).
func ServeStatus(ctx context.Context, ln net.Listener, ctl Controller) error {
	return serveStatus(ctx, ln, ctl, defaultServerLimits)
}

func serveStatus(ctx context.Context, ln net.Listener, ctl Controller, lim serverLimits) error {
	lln := newLimitListener(ln, lim.maxConns, lim.observe)
	srv := &http.Server{
		Handler:           statusHandler(ctl),
		ReadHeaderTimeout: lim.readHeader,
		ReadTimeout:       lim.read,
		WriteTimeout:      lim.write,
		IdleTimeout:       lim.idle,
		MaxHeaderBytes:    statusMaxHeaderBytes,
		ConnContext: func(ctx context.Context, c net.Conn) context.Context {
			if pc, ok := c.(*peerConn); ok && pc.cred != nil {
				return context.WithValue(ctx, peerKey{}, pc.cred)
			}
			return ctx
		},
		ErrorLog: log.New(io.Discard, "", 0),
	}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close()
		}
	})
	defer stop()
	if err := srv.Serve(lln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve status socket: %w", err)
	}
	return nil
}

// statusHandler routes the API's requests to ctl.
func statusHandler(ctl Controller) http.Handler {
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, code int, v any) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	}
	fail := func(w http.ResponseWriter, err error) {
		code := http.StatusBadRequest
		switch {
		case errors.Is(err, ErrNoCheck):
			code = http.StatusNotFound
		case errors.Is(err, errReload):
			code = http.StatusUnprocessableEntity
		case errors.Is(err, errForbidden):
			code = http.StatusForbidden
		}
		reply(w, code, ControlResponse{Error: err.Error()})
	}
	// control wraps a handler of a verb that changes state: only a peer
	// that mayControl gets through, with a context bounded by
	// controlTimeout.
	control := func(verb string, h func(w http.ResponseWriter, r *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			cred, ok := peerCred(r.Context())
			if !mayControl(cred, ok) {
				who := "a peer whose credentials cannot be read"
				if ok {
					who = fmt.Sprintf("uid %d", cred.Uid)
				}
				fail(w, fmt.Errorf("%s: %w: %s may read the status but not %s; only root and medic's own user (uid %d) may pause, resume or reload medic (try sudo)", verb, errForbidden, who, verb, os.Geteuid()))
				return
			}
			ctx, cancel := context.WithTimeout(r.Context(), controlTimeout)
			defer cancel()
			h(w, r.WithContext(ctx))
		}
	}
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, ctl.Report())
	})
	mux.HandleFunc("POST "+ReloadPath, control("reload", func(w http.ResponseWriter, r *http.Request) {
		if err := ctl.Reload(r.Context()); err != nil {
			fail(w, fmt.Errorf("%w: %w", errReload, err))
			return
		}
		reply(w, http.StatusOK, ControlResponse{OK: true})
	}))
	mux.HandleFunc("POST "+PausePath, control("pause", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
		if err != nil {
			fail(w, fmt.Errorf("read pause request: %w", err))
			return
		}
		req, d, err := ParsePauseRequest(body)
		if err != nil {
			fail(w, err)
			return
		}
		p, err := ctl.Pause(r.Context(), req.Check, d, req.Reason)
		if err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, ControlResponse{OK: true, Until: p.Until})
	}))
	mux.HandleFunc("POST "+ResumePath, control("resume", func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Check string `json:"check"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Check == "" {
			fail(w, errors.New("parse resume request: want {\"check\": NAME}"))
			return
		}
		paused := false
		for _, c := range ctl.Report().Checks {
			if c.Check == req.Check && c.Paused != nil {
				paused = true
			}
		}
		if err := ctl.Resume(r.Context(), req.Check); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, ControlResponse{OK: true, NotPaused: !paused})
	}))
	return mux
}

// limitListener is a listener with at most max connections open at once:
// Accept waits for one to close first (the rest wait in the kernel's
// accept queue, costing medic no file descriptor). Each connection carries
// its peer's credentials.
type limitListener struct {
	net.Listener
	sem     chan struct{}
	done    chan struct{}
	once    sync.Once
	open    atomic.Int32
	observe func(open int)
}

func newLimitListener(ln net.Listener, max int, observe func(int)) *limitListener {
	return &limitListener{Listener: ln, sem: make(chan struct{}, max), done: make(chan struct{}), observe: observe}
}

// Accept waits for a free slot, then for a connection.
func (l *limitListener) Accept() (net.Conn, error) {
	select {
	case l.sem <- struct{}{}:
	case <-l.done:
		return nil, net.ErrClosed
	}
	c, err := l.Listener.Accept()
	if err != nil {
		<-l.sem
		return nil, err
	}
	if n := l.open.Add(1); l.observe != nil {
		l.observe(int(n))
	}
	pc := &peerConn{Conn: c, l: l}
	if uc, ok := c.(*net.UnixConn); ok {
		if raw, err := uc.SyscallConn(); err == nil {
			_ = raw.Control(func(fd uintptr) {
				if cred, err := unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED); err == nil {
					pc.cred = cred
				}
			})
		}
	}
	return pc, nil
}

// Close stops accepting and closes the listener.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return l.Listener.Close()
}

// peerConn is an accepted connection that frees its slot when closed.
type peerConn struct {
	net.Conn
	l    *limitListener
	cred *unix.Ucred
	once sync.Once
}

// Close closes the connection and frees its slot.
func (c *peerConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() {
		n := c.l.open.Add(-1)
		<-c.l.sem
		if c.l.observe != nil {
			c.l.observe(int(n))
		}
	})
	return err
}

// errReload marks a failed reload in answers (422).
var errReload = errors.New("reload failed, the running configuration stays")

// Control sends a control verb to the status socket at path: POST to
// apiPath with body (nil for none). It returns the error medic answered,
// with its control characters escaped (termsafe.EscapeLines).
func Control(ctx context.Context, path, apiPath string, body any) (ControlResponse, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return ControlResponse{}, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://medic"+apiPath, rd)
	if err != nil {
		return ControlResponse{}, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := unixClient(path).Do(req)
	if err != nil {
		return ControlResponse{}, fmt.Errorf("talk to medic at %s: %w (is medic running?)", path, err)
	}
	defer resp.Body.Close()
	var cr ControlResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxRequestBody)).Decode(&cr); err != nil {
		return cr, fmt.Errorf("talk to medic at %s: %s: %w", path, resp.Status, err)
	}
	if !cr.OK {
		// The text is shown on a terminal: a reload's problems one per
		// line, nothing else of it acted on.
		return cr, errors.New(termsafe.EscapeLines(cr.Error))
	}
	return cr, nil
}

func unixClient(path string) *http.Client {
	// One request per command: no connection is kept open after it.
	return &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
}

// FetchStatus reads the report from the status socket at path.
func FetchStatus(ctx context.Context, path string) (*Report, error) {
	client := unixClient(path)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://medic"+StatusPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("read status from %s: %w (is medic running?)", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("read status from %s: %s", path, resp.Status)
	}
	var r Report
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, fmt.Errorf("read status from %s: %w", path, err)
	}
	return &r, nil
}
