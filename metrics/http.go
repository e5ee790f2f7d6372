package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Path is where [Metrics.Handler] serves the metrics.
const Path = "/metrics"

// DefaultHost is the host [Listen] binds when the address names none.
const DefaultHost = "127.0.0.1"

// Timeouts of the server [Metrics.Serve] runs.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	scrapeTimeout     = 20 * time.Second // below writeTimeout
	shutdownTimeout   = 5 * time.Second
)

// Handler returns the HTTP handler of the metrics endpoint. It serves the
// registry at [Path] to GET and HEAD requests, in the text or OpenMetrics
// format as the scraper asks, and answers 405 Method Not Allowed to other
// methods and 404 Not Found to other paths. Scrapes are counted in
// promhttp_metric_handler_requests_total.
func (m *Metrics) Handler() http.Handler {
	h := promhttp.InstrumentMetricHandler(m.reg, promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		// A collector that fails leaves its metrics out; the others are
		// still served, and the failure is counted in
		// promhttp_metric_handler_errors_total.
		ErrorHandling:       promhttp.ContinueOnError,
		Registry:            m.reg,
		MaxRequestsInFlight: 4,
		Timeout:             scrapeTimeout,
		EnableOpenMetrics:   true,
	}))
	mux := http.NewServeMux()
	// "GET" also matches HEAD; the mux answers other methods with 405 and
	// an Allow header.
	mux.Handle(http.MethodGet+" "+Path, h)
	return mux
}

// Listen opens the TCP listener for the metrics endpoint at addr, the
// metrics_listen setting, in "host:port" form. An empty host (":9464")
// binds [DefaultHost], 127.0.0.1, never all interfaces. Any host written in
// addr is bound as written, including a non-loopback one such as
// "0.0.0.0:9464": exposing the metrics beyond the machine is an explicit
// choice of the configuration. Listen fails when addr is empty or has no
// port, or when the address cannot be bound.
func Listen(addr string) (net.Listener, error) {
	if addr == "" {
		return nil, errors.New("listen for metrics: empty address")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics: %w", err)
	}
	if port == "" {
		return nil, fmt.Errorf("listen for metrics: address %q: missing port", addr)
	}
	if host == "" {
		host = DefaultHost
	}
	ln, err := net.Listen("tcp", net.JoinHostPort(host, port))
	if err != nil {
		return nil, fmt.Errorf("listen for metrics: %w", err)
	}
	return ln, nil
}

// Serve serves [Metrics.Handler] on ln until ctx ends, then shuts the server
// down, giving scrapes in flight up to 5 seconds to finish, and closes ln.
// It returns nil after a shutdown caused by ctx, and the server's error if
// serving failed for another reason.
func (m *Metrics) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           m.Handler(),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    16 << 10,
	}
	shutdown := make(chan error, 1)
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
		defer cancel()
		err := srv.Shutdown(sctx)
		if err != nil {
			srv.Close() // scrapes still running after the grace period
		}
		shutdown <- err
	})
	err := srv.Serve(ln)
	if !errors.Is(err, http.ErrServerClosed) {
		if stop() {
			// Shutdown never started; close the listener and idle
			// connections ourselves.
			srv.Close()
		} else {
			<-shutdown
		}
		return fmt.Errorf("serve metrics: %w", err)
	}
	if err := <-shutdown; err != nil {
		return fmt.Errorf("shut down metrics server: %w", err)
	}
	return nil
}
