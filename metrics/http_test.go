package metrics_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"go.uber.org/goleak"

	"github.com/medic-watchdog/medic/metrics"
)

// newTestMetrics returns Metrics with every source set and every event
// method called, including with values that must not become labels.
func newTestMetrics() *metrics.Metrics {
	m := metrics.New(metrics.Sources{
		Checks: func() []metrics.CheckState {
			return []metrics.CheckState{{Check: "web", State: "gave_up", IncidentOpen: true}}
		},
		Outbox: func() []metrics.OutboxStat {
			return []metrics.OutboxStat{{Notifier: "mail", Pending: 2, Delivered: 7}}
		},
		DBusConnected: func() bool { return true },
	})
	m.ObserveProbe("web", "0-tcp", true, time.Millisecond)
	m.ObserveProbe("web", "http://127.0.0.1:8080/healthz", false, time.Second)
	m.ObserveRemedy("web", "web.service", "restart", "done")
	m.ObserveRemedy("web", "web.service", "restart", "restart web.service: dial unix /run/dbus: connection refused")
	m.ObserveReload(true, time.Unix(1700000000, 0))
	return m
}

// scrape GETs url and parses the text exposition.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Errorf("Content-Type %q, want text/plain", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse exposition: %v", err)
	}
	return mfs
}

// series renders a family's samples as `{a="x",b="y"} value` lines.
func series(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+`"`+l.GetValue()+`"`)
		}
		var v float64
		switch {
		case m.Gauge != nil:
			v = m.GetGauge().GetValue()
		case m.Counter != nil:
			v = m.GetCounter().GetValue()
		case m.Histogram != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out = append(out, "{"+strings.Join(ls, ",")+"} "+model.SampleValue(v).String())
	}
	return out
}

func TestHandlerScrape(t *testing.T) {
	srv := httptest.NewServer(newTestMetrics().Handler())
	defer srv.Close()
	mfs := scrape(t, srv.URL+metrics.Path)

	want := map[string][]string{
		"medic_probe_success": {
			`{check="web",probe="0-tcp"} 1`,
			`{check="web",probe="other"} 0`,
		},
		"medic_probe_last_duration_seconds": {
			`{check="web",probe="0-tcp"} 0.001`,
			`{check="web",probe="other"} 1`,
		},
		"medic_probe_duration_seconds": {
			`{type="other"} 1`,
			`{type="tcp"} 1`,
		},
		"medic_remediations_total": {
			`{action="restart",check="web",result="done",unit="web.service"} 1`,
			`{action="restart",check="web",result="other",unit="web.service"} 1`,
		},
		"medic_check_state": {
			`{check="web",state="failing"} 0`,
			`{check="web",state="gave_up"} 1`,
			`{check="web",state="healthy"} 0`,
			`{check="web",state="paused"} 0`,
			`{check="web",state="restarting"} 0`,
			`{check="web",state="verifying"} 0`,
		},
		"medic_incidents_open":                               {`{} 1`},
		"medic_outbox_pending":                               {`{notifier="mail"} 2`},
		"medic_dbus_connected":                               {`{} 1`},
		"medic_config_last_reload_successful":                {`{} 1`},
		"medic_config_last_reload_success_timestamp_seconds": {`{} 1700000000`},
		"medic_notifications_total": {
			`{notifier="mail",result="delivered"} 7`,
			`{notifier="mail",result="dropped"} 0`,
			`{notifier="mail",result="failed"} 0`,
		},
	}
	wantType := map[string]dto.MetricType{
		"medic_probe_duration_seconds": dto.MetricType_HISTOGRAM,
		"medic_remediations_total":     dto.MetricType_COUNTER,
		"medic_notifications_total":    dto.MetricType_COUNTER,
	}
	for name, w := range want {
		mf, ok := mfs[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if got := strings.Join(series(mf), "\n"); got != strings.Join(w, "\n") {
			t.Errorf("%s:\n%s\nwant:\n%s", name, got, strings.Join(w, "\n"))
		}
		typ, ok := wantType[name]
		if !ok {
			typ = dto.MetricType_GAUGE
		}
		if mf.GetType() != typ {
			t.Errorf("%s type %v, want %v", name, mf.GetType(), typ)
		}
		if mf.GetHelp() == "" {
			t.Errorf("%s has no help text", name)
		}
	}

	// No label value carries a piece of a URL or an error text.
	for name, mf := range mfs {
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(name, "medic_") && strings.ContainsAny(l.GetValue(), ":/ ") {
					t.Errorf("%s{%s=%q}: label value looks like a URL or an error", name, l.GetName(), l.GetValue())
				}
			}
		}
	}

	// The standard collectors.
	for _, name := range []string{"go_goroutines", "go_build_info", "process_cpu_seconds_total", "process_resident_memory_bytes", "process_start_time_seconds", "promhttp_metric_handler_requests_total"} {
		if _, ok := mfs[name]; !ok {
			t.Errorf("%s missing", name)
		}
	}
}

