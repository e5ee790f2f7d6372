package probe

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// Loopback cannot produce ClassUnreachable or ClassPermission for HTTP (see
// tcp_test.go); TestClassify covers their mapping.

func newHTTP(t *testing.T, o HTTPOptions) *HTTP {
	t.Helper()
	p, err := NewHTTP(o)
	if err != nil {
		t.Fatalf("NewHTTP(%+v): %v", o, err)
	}
	return p
}

// writeCA writes the certificate of an httptest TLS server as PEM and
// returns the file's path.
func writeCA(t *testing.T, srv *httptest.Server) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestHTTP(t *testing.T) {
	var elsewhere atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("status: ok\n")) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	})
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusMovedPermanently)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) { elsewhere.Add(1) })
	mux.HandleFunc("/starting", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte("starting\n")) })
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		// "ok" lies just past the 64 KiB a probe reads.
		_, _ = w.Write([]byte(strings.Repeat("x", MaxBodyRead) + "ok"))
	})
	mux.HandleFunc("/big-early", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(strings.Repeat("x", MaxBodyRead-2) + "ok" + strings.Repeat("x", 1<<20)))
	})
	mux.HandleFunc("/headers", func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "app.internal" || r.Header.Get("X-Probe") != "medic" || r.Method != http.MethodHead {
			http.Error(w, "wrong request", http.StatusBadRequest)
		}
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	closed := "http://" + closedTCPAddr(t) + "/health"

	tests := []struct {
		name       string
		opts       HTTPOptions
		wantOK     bool
		wantClass  Class
		wantErrHas []string
	}{
		{name: "ok default status", opts: HTTPOptions{URL: srv.URL + "/ok"}, wantOK: true},
		{name: "ok with body", opts: HTTPOptions{URL: srv.URL + "/ok", ExpectBody: "ok"}, wantOK: true},
		{name: "ok listed 5xx", opts: HTTPOptions{URL: srv.URL + "/down", ExpectStatus: []StatusRange{{500, 599}}}, wantOK: true},
		{name: "ok headers, host and method", opts: HTTPOptions{URL: srv.URL + "/headers", Method: http.MethodHead,
			Headers: map[string]string{"host": "app.internal", "X-Probe": "medic"}}, wantOK: true},
		{name: "ok body at the end of the first 64 KiB", opts: HTTPOptions{URL: srv.URL + "/big-early", ExpectBody: "ok"}, wantOK: true},
		{name: "status", opts: HTTPOptions{URL: srv.URL + "/down"}, wantClass: ClassHTTPStatus,
			wantErrHas: []string{"GET " + srv.URL + "/down: status 503 Service Unavailable, want 200-299"}},
		{name: "status not in list", opts: HTTPOptions{URL: srv.URL + "/ok", ExpectStatus: []StatusRange{{204, 204}, {300, 399}}},
			wantClass: ClassHTTPStatus, wantErrHas: []string{"status 200 OK, want 204, 300-399"}},
		{name: "redirect not listed", opts: HTTPOptions{URL: srv.URL + "/moved"}, wantClass: ClassHTTPStatus,
			wantErrHas: []string{"status 301 Moved Permanently (Location: /elsewhere), want 200-299"}},
		{name: "redirect listed", opts: HTTPOptions{URL: srv.URL + "/moved", ExpectStatus: []StatusRange{{301, 301}}}, wantOK: true},
		{name: "status checked before body", opts: HTTPOptions{URL: srv.URL + "/down", ExpectBody: "ok"}, wantClass: ClassHTTPStatus,
			wantErrHas: []string{"status 503"}},
		{name: "body mismatch", opts: HTTPOptions{URL: srv.URL + "/starting", ExpectBody: "ok"}, wantClass: ClassBodyMismatch,
			wantErrHas: []string{"GET " + srv.URL + `/starting: body does not contain "ok" (read 9 bytes)`}},
		{name: "body past 64 KiB", opts: HTTPOptions{URL: srv.URL + "/big", ExpectBody: "ok"}, wantClass: ClassBodyMismatch,
			wantErrHas: []string{`body does not contain "ok" (read 65536 bytes)`}},
		{name: "refused", opts: HTTPOptions{URL: closed}, wantClass: ClassRefused,
			wantErrHas: []string{`Get "` + closed + `": dial tcp `, "connect: connection refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHTTP(t, tt.opts).Probe(context.Background(), 2*time.Second)
			checkResult(t, r, tt.opts.URL, tt.wantOK, tt.wantClass, tt.wantErrHas...)
		})
	}
	if n := elsewhere.Load(); n != 0 {
		t.Errorf("the redirect target was requested %d times; redirects must not be followed", n)
	}
}

