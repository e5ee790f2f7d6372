package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

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
}

// StatusPath is the HTTP path of the report on the status socket.
const StatusPath = "/v1/status"

// ListenStatus binds the status socket at path (mode 0660: medic's group may
// read it), removing a stale socket file left by an earlier run. It creates
// the parent directory if needed.
func ListenStatus(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("bind status socket: %w", err)
	}
	if fi, err := os.Lstat(path); err == nil && fi.Mode()&fs.ModeSocket != 0 {
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("bind status socket %s: another medic is running", path)
		}
		_ = os.Remove(path)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("bind status socket: %w", err)
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("bind status socket: %w", err)
	}
	return ln, nil
}

// ServeStatus answers GET /v1/status on ln with report() as JSON until ctx
// ends, then closes ln (which removes the socket file).
func ServeStatus(ctx context.Context, ln net.Listener, report func() Report) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(report())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	stop := context.AfterFunc(ctx, func() {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	})
	defer stop()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve status socket: %w", err)
	}
	return nil
}

// FetchStatus reads the report from the status socket at path.
func FetchStatus(ctx context.Context, path string) (*Report, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		},
	}}
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
