package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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
	// ReloadError is why the last reload failed (the running configuration
	// stayed); "" once a reload succeeded.
	ReloadError string `json:"reload_error,omitempty"`
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
//	POST /v1/resume {"check"}                    → {"ok":true}
//
// "for" is a Go duration string. Errors answer 400 (bad request), 404 (no
// such check) or 422 (the reload failed), with {"error": "..."}.
const (
	ReloadPath = "/v1/reload"
	PausePath  = "/v1/pause"
	ResumePath = "/v1/resume"
)

// maxRequestBody bounds a control request.
const maxRequestBody = 64 << 10

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
}

// ParsePauseRequest decodes and checks a pause request body: a known field
// set, a check name, and a positive duration of at most 30 days.
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
	if err != nil || d <= 0 || d > 30*24*time.Hour {
		return req, 0, fmt.Errorf("parse pause request: for %q: want a duration like 30m, up to 720h", req.For)
	}
	return req, d, nil
}

// ServeStatus serves the status API on ln until ctx ends, then closes ln
// (which removes the socket file).
func ServeStatus(ctx context.Context, ln net.Listener, ctl Controller) error {
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
		}
		reply(w, code, ControlResponse{Error: err.Error()})
	}
	mux.HandleFunc("GET "+StatusPath, func(w http.ResponseWriter, _ *http.Request) {
		reply(w, http.StatusOK, ctl.Report())
	})
	mux.HandleFunc("POST "+ReloadPath, func(w http.ResponseWriter, r *http.Request) {
		if err := ctl.Reload(r.Context()); err != nil {
			fail(w, fmt.Errorf("%w: %w", errReload, err))
			return
		}
		reply(w, http.StatusOK, ControlResponse{OK: true})
	})
	mux.HandleFunc("POST "+PausePath, func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBody))
		if err != nil {
			fail(w, err)
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
	})
	mux.HandleFunc("POST "+ResumePath, func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Check string `json:"check"`
		}
		dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil || req.Check == "" {
			fail(w, fmt.Errorf("parse resume request: want {\"check\": NAME}"))
			return
		}
		if err := ctl.Resume(r.Context(), req.Check); err != nil {
			fail(w, err)
			return
		}
		reply(w, http.StatusOK, ControlResponse{OK: true})
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

// errReload marks a failed reload in answers (422).
var errReload = errors.New("reload failed, the running configuration stays")

// Control sends a control verb to the status socket at path: POST to
// apiPath with body (nil for none). It returns the error medic answered.
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
		return cr, errors.New(cr.Error)
	}
	return cr, nil
}

func unixClient(path string) *http.Client {
	return &http.Client{Transport: &http.Transport{
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
