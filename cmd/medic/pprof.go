package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"go.uber.org/zap"
)

// servePprof serves Go's profiling endpoints (/debug/pprof/: CPU and heap
// profiles, goroutines, execution traces) on addr until ctx ends. addr must
// be a loopback address with a port ("127.0.0.1:6060", "[::1]:6060",
// "localhost:6060"): profiles show medic's stacks and command line to
// whoever can connect, so they are never offered beyond the host. It
// returns an error when addr is not such an address or cannot be bound;
// serving errors after that are logged. The endpoints are on their own mux,
// not on http.DefaultServeMux (where importing net/http/pprof also puts
// them), and not on the metrics listener.
func servePprof(ctx context.Context, addr string, log *zap.Logger) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("pprof address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("pprof address %q: want a loopback address (127.0.0.1, ::1 or localhost) with a port", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("pprof: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("pprof server stopped", zap.Error(err))
		}
	}()
	context.AfterFunc(ctx, func() { _ = srv.Close() })
	log.Info("serving pprof", zap.String("address", ln.Addr().String()))
	return nil
}
