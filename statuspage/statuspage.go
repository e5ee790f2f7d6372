// Package statuspage serves medic's read-only status web page ([agent]
// http_listen): every check with its state, the open incidents with their
// timelines and diagnosis checklists, and the incident history of the last
// seven days with a chart of the time to recovery of each incident, per
// check.
//
// The page is HTML rendered on the server from embedded templates
// (html/template, which escapes every string: problems, diagnoses and
// timelines come from backends), with an inline SVG chart and a stylesheet
// served from the same embedded files. It runs no JavaScript and fetches
// nothing from elsewhere; it reloads itself every 10 seconds (<meta
// http-equiv="refresh">). It is read-only: GET and HEAD only, and nothing
// on it pauses, resumes or reloads (those stay on the status socket, where
// the peer's uid is known).
//
// The handler takes its data from functions (Sources), so it is tested
// without an agent; cmd/medic wires it to the running agent and state_dir.
package statuspage

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/notify"
)

// Paths the handler serves; every other path is 404 Not Found.
const (
	// Path is the page.
	Path = "/"
	// StylePath is its stylesheet.
	StylePath = "/style.css"
)

// DefaultHost is the host [Listen] binds when the address names none.
const DefaultHost = "127.0.0.1"

// HistoryWindow is how far back the history table and chart reach: the
// incidents that ended within it.
const HistoryWindow = 7 * 24 * time.Hour

// Bounds of one page.
const (
	// MaxHistoryRows bounds the rows of the history table (newest first).
	MaxHistoryRows = 50
	// MaxChartChecks bounds the checks (rows) of the chart: those with the
	// most incidents in the window.
	MaxChartChecks = 40
	// MaxChartMarks bounds the incidents drawn in the chart (newest first).
	MaxChartMarks = 2000
	// MaxInFlight bounds the pages rendered at once; a request beyond it
	// is answered 503 Service Unavailable with Retry-After.
	MaxInFlight = 4
	// RefreshSeconds is the page's reload interval.
	RefreshSeconds = 10
	// HistoryReuse is how long the history read for one page serves the
	// next ones: reading a thousand records costs about 0.2 s, so it is
	// read at most once in that time however many pages are open.
	HistoryReuse = 5 * time.Second
)