func TestHandlerMethodsAndPaths(t *testing.T) {
	srv := httptest.NewServer(metrics.New(metrics.Sources{}).Handler())
	defer srv.Close()
	tests := []struct {
		method, path string
		wantCode     int
	}{
		{http.MethodGet, metrics.Path, http.StatusOK},
		{http.MethodHead, metrics.Path, http.StatusOK},
		{http.MethodPost, metrics.Path, http.StatusMethodNotAllowed},
		{http.MethodPut, metrics.Path, http.StatusMethodNotAllowed},
		{http.MethodDelete, metrics.Path, http.StatusMethodNotAllowed},
		{http.MethodGet, "/", http.StatusNotFound},
		{http.MethodGet, "/debug/pprof/", http.StatusNotFound},
	}
	for _, tt := range tests {
		req, err := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader(""))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tt.wantCode {
			t.Errorf("%s %s: %s, want %d", tt.method, tt.path, resp.Status, tt.wantCode)
		}
		if tt.wantCode == http.StatusMethodNotAllowed && !strings.Contains(resp.Header.Get("Allow"), "GET") {
			t.Errorf("%s %s: Allow %q, want GET", tt.method, tt.path, resp.Header.Get("Allow"))
		}
		if tt.method == http.MethodHead && len(body) != 0 {
			t.Errorf("HEAD %s: %d bytes of body", tt.path, len(body))
		}
	}
}

func TestHandlerOpenMetrics(t *testing.T) {
	srv := httptest.NewServer(newTestMetrics().Handler())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodGet, srv.URL+metrics.Path, nil)
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/openmetrics-text") {
		t.Errorf("Content-Type %q, want OpenMetrics", ct)
	}
	if !strings.HasSuffix(string(body), "# EOF\n") {
		t.Error("OpenMetrics body does not end with # EOF")
	}
}

func TestListen(t *testing.T) {
	tests := []struct {
		addr     string
		wantHost string
		wantErr  bool
	}{
		{addr: ":0", wantHost: "127.0.0.1"},
		{addr: "127.0.0.1:0", wantHost: "127.0.0.1"},
		{addr: "", wantErr: true},
		{addr: "127.0.0.1", wantErr: true},
		{addr: "127.0.0.1:", wantErr: true},
	}
	for _, tt := range tests {
		ln, err := metrics.Listen(tt.addr)
		if tt.wantErr {
			if err == nil {
				ln.Close()
				t.Errorf("Listen(%q): no error", tt.addr)
			}
			continue
		}
		if err != nil {
			t.Errorf("Listen(%q): %v", tt.addr, err)
			continue
		}
		host, _, _ := net.SplitHostPort(ln.Addr().String())
		ln.Close()
		if host != tt.wantHost {
			t.Errorf("Listen(%q) bound %s, want host %s", tt.addr, ln.Addr(), tt.wantHost)
		}
	}
}

func TestServe(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())

	ln, err := metrics.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	m := newTestMetrics()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- m.Serve(ctx, ln) }()

	mfs := scrape(t, "http://"+ln.Addr().String()+metrics.Path)
	if _, ok := mfs["medic_probe_success"]; !ok {
		t.Error("medic_probe_success missing from the served metrics")
	}
	http.DefaultClient.CloseIdleConnections()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("listener still accepts after Serve returned")
	}
}

func TestServeCanceledBeforeStart(t *testing.T) {
	ln, err := metrics.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := metrics.New(metrics.Sources{}).Serve(ctx, ln); err != nil {
		t.Errorf("Serve with a canceled context: %v", err)
	}
}

func TestServeClosedListener(t *testing.T) {
	ln, err := metrics.Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	err = metrics.New(metrics.Sources{}).Serve(context.Background(), ln)
	if err == nil || errors.Is(err, http.ErrServerClosed) {
		t.Errorf("Serve on a closed listener: %v, want an error", err)
	}
}
