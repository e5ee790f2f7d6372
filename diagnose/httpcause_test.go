package diagnose

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

func TestStatusFinding(t *testing.T) {
	for _, tc := range []struct {
		code                  int
		status, location      string
		wantCause             Cause
		wantSummary, wantHint string
	}{
		{404, "404 Not Found", "", WrongPath, "GET http://127.0.0.1:8080/helth answered 404 Not Found", "check the health endpoint's path (the probe's url)"},
		{410, "410 Gone", "", WrongPath, "answered 410 Gone", "the probe's url"},
		{405, "405 Method Not Allowed", "", WrongPath, "answered 405", "does not take GET"},
		{503, "503 Service Unavailable", "", BackendError, "backend error: 503: GET http://127.0.0.1:8080/helth answered 503", "read its log (journalctl -u app.service)"},
		{502, "502 Bad Gateway", "", BackendError, "could not reach it", "read its log"},
		{301, "301 Moved Permanently", "https://x/health", UnexpectedStatus, "answered 301", "redirects to https://x/health"},
		{403, "403 Forbidden", "", UnexpectedStatus, "answered 403", "refuses the probe"},
		{400, "400 Bad Request", "", UnexpectedStatus, "answered 400", "Host header"},
		{204, "204 No Content", "", UnexpectedStatus, "answered 204", "expect_status"},
	} {
		se := &probe.StatusError{Method: "GET", URL: "http://127.0.0.1:8080/helth", Status: tc.status, Code: tc.code, Location: tc.location, Want: []probe.StatusRange{{Min: 200, Max: 200}}}
		f := statusFinding(se, map[string]any{}, &unit.State{Name: "app.service"})
		if f.Cause != tc.wantCause || !strings.Contains(f.Summary, tc.wantSummary) || !strings.Contains(f.Hint, tc.wantHint) {
			t.Errorf("%d: got %s / %q / %q; want %s / %q / %q", tc.code, f.Cause, f.Summary, f.Hint, tc.wantCause, tc.wantSummary, tc.wantHint)
		}
	}
}

func TestHTTPCauseAnswerText(t *testing.T) {
	for _, tc := range []struct {
		text            string
		wantTLS, wantOK bool
	}{
		{`Get "http://127.0.0.1:1/": net/http: HTTP/1.x transport connection broken: malformed HTTP response "\x15\x03\x01\x00\x02\x02P"`, true, true},
		{`malformed HTTP response "\x16\x03\x03\x00"`, true, true},
		{`malformed HTTP response "garbage"`, false, true},
		{`connection reset by peer`, false, true},
	} {
		if got := tlsAlertAnswer(errorString(tc.text)); got != tc.wantTLS {
			t.Errorf("tlsAlertAnswer(%q) = %v, want %v", tc.text, got, tc.wantTLS)
		}
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }

// diagnoseURL probes url once and diagnoses the result.
func diagnoseURL(t *testing.T, url string) Diagnosis {
	t.Helper()
	spec := probe.Spec{Type: "http", HTTP: probe.HTTPOptions{URL: url}}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res := p.Probe(ctx, 2*time.Second)
	if res.OK {
		t.Fatalf("%s passed", url)
	}
	return Diagnose(ctx, Input{Spec: spec, Result: res})
}

// TestHTTPCausesRealServers diagnoses real servers on loopback that answer
// wrong: a 404, a 503, TLS spoken to a plain port and plain HTTP to a TLS
// port.
func TestHTTPCausesRealServers(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	mux.HandleFunc("/down", func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "database unreachable", http.StatusServiceUnavailable)
	})
	plain := httptest.NewServer(mux)
	defer plain.Close()
	tlsSrv := httptest.NewTLSServer(mux)
	defer tlsSrv.Close()
	plainHost := strings.TrimPrefix(plain.URL, "http://")
	tlsHost := strings.TrimPrefix(tlsSrv.URL, "https://")

	for _, tc := range []struct {
		name, url                     string
		wantCause                     Cause
		wantSummary, wantHint, wantFW string
	}{
		{"404", plain.URL + "/helth", WrongPath, "GET " + plain.URL + "/helth answered 404 Not Found", "check the health endpoint's path", "the host answered"},
		{"503", plain.URL + "/down", BackendError, "backend error: 503", "read its log", "the host answered"},
		{"TLS to plain", "https://" + plainHost + "/health", TLSToPlain, "speaks plain HTTP", "the server speaks plain HTTP: use http:// (http://" + plainHost + "/health)", "the host answered"},
		{"plain to TLS", "http://" + tlsHost + "/health", PlainToTLS, "speaks TLS", "the server speaks TLS: use https:// (https://" + tlsHost + "/health)", "the host answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dg := diagnoseURL(t, tc.url)
			p := dg.Primary
			if p.Cause != tc.wantCause || !strings.Contains(p.Summary, tc.wantSummary) || !strings.Contains(p.Hint, tc.wantHint) {
				t.Errorf("primary = %s / %q / %q; want %s / %q / %q", p.Cause, p.Summary, p.Hint, tc.wantCause, tc.wantSummary, tc.wantHint)
			}
			fw := dg.Checklist[len(dg.Checklist)-1]
			if fw.Name != ItemFirewall || !strings.Contains(fw.Evidence, tc.wantFW) {
				t.Errorf("firewall item = %+v, want %q", fw, tc.wantFW)
			}
		})
	}
}

// TestUnresolvableNameChecklist: a name that does not resolve leaves the
// firewall unchecked with the reason, never "✓ the host answered".
func TestUnresolvableNameChecklist(t *testing.T) {
	spec := probe.Spec{Type: "tcp", Address: "medic-no-such-host.invalid:80"}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dg := Diagnose(ctx, Input{Spec: spec, Result: p.Probe(ctx, 2*time.Second)})
	for _, it := range dg.Checklist {
		if it.Name == ItemFirewall && (it.Status != Unchecked || !strings.Contains(it.Evidence, "did not resolve")) {
			t.Errorf("firewall item = %+v, want unknown: the address did not resolve", it)
		}
	}
	// Each unchecked item is an unavailable line with its reason.
	un := strings.Join(dg.Unavailable, "; ")
	for _, want := range []string{"port listening: the address did not resolve", "firewall: not checked: the address did not resolve"} {
		if !strings.Contains(un, want) {
			t.Errorf("unavailable %q lacks %q", dg.Unavailable, want)
		}
	}
}

// TestUnitUnavailableChecklist: a unit whose state could not be read is an
// unknown item naming the reason, not "no unit configured".
func TestUnitUnavailableChecklist(t *testing.T) {
	spec := probe.Spec{Type: "tcp", Address: "127.0.0.1:1"}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	dg := Diagnose(ctx, Input{Spec: spec, Result: p.Probe(ctx, time.Second), UnitName: "app.service", UnitErr: errorString("connect to systemd user bus: no such file")})
	it := dg.Checklist[0]
	if it.Status != Unchecked || it.Evidence != "app.service: state unavailable: connect to systemd user bus: no such file" {
		t.Errorf("backend running item = %+v", it)
	}
	if !strings.Contains(strings.Join(dg.Unavailable, "; "), "unit app.service: connect to systemd user bus") {
		t.Errorf("unavailable = %q", dg.Unavailable)
	}
}