func TestHTTPTLS(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte("ok"))
	}))
	// The failed handshakes are the point; keep them out of the test log.
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := writeCA(t, srv)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	t.Cleanup(plain.Close)
	plainAsHTTPS := strings.Replace(plain.URL, "http://", "https://", 1)

	tests := []struct {
		name       string
		opts       HTTPOptions
		wantOK     bool
		wantClass  Class
		wantErrHas []string
	}{
		{name: "unknown authority", opts: HTTPOptions{URL: srv.URL}, wantClass: ClassTLS,
			wantErrHas: []string{`Get "` + srv.URL + `": tls: failed to verify certificate: x509: certificate signed by unknown authority`}},
		{name: "ca file", opts: HTTPOptions{URL: srv.URL, CAFile: ca, ExpectBody: "ok"}, wantOK: true},
		{name: "ca file, wrong server name", opts: HTTPOptions{URL: srv.URL, CAFile: ca, ServerName: "wrong.example"},
			wantClass: ClassTLS, wantErrHas: []string{"x509: certificate is valid for", "not wrong.example"}},
		{name: "ca file, server name from the cert", opts: HTTPOptions{URL: srv.URL, CAFile: ca, ServerName: "example.com"}, wantOK: true},
		{name: "ca file, host header sets the server name", opts: HTTPOptions{URL: srv.URL, CAFile: ca,
			Headers: map[string]string{"Host": "wrong.example:443"}}, wantClass: ClassTLS, wantErrHas: []string{"not wrong.example"}},
		{name: "insecure", opts: HTTPOptions{URL: srv.URL, InsecureSkipVerify: true}, wantOK: true},
		{name: "https to a plain server", opts: HTTPOptions{URL: plainAsHTTPS}, wantClass: ClassTLS,
			wantErrHas: []string{"http: server gave HTTP response to HTTPS client"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newHTTP(t, tt.opts).Probe(context.Background(), 2*time.Second)
			checkResult(t, r, tt.opts.URL, tt.wantOK, tt.wantClass, tt.wantErrHas...)
		})
	}
}

func TestHTTPDNS(t *testing.T) {
	// See TestTCPDNS for why a timeout skips.
	const u = "http://nonexistent.invalid/health"
	r := newHTTP(t, HTTPOptions{URL: u}).Probe(context.Background(), 3*time.Second)
	if r.Class == ClassTimeout {
		t.Skipf("the resolver did not answer within 3s: %v", r.Err)
	}
	checkResult(t, r, u, false, ClassDNS, `Get "`+u+`": dial tcp: lookup nonexistent.invalid`)
}

// hangingBody returns the URL of a server that sends its status and headers, then
// hangs before the body until the test ends.
func hangingBody(t *testing.T) string {
	t.Helper()
	stop := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select {
		case <-stop:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(stop); srv.Close() })
	return srv.URL
}

// TestHTTPTimeout checks that a hanging server fails the probe with
// ClassTimeout within a bound of 5x the timeout (a correctness bound, not a
// performance target), wherever the server hangs.
func TestHTTPTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	noAnswer := "http://" + acceptingListener(t).Addr().String() + "/health"
	slowBody := hangingBody(t)
	tlsNoAnswer := "https://" + acceptingListener(t).Addr().String() + "/health"

	tests := []struct {
		name       string
		opts       HTTPOptions
		wantErrHas []string
	}{
		{name: "no response", opts: HTTPOptions{URL: noAnswer},
			wantErrHas: []string{"probe timed out after 200ms", `Get "` + noAnswer + `"`}},
		{name: "no body", opts: HTTPOptions{URL: slowBody, ExpectBody: "ok"},
			wantErrHas: []string{"probe timed out after 200ms", "GET " + slowBody + ": read body"}},
		{name: "no TLS handshake", opts: HTTPOptions{URL: tlsNoAnswer},
			wantErrHas: []string{"probe timed out after 200ms", `Get "` + tlsNoAnswer + `"`}},
		{name: "tcp accept queue full", opts: HTTPOptions{URL: "http://" + systemdtest.SYNDropListener(t) + "/"},
			wantErrHas: []string{"probe timed out after 200ms"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := time.Now()
			r := newHTTP(t, tt.opts).Probe(context.Background(), timeout)
			took := time.Since(start)
			checkResult(t, r, tt.opts.URL, false, ClassTimeout, tt.wantErrHas...)
			if took < timeout {
				t.Errorf("probe returned after %v, before its timeout of %v", took, timeout)
			}
			if took > 5*timeout {
				t.Errorf("probe took %v with a timeout of %v", took, timeout)
			}
			if !errors.Is(r.Err, context.DeadlineExceeded) {
				t.Errorf("Err %v does not match context.DeadlineExceeded", r.Err)
			}
		})
	}
}

