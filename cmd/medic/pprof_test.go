package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

func TestServePprofRefusesNonLoopback(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:6060", ":6060", "192.0.2.1:6060", "example.com:6060", "127.0.0.1"} {
		err := servePprof(t.Context(), addr, zaptest.NewLogger(t))
		if err == nil || !strings.Contains(err.Error(), "pprof address") {
			t.Errorf("servePprof(%q) = %v, want a pprof address error", addr, err)
		}
	}
}

func TestServePprof(t *testing.T) {
	// Find a free loopback port, then serve there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	ctx, cancel := context.WithCancel(t.Context())
	if err := servePprof(ctx, addr, zaptest.NewLogger(t)); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline"} {
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %s, want 200", path, resp.Status)
		}
	}
	cancel()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			break // closed with ctx
		}
		_ = c.Close()
		if time.Now().After(deadline) {
			t.Fatalf("pprof still listening on %s after its context ended", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