// Headers sent with every response, errors included.
const (
	// ContentSecurityPolicy allows nothing but the page's own stylesheet
	// and data: images: no script, no frame, no form, no other origin.
	ContentSecurityPolicy = "default-src 'none'; style-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)

// Timeouts and limits of the server [Serve] runs.
const (
	ReadHeaderTimeout = 5 * time.Second
	ReadTimeout       = 10 * time.Second
	WriteTimeout      = 30 * time.Second
	IdleTimeout       = 60 * time.Second
	MaxHeaderBytes    = 16 << 10
	shutdownTimeout   = 2 * time.Second
)

// Sources are where the page's data comes from. Each function is called
// once per page, from the request's goroutine.
type Sources struct {
	// Report returns the running agent's report, as the status socket
	// serves it to `medic status`. Required.
	Report func() agent.Report
	// OpenIncident returns the open incident of check with its timeline
	// (agent.SavedIncident); nil, nil when none is known. Nil: no
	// timelines.
	OpenIncident func(check string) (*notify.Incident, error)
	// History returns the kept incidents, newest first, and the record
	// files it skipped (history.List). Nil: no history.
	History func() ([]history.Record, []history.Corrupt, error)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

//go:embed templates/page.html static/style.css
var files embed.FS

var pageTemplate = template.Must(template.New("page.html").Funcs(template.FuncMap{
	"add": func(a, b int) int { return a + b },
	"sub": func(a, b int) int { return a - b },
}).ParseFS(files, "templates/page.html"))

var style = func() []byte {
	b, err := files.ReadFile("static/style.css")
	if err != nil {
		panic(err)
	}
	return b
}()

// Handler returns the page's HTTP handler. It serves the page at [Path]
// and its stylesheet at [StylePath] to GET and HEAD requests, and answers
// 405 Method Not Allowed (Allow: GET, HEAD) to every other method, 404 to
// other paths, 503 when [MaxInFlight] pages are being rendered, and 421
// Misdirected Request when allowHost is not nil and says no to the
// request's Host (see [LoopbackHost]). Every response carries the
// security headers: Content-Security-Policy ([ContentSecurityPolicy]),
// X-Content-Type-Options nosniff, Referrer-Policy no-referrer,
// X-Frame-Options DENY, Cache-Control no-store.
func Handler(src Sources, allowHost func(host string) bool) http.Handler {
	if src.Now == nil {
		src.Now = time.Now
	}
	p := &pager{src: src, slots: make(chan struct{}, MaxInFlight)}
	if src.History != nil {
		p.readHistory, p.src.History = src.History, p.history
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.page)
	mux.HandleFunc("GET "+StylePath, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
		_, _ = w.Write(style)
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", ContentSecurityPolicy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-store")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed: this page is read-only (GET, HEAD); use medic's status socket to change anything", http.StatusMethodNotAllowed)
			return
		}
		if allowHost != nil && !allowHost(r.Host) {
			http.Error(w, "misdirected request: this page answers only to the address it listens on (Host "+hostName(r.Host)+" refused)", http.StatusMisdirectedRequest)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// pager renders the page.
type pager struct {
	src   Sources
	slots chan struct{}

	readHistory func() ([]history.Record, []history.Corrupt, error)
	mu          sync.Mutex // one history read at a time; guards the fields below
	read        time.Time  // when recs, bad and readErr were read; zero: never
	recs        []history.Record
	bad         []history.Corrupt
	readErr     error
}

// history returns what src.History returned, read again when the last
// read is older than HistoryReuse. The records are shared: callers only
// read them.
func (p *pager) history() ([]history.Record, []history.Corrupt, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.src.Now()
	if p.read.IsZero() || now.Sub(p.read) >= HistoryReuse || now.Before(p.read) {
		p.recs, p.bad, p.readErr = p.readHistory()
		p.read = now
	}
	return p.recs, p.bad, p.readErr
}

func (p *pager) page(w http.ResponseWriter, r *http.Request) {
	select {
	case p.slots <- struct{}{}:
		defer func() { <-p.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "busy: too many pages being rendered; try again", http.StatusServiceUnavailable)
		return
	}
	v := build(p.src, p.src.Now())
	var b bytes.Buffer
	if err := pageTemplate.Execute(&b, v); err != nil {
		http.Error(w, "render status page: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = io.Copy(w, &b)
}

// Listen opens the TCP listener of the page at addr, the http_listen
// setting, in "host:port" form. An empty host (":9465") binds
// [DefaultHost], 127.0.0.1, never all interfaces; any host written in
// addr is bound as written, including a non-loopback one ("0.0.0.0:9465"),
// which the caller should report (see [IsLoopback]). Listen fails when
// addr is empty or has no port, or when the address cannot be bound.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, errors.New("listen for the status page: empty address")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen for the status page: %w", err)
	}
	if port == "" {
		return nil, fmt.Errorf("listen for the status page: address %q: missing port", addr)
	}
	if host == "" {
		host = DefaultHost
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("listen for the status page: %w", err)
	}
	return ln, nil
}

// IsLoopback reports whether a is a loopback address (127.0.0.0/8, ::1).
func IsLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// LoopbackHost reports whether host, a request's Host header, names the
// machine's loopback interface: "localhost" or an IP address (with or
// without a port). A page that listens on loopback only answers such
// requests, so that a web page elsewhere cannot read it through a name of
// its own that it points at 127.0.0.1 (DNS rebinding).
func LoopbackHost(host string) bool {
	h := hostName(host)
	if strings.EqualFold(h, "localhost") || strings.HasSuffix(strings.ToLower(h), ".localhost") {
		return true
	}
	_, err := netip.ParseAddr(h)
	return err == nil
}

// hostName is host without its port and brackets.
func hostName(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}

// Serve serves h on ln until ctx ends, then shuts the server down, giving
// requests in flight up to 2 seconds, and closes ln. It returns nil after
// a shutdown caused by ctx, and the server's error if serving failed for
// another reason. The server's bounds: ReadHeaderTimeout 5 s, ReadTimeout
// 10 s, WriteTimeout 30 s, IdleTimeout 60 s, MaxHeaderBytes 16 KiB.
func Serve(ctx context.Context, ln net.Listener, h http.Handler) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: ReadHeaderTimeout,
		ReadTimeout:       ReadTimeout,
		WriteTimeout:      WriteTimeout,
		IdleTimeout:       IdleTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	shutdown := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(shutdown)
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		if srv.Shutdown(sctx) != nil {
			_ = srv.Close() // requests still running after the grace period
		}
	})
	err := srv.Serve(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		if stop() {
			_ = srv.Close() // shutdown never started
		} else {
			<-shutdown
		}
		return fmt.Errorf("serve status page: %w", err)
	}
	<-shutdown
	return nil
}