func TestHTTPCancel(t *testing.T) {
	u := "http://" + acceptingListener(t).Addr().String() + "/health"
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	start := time.Now()
	r := newHTTP(t, HTTPOptions{URL: u}).Probe(ctx, 30*time.Second)
	took := time.Since(start)
	checkResult(t, r, u, false, ClassOther, `Get "`+u+`"`, "context canceled")
	if !errors.Is(r.Err, context.Canceled) {
		t.Errorf("Err %v does not wrap context.Canceled", r.Err)
	}
	if took > 2*time.Second {
		t.Errorf("canceled probe took %v, want about 100ms", took)
	}
}

// TestHTTPFreshConnection checks that every probe opens its own connection
// (keep-alives are off), so a passing probe proves that the backend still
// accepts connections; several goroutines share one HTTP (run with -race).
func TestHTTPFreshConnection(t *testing.T) {
	var mu sync.Mutex
	conns := map[net.Conn]bool{}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.Config.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns[c] = true
			mu.Unlock()
		}
	}
	srv.Start()
	t.Cleanup(srv.Close)

	p := newHTTP(t, HTTPOptions{URL: srv.URL})
	const n = 10
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			if r := p.Probe(context.Background(), 2*time.Second); !r.OK {
				t.Errorf("probe failed: %v", r.Err)
			}
		})
	}
	wg.Wait()
	for range 2 {
		if r := p.Probe(context.Background(), 2*time.Second); !r.OK {
			t.Errorf("probe failed: %v", r.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(conns) != n+2 {
		t.Errorf("server saw %d connections for %d probes, want one each", len(conns), n+2)
	}
}

// TestHTTPIgnoresProxy: with HTTP_PROXY and HTTPS_PROXY naming a
// listener, the probe still connects to the URL's host itself. (The probe
// has no proxy code at all: it dials the URL's host:port and writes the
// request; this test keeps it so.)
func TestHTTPIgnoresProxy(t *testing.T) {
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	var proxied atomic.Int32
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			proxied.Add(1)
			_ = c.Close()
		}
	}()
	t.Setenv("HTTP_PROXY", "http://"+proxy.Addr().String())
	t.Setenv("HTTPS_PROXY", "http://"+proxy.Addr().String())
	t.Setenv("NO_PROXY", "")
	var served atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served.Add(1) }))
	t.Cleanup(srv.Close)
	r := newHTTP(t, HTTPOptions{URL: srv.URL + "/health"}).Probe(context.Background(), 2*time.Second)
	checkResult(t, r, srv.URL+"/health", true, ClassNone)
	if served.Load() != 1 || proxied.Load() != 0 {
		t.Errorf("the backend served %d requests and the proxy saw %d connections, want 1 and 0", served.Load(), proxied.Load())
	}
}

// TestHTTPRequest checks what the probe sends: one request per connection
// ("Connection: close"), the URL's credentials as basic authentication,
// the configured headers and Host, no compression asked for.
func TestHTTPRequest(t *testing.T) {
	got := make(chan *http.Request, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got <- r.Clone(context.Background()) }))
	t.Cleanup(srv.Close)
	u := strings.Replace(srv.URL, "http://", "http://probe:s3cret@", 1) + "/health?full=1"
	r := newHTTP(t, HTTPOptions{URL: u, Method: "HEAD", Headers: map[string]string{"Host": "app.example", "X-Probe": "medic"}}).Probe(context.Background(), 2*time.Second)
	if !r.OK {
		t.Fatalf("probe failed: %v", r.Err)
	}
	req := <-got
	user, pw, ok := req.BasicAuth()
	for _, c := range []struct {
		what      string
		got, want any
	}{
		{"method", req.Method, "HEAD"},
		{"request URI", req.RequestURI, "/health?full=1"},
		{"Host", req.Host, "app.example"},
		{"X-Probe", req.Header.Get("X-Probe"), "medic"},
		{"User-Agent", req.Header.Get("User-Agent"), "medic-probe"},
		{"Connection: close", req.Close, true},
		{"Accept-Encoding", req.Header.Get("Accept-Encoding"), ""},
		{"basic auth", fmt.Sprint(ok, " ", user, " ", pw), "true probe s3cret"},
	} {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.what, c.got, c.want)
		}
	}
}

