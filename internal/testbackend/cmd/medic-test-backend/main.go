// Command medic-test-backend is the backend that medic's test units run: an
// HTTP server answering GET /health with 200 "ok".
//
// Usage:
//
//	medic-test-backend -listen 127.0.0.1:8080 [-die-after 2s] [-fail]
//
// -fail exits 1 at once (a unit that always fails); -die-after exits 1
// after the duration (a backend that crashes later). Once it listens it
// sends READY=1 to $NOTIFY_SOCKET if set, so it also serves as a
// Type=notify unit. SIGTERM and SIGINT shut it down cleanly with exit 0.
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/medic-watchdog/medic/internal/testbackend"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	fail := flag.Bool("fail", false, "exit 1 at once")
	dieAfter := flag.Duration("die-after", 0, "exit 1 after this long (0: never)")
	flag.Parse()

	if *fail {
		fmt.Fprintln(os.Stderr, "medic-test-backend: -fail: exiting 1")
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *dieAfter > 0 {
		time.AfterFunc(*dieAfter, func() {
			fmt.Fprintf(os.Stderr, "medic-test-backend: -die-after %s: exiting 1\n", *dieAfter)
			os.Exit(1)
		})
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		fmt.Fprintf(os.Stderr, "medic-test-backend: listen on %s: %v\n", *listen, err)
		os.Exit(1)
	}
	fmt.Fprintf(os.Stderr, "medic-test-backend: listening on %s (pid %d)\n", ln.Addr(), os.Getpid())
	// Always false: unsetting NOTIFY_SOCKET would silence later messages.
	if _, err := daemon.SdNotify(false, daemon.SdNotifyReady); err != nil {
		fmt.Fprintf(os.Stderr, "medic-test-backend: sd_notify: %v\n", err)
	}
	if err := testbackend.ServeListener(ctx, ln); err != nil {
		fmt.Fprintf(os.Stderr, "medic-test-backend: %v\n", err)
		os.Exit(1)
	}
}