func TestHTTPRedactsPassword(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusUnauthorized)
	}))
	t.Cleanup(srv.Close)
	u := strings.Replace(srv.URL, "http://", "http://probe:s3cret@", 1)
	r := newHTTP(t, HTTPOptions{URL: u}).Probe(context.Background(), 2*time.Second)
	redacted := strings.Replace(srv.URL, "http://", "http://xxxxx@", 1)
	checkResult(t, r, redacted, false, ClassHTTPStatus, "status 401 Unauthorized")
	if strings.Contains(r.Err.Error(), "s3cret") || strings.Contains(r.Target, "s3cret") {
		t.Errorf("password leaked: Target %q, Err %q", r.Target, r.Err)
	}
}

func TestNewHTTPErrors(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name    string
		opts    HTTPOptions
		wantErr string
	}{
		{name: "empty url", opts: HTTPOptions{}, wantErr: `new http probe: url "": scheme must be http or https`},
		{name: "scheme", opts: HTTPOptions{URL: "tcp://127.0.0.1:80"}, wantErr: `new http probe: url "tcp://127.0.0.1:80": scheme must be http or https`},
		{name: "relative", opts: HTTPOptions{URL: "/health"}, wantErr: `new http probe: url "/health": scheme must be http or https`},
		{name: "no host", opts: HTTPOptions{URL: "http:///health"}, wantErr: `new http probe: url "http:///health": no host`},
		{name: "unparsable", opts: HTTPOptions{URL: "http://[::1/"}, wantErr: `new http probe: parse url: missing ']' in host`},
		{name: "status range", opts: HTTPOptions{URL: "http://x/", ExpectStatus: []StatusRange{{200, 700}}},
			wantErr: "new http probe: expect_status 200-700: codes must lie in 100-599, low to high"},
		{name: "method", opts: HTTPOptions{URL: "http://x/", Method: "BAD METHOD"}, wantErr: `new http probe: net/http: invalid method "BAD METHOD"`},
		{name: "ca file missing", opts: HTTPOptions{URL: "https://x/", CAFile: missing},
			wantErr: "new http probe: read ca_file: open " + missing + ": no such file or directory"},
		{name: "ca file without certs", opts: HTTPOptions{URL: "https://x/", CAFile: notPEM},
			wantErr: "new http probe: ca_file " + notPEM + ": no PEM certificate found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewHTTP(tt.opts)
			if err == nil || err.Error() != tt.wantErr {
				t.Fatalf("NewHTTP error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestHTTPTypedErrors checks that the HTTP-level failures can be read with
// errors.As, for a notifier or diagnosis that wants the code or the text.
func TestHTTPTypedErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/down" {
			w.WriteHeader(http.StatusBadGateway)
		}
		_, _ = w.Write([]byte("nope"))
	}))
	t.Cleanup(srv.Close)

	r := newHTTP(t, HTTPOptions{URL: srv.URL + "/down"}).Probe(context.Background(), 2*time.Second)
	se, ok := errors.AsType[*StatusError](r.Err)
	if !ok || se.Code != http.StatusBadGateway || se.Method != "GET" || se.URL != srv.URL+"/down" {
		t.Errorf("Err %v: StatusError = %+v, want code 502 for GET %s/down", r.Err, se, srv.URL)
	}

	r = newHTTP(t, HTTPOptions{URL: srv.URL + "/health", ExpectBody: "ok"}).Probe(context.Background(), 2*time.Second)
	be, ok := errors.AsType[*BodyMismatchError](r.Err)
	if !ok || be.Want != "ok" || be.Read != 4 {
		t.Errorf("Err %v: BodyMismatchError = %+v, want Want=ok Read=4", r.Err, be)
	}
}
