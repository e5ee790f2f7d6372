package statuspage

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/notify"
)

var now = time.Date(2026, 11, 30, 5, 0, 0, 0, time.UTC)

// get serves one request to h and returns the response and its body.
func get(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	req := httptest.NewRequest(method, target, nil)
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	res := w.Result()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func emptySources() Sources {
	return Sources{
		Report: func() agent.Report { return agent.Report{Version: "1.2.3", Host: "web1", Started: now.Add(-time.Hour)} },
		Now:    func() time.Time { return now },
	}
}

// failingSources is a medic with a healthy check and a failing one whose
// incident is open, diagnosed, with a timeline; hostile is put in every
// text that comes from a backend.
func failingSources(hostile string) Sources {
	since := now.Add(-2 * time.Minute)
	dg := &diagnose.Diagnosis{
		At: now.Add(-time.Minute), Target: "127.0.0.1:8080", Problem: "127.0.0.1:8080 connection refused " + hostile,
		Primary: diagnose.Finding{Cause: diagnose.NotRunning, Summary: "app.service is not running " + hostile, Hint: "start the unit " + hostile},
		Checklist: []diagnose.Item{
			{Name: diagnose.ItemRunning, Status: diagnose.Fail, Evidence: "app.service: inactive/dead " + hostile},
			{Name: diagnose.ItemListening, Status: diagnose.Fail, Evidence: "nothing listens on 127.0.0.1:8080"},
			{Name: diagnose.ItemDirect, Status: diagnose.Fail, Evidence: "127.0.0.1:8080 connection refused"},
			{Name: diagnose.ItemSocket, Status: diagnose.NotApplicable, Evidence: "not a unix socket probe"},
			{Name: diagnose.ItemFirewall, Status: diagnose.Pass, Evidence: "refused, not dropped: the host answered"},
		},
		Unavailable: []string{"journal: permission denied " + hostile},
	}
	const id = "app-20261130T045800.000Z"
	return Sources{
		Report: func() agent.Report {
			return agent.Report{Version: "1.2.3", Host: "web1", Started: now.Add(-time.Hour), Checks: []agent.Status{
				{Check: "db", Unit: "db.service", State: "healthy", LastProbe: now, LastOK: true},
				{Check: "app", Unit: "app.service", State: "failing", Since: since, LastProbe: now, LastError: "127.0.0.1:8080: refused: dial tcp 127.0.0.1:8080: connect: connection refused" + hostile,
					Incident: id, Diagnosis: dg, BudgetLeft: 3},
			}}
		},
		OpenIncident: func(check string) (*notify.Incident, error) {
			if check != "app" {
				return nil, nil
			}
			return &notify.Incident{ID: id, Check: "app", Since: since, Problem: "127.0.0.1:8080 connection refused " + hostile,
				Timeline: []notify.Entry{
					{At: since, What: "first failed probe", Detail: "127.0.0.1:8080 connection refused " + hostile},
					{At: since.Add(time.Second), What: "failing", Detail: "1 consecutive failure"},
				}}, nil
		},
		History: func() ([]history.Record, []history.Corrupt, error) { return nil, nil, nil },
		Now:     func() time.Time { return now },
	}
}

var securityHeaders = map[string]string{
	"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
	"X-Content-Type-Options":  "nosniff",
	"Referrer-Policy":         "no-referrer",
	"X-Frame-Options":         "DENY",
	"Cache-Control":           "no-store",
}

func TestSecurityHeaders(t *testing.T) {
	h := Handler(failingSources(""), LoopbackHost)
	for _, tc := range []struct {
		method, target string
		host           string
		wantCode       int
		wantType       string
	}{
		{method: "GET", target: "/", wantCode: 200, wantType: "text/html; charset=utf-8"},
		{method: "HEAD", target: "/", wantCode: 200, wantType: "text/html; charset=utf-8"},
		{method: "GET", target: "/style.css", wantCode: 200, wantType: "text/css; charset=utf-8"},
		{method: "GET", target: "/nothing", wantCode: 404},
		{method: "GET", target: "/index.html", wantCode: 404},
		{method: "POST", target: "/", wantCode: 405},
		{method: "GET", target: "/", host: "evil.example:9465", wantCode: 421},
	} {
		req := httptest.NewRequest(tc.method, tc.target, nil)
		req.Host = "127.0.0.1:9465"
		if tc.host != "" {
			req.Host = tc.host
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		res := w.Result()
		if res.StatusCode != tc.wantCode {
			t.Errorf("%s %s (Host %q): status %d, want %d", tc.method, tc.target, req.Host, res.StatusCode, tc.wantCode)
		}
		for k, want := range securityHeaders {
			if got := res.Header.Get(k); got != want {
				t.Errorf("%s %s: %s = %q, want %q", tc.method, tc.target, k, got, want)
			}
		}
		if tc.wantType != "" && res.Header.Get("Content-Type") != tc.wantType {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.target, res.Header.Get("Content-Type"), tc.wantType)
		}
	}
}

func TestReadOnly(t *testing.T) {
	h := Handler(failingSources(""), nil)
	for _, m := range []string{"POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"} {
		for _, target := range []string{"/", "/style.css", "/v1/pause"} {
			res, body := get(t, h, m, target)
			if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
				t.Errorf("%s %s: status %d, Allow %q; want 405 with Allow \"GET, HEAD\"", m, target, res.StatusCode, res.Header.Get("Allow"))
			}
			if !strings.Contains(body, "read-only") {
				t.Errorf("%s %s: body %q does not say the page is read-only", m, target, body)
			}
		}
	}
	res, body := get(t, h, "HEAD", "/")
	if res.StatusCode != 200 || body != "" {
		t.Errorf("HEAD /: status %d, body %d bytes; want 200 and no body", res.StatusCode, len(body))
	}
	_, page := get(t, h, "GET", "/")
	for _, bad := range []string{"<form", "<script", "<iframe", "<button", "<input", "method=", "onclick", "javascript:"} {
		if strings.Contains(strings.ToLower(page), bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	if strings.Contains(page, "/v1/") {
		t.Error("page links to the status socket's API")
	}
}

func TestNothingFromOutside(t *testing.T) {
	src := failingSources("")
	src.History = func() ([]history.Record, []history.Corrupt, error) { return records(), nil, nil }
	_, page := get(t, Handler(src, nil), "GET", "/")
	// The only absolute URL is the SVG namespace, which is a name, not a fetch.
	for _, u := range regexp.MustCompile(`(?i)(https?:)?//[^\s"'<>)]+`).FindAllString(page, -1) {
		if u != "http://www.w3.org/2000/svg" {
			t.Errorf("page refers to %q: nothing may be fetched from outside", u)
		}
	}
	for _, bad := range []string{"<script", "@import", "url(", "<img", "<link rel=\"preload\"", "@font-face"} {
		if strings.Contains(page, bad) || strings.Contains(string(style), bad) {
			t.Errorf("page or stylesheet contains %q", bad)
		}
	}
	if !strings.Contains(page, `<link rel="stylesheet" href="style.css">`) {
		t.Error("page does not use its own stylesheet")
	}
	if strings.Contains(page, "style=") {
		t.Error("page has an inline style attribute, which the policy (style-src 'self') blocks")
	}
	if !strings.Contains(page, `<meta http-equiv="refresh" content="10">`) {
		t.Error("page does not refresh itself every 10 s")
	}
}

func TestHostileTextEscaped(t *testing.T) {
	const hostile = `<script>alert("x")</script> "'><img src=x onerror=alert(1)> ` + "\u202e\x1b[2J"
	src := failingSources(hostile)
	src.History = func() ([]history.Record, []history.Corrupt, error) {
		return []history.Record{{ID: "app-20261129T010000.000Z", Check: "app", Unit: "app.service", Since: now.Add(-24 * time.Hour),
			ResolvedAt: now.Add(-24*time.Hour + 3*time.Second), Outcome: history.Resolved, Cause: "backend crashed " + hostile}}, nil, nil
	}
	src.Report = func(report func() agent.Report) func() agent.Report {
		return func() agent.Report {
			r := report()
			r.ReloadError = "reload: " + hostile
			r.BusError = "connect to systemd system bus: " + hostile
			r.Checks[0].Paused = &agent.Pause{Until: now.Add(time.Hour), Reason: "deploy " + hostile}
			return r
		}
	}(src.Report)
	_, page := get(t, Handler(src, nil), "GET", "/")
	if !strings.Contains(page, `id="bus-error"`) || !strings.Contains(page, "connect to systemd system bus: ") {
		t.Errorf("page lacks the unreachable bus banner")
	}
	for _, raw := range []string{"<script", `"'><img`, "<img", "\u202e", "\x1b"} {
		if strings.Contains(page, raw) {
			t.Errorf("page contains %q unescaped", raw)
		}
	}
	escaped := `&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &#34;&#39;&gt;&lt;img src=x onerror=alert(1)&gt; \u202e\x1b[2J`
	// Where each hostile text goes: problem, timeline, finding, fix,
	// checklist evidence, unavailable evidence, history cause, chart
	// tooltip, reload error, pause reason.
	if n := strings.Count(page, escaped); n < 10 {
		t.Errorf("the hostile text appears escaped %d times, want at least 10:\n%s", n, page)
	}
}

func TestEmptyState(t *testing.T) {
	_, page := get(t, Handler(emptySources(), nil), "GET", "/")
	for _, want := range []string{"medic on <span id=\"host\">web1</span>", "version 1.2.3", "No checks configured", "No open incident.", "No incident ended in the last 7 days."} {
		if !strings.Contains(page, want) {
			t.Errorf("empty page lacks %q", want)
		}
	}
	if strings.Contains(page, "<svg") {
		t.Error("empty page draws a chart")
	}
}

func TestFailingCheckShowsIncident(t *testing.T) {
	_, page := get(t, Handler(failingSources(""), nil), "GET", "/")
	for _, want := range []string{
		`<title>medic on web1 · 1 not healthy</title>`,
		`<tr id="check-app" class="check bad">`,
		`<span class="badge bad">failing</span>`,
		`<span class="badge ok">healthy</span>`,
		`<td class="cause">backend not running</td>`,
		`<td class="probe problem" title="127.0.0.1:8080: refused: dial tcp 127.0.0.1:8080: connect: connection refused">127.0.0.1:8080 connection refused</td>`,
		`<a href="#incident-app-20261130T045800.000Z">`,
		`<article class="incident bad" id="incident-app-20261130T045800.000Z">`,
		`<strong class="cause">backend not running</strong>`,
		`app.service is not running`,
		`<tr class="item fail"><td class="mark">✗</td><td class="item-name">backend running</td><td>app.service: inactive/dead </td></tr>`,
		`<tr class="item pass"><td class="mark">✓</td><td class="item-name">firewall</td>`,
		`<tr class="item na"><td class="mark">–</td><td class="item-name">socket</td>`,
		`not available</span> journal: permission denied`,
		`<td class="what">first failed probe</td><td>127.0.0.1:8080 connection refused </td>`,
		`Open incidents <span class="count">1</span>`,
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if n := strings.Count(page, `<article class="incident`); n != 1 {
		t.Errorf("%d open incidents shown, want 1", n)
	}
}

func TestOpenIncidentWithoutTimeline(t *testing.T) {
	for _, tc := range []struct {
		name string
		open func(string) (*notify.Incident, error)
		want string
	}{
		{"none saved", func(string) (*notify.Incident, error) { return nil, nil }, "timeline not saved yet"},
		{"another incident", func(string) (*notify.Incident, error) { return &notify.Incident{ID: "app-20261129T000000.000Z"}, nil }, "timeline not saved yet"},
		{"unreadable", func(string) (*notify.Incident, error) { return nil, errors.New("read saved incident: <bad>") }, "timeline not available: read saved incident: &lt;bad&gt;"},
		{"no source", nil, "timeline not available"},
	} {
		src := failingSources("")
		src.OpenIncident = tc.open
		_, page := get(t, Handler(src, nil), "GET", "/")
		if !strings.Contains(page, tc.want) {
			t.Errorf("%s: page lacks %q", tc.name, tc.want)
		}
		// The diagnosis comes from the status either way.
		if !strings.Contains(page, `<td class="item-name">backend running</td>`) {
			t.Errorf("%s: page lacks the checklist", tc.name)
		}
	}
}

// records is a history: 5 incidents of app, 2 of db (one medic gave up
// on), 1 of cache, within the last 7 days, and 2 older ones.
func records() []history.Record {
	rec := func(check string, ago, ttr time.Duration, outcome history.Outcome, escalated bool) history.Record {
		since := now.Add(-ago)
		r := history.Record{ID: check + "-" + since.UTC().Format("20060102T150405.000Z"), Check: check, Unit: check + ".service",
			Since: since, Outcome: outcome, Escalated: escalated, Cause: "backend crashed", Restarts: 1}
		if outcome == history.Resolved {
			r.ResolvedAt = since.Add(ttr)
		} else {
			r.GaveUpAt = since.Add(time.Minute)
		}
		return r
	}
	return []history.Record{
		rec("app", time.Hour, 1300*time.Millisecond, history.Resolved, false),
		rec("db", 2*time.Hour, 0, history.GaveUp, true),
		rec("app", 3*time.Hour, 800*time.Millisecond, history.Resolved, false),
		rec("cache", 5*time.Hour, 50*time.Millisecond, history.Resolved, false),
		rec("app", 24*time.Hour, 45*time.Second, history.Resolved, true),
		rec("app", 48*time.Hour, 2*time.Hour, history.Resolved, true),
		rec("db", 72*time.Hour, 12*time.Minute, history.Resolved, true),
		rec("app", 6*24*time.Hour, 2*time.Second, history.Resolved, false),
		rec("app", 8*24*time.Hour, time.Second, history.Resolved, false),
		rec("db", 30*24*time.Hour, time.Second, history.Resolved, false),
	}
}

func TestHistoryChart(t *testing.T) {
	src := emptySources()
	src.History = func() ([]history.Record, []history.Corrupt, error) {
		return records(), []history.Corrupt{{Path: "x.json", Err: errors.New("parse")}}, nil
	}
	_, page := get(t, Handler(src, nil), "GET", "/")
	svg := page[strings.Index(page, "<svg"):strings.Index(page, "</svg>")]
	if n := strings.Count(svg, `class="mark `); n != 8 {
		t.Errorf("chart has %d marks, want one per incident of the last 7 days (8)", n)
	}
	if n := strings.Count(svg, `<rect class="mark gaveup"`); n != 1 {
		t.Errorf("chart has %d gave-up marks, want 1", n)
	}
	for check, want := range map[string]int{"app": 5, "db": 2, "cache": 1} {
		i := strings.Index(svg, `data-check="`+check+`"`)
		if i < 0 {
			t.Errorf("chart has no row for %s", check)
			continue
		}
		g := svg[i:]
		g = g[:strings.Index(g, "</g>")]
		if n := strings.Count(g, `class="mark `); n != want {
			t.Errorf("row %s has %d marks, want %d", check, n, want)
		}
	}
	// Rows in name order; the TTR axis is logarithmic from 0.1s to 1h.
	if a, c, d := strings.Index(svg, `data-check="app"`), strings.Index(svg, `data-check="cache"`), strings.Index(svg, `data-check="db"`); !(a < c && c < d) {
		t.Errorf("rows not in name order: app %d, cache %d, db %d", a, c, d)
	}
	for _, want := range []string{">0.1s</text>", ">1s</text>", ">1m</text>", ">1h</text>", ">gave up</text>", "5 · median 2s", "2 · median 12m0s",
		"<title>app · opened 2026-11-30 04:00:00 · time to recovery 1.3s · quiet · backend crashed · app-20261130T040000.000Z</title>"} {
		if !strings.Contains(svg, want) {
			t.Errorf("chart lacks %q", want)
		}
	}
	if x1, x2 := ttrX(time.Second), ttrX(time.Minute); !(chartPlotLeft < x1 && x1 < x2 && x2 < chartPlotRight) || ttrX(time.Millisecond) != chartPlotLeft || ttrX(24*time.Hour) != chartPlotRight {
		t.Errorf("ttrX: 1s at %d, 1m at %d; ends %d, %d", x1, x2, ttrX(time.Millisecond), ttrX(24*time.Hour))
	}
	table := page[strings.Index(page, `<table id="history-table">`):]
	table = table[:strings.Index(table, "</table>")]
	if n := strings.Count(table, "<tr class="); n != 8 {
		t.Errorf("history table has %d rows, want 8", n)
	}
	for _, want := range []string{"last 7 days: 8", "1 unreadable record file(s) skipped", "<td>gave up</td>"} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}
}

func TestChartBounds(t *testing.T) {
	var recs []history.Record
	for i := range MaxChartMarks + 100 {
		check := "c" + string(rune('a'+i%(MaxChartChecks+5)%26)) + string(rune('a'+i%(MaxChartChecks+5)/26))
		since := now.Add(-time.Duration(i) * time.Minute)
		recs = append(recs, history.Record{ID: check + "-x", Check: check, Since: since, ResolvedAt: since.Add(time.Second), Outcome: history.Resolved})
	}
	c := makeChart(recs)
	if len(c.Lanes) != MaxChartChecks || c.OmittedChecks != 5 {
		t.Errorf("%d rows, %d checks omitted; want %d and 5", len(c.Lanes), c.OmittedChecks, MaxChartChecks)
	}
	if c.Marks+c.OmittedIncidents != len(recs) || c.Marks > MaxChartMarks {
		t.Errorf("%d marks drawn and %d omitted of %d; want at most %d drawn, the rest omitted", c.Marks, c.OmittedIncidents, len(recs), MaxChartMarks)
	}
}

func TestHistoryError(t *testing.T) {
	src := emptySources()
	src.History = func() ([]history.Record, []history.Corrupt, error) {
		return nil, nil, errors.New("read incident history: open /var/lib/medic/incidents: permission denied")
	}
	res, page := get(t, Handler(src, nil), "GET", "/")
	if res.StatusCode != 200 || !strings.Contains(page, "The incident history could not be read: read incident history: open /var/lib/medic/incidents: permission denied") {
		t.Errorf("status %d; page does not say the history is unreadable", res.StatusCode)
	}
}

func TestBusy(t *testing.T) {
	release := make(chan struct{})
	var started sync.WaitGroup
	started.Add(MaxInFlight)
	src := emptySources()
	src.Report = func() agent.Report {
		started.Done()
		<-release
		return agent.Report{}
	}
	h := Handler(src, nil)
	var done sync.WaitGroup
	for range MaxInFlight {
		done.Go(func() { get(t, h, "GET", "/") })
	}
	started.Wait()
	res, _ := get(t, h, "GET", "/")
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Errorf("a page beyond %d at once: status %d, Retry-After %q; want 503 with Retry-After", MaxInFlight, res.StatusCode, res.Header.Get("Retry-After"))
	}
	if res, _ := get(t, h, "GET", "/style.css"); res.StatusCode != 200 {
		t.Errorf("the stylesheet while busy: status %d, want 200", res.StatusCode)
	}
	close(release)
	done.Wait()
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"127.0.0.1:9465": true, "127.0.0.1": true, "[::1]:9465": true, "localhost:9465": true, "LOCALHOST": true,
		"medic.localhost:9465": true, "10.0.0.5:9465": true, "evil.example": false, "evil.example:9465": false,
		"127.0.0.1.nip.io:9465": false, "": false,
	} {
		if got := LoopbackHost(host); got != want {
			t.Errorf("LoopbackHost(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestListenAndServe(t *testing.T) {
	for _, bad := range []string{"", "9465", "127.0.0.1:"} {
		if ln, err := Listen(bad); err == nil {
			ln.Close()
			t.Errorf("Listen(%q): no error", bad)
		}
	}
	ln, err := Listen(":0")
	if err != nil {
		t.Fatal(err)
	}
	if host, _, _ := net.SplitHostPort(ln.Addr().String()); host != "127.0.0.1" || !IsLoopback(ln.Addr()) {
		t.Errorf("Listen(\":0\") bound %s, want 127.0.0.1", ln.Addr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- Serve(ctx, ln, Handler(failingSources(""), LoopbackHost)) }()
	res, err := http.Get("http://" + ln.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(b), "backend not running") {
		t.Errorf("GET /: status %d:\n%s", res.StatusCode, b)
	}
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve after the context ended: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Serve did not return after the context ended")
	}
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("the listener is still open after Serve returned")
	}
	if IsLoopback(&net.TCPAddr{IP: net.IPv4(0, 0, 0, 0)}) || IsLoopback(&net.TCPAddr{IP: net.IPv4(10, 0, 0, 1)}) {
		t.Error("IsLoopback of a non-loopback address")
	}
}

func TestHistoryReused(t *testing.T) {
	clock := now
	reads := 0
	src := emptySources()
	src.Now = func() time.Time { return clock }
	src.History = func() ([]history.Record, []history.Corrupt, error) {
		reads++
		return records(), nil, nil
	}
	h := Handler(src, nil)
	for _, step := range []struct {
		advance   time.Duration
		wantReads int
	}{{0, 1}, {time.Second, 1}, {HistoryReuse - time.Second - 1, 1}, {1, 2}, {time.Minute, 3}, {-time.Hour, 4}} {
		clock = clock.Add(step.advance)
		if _, page := get(t, h, "GET", "/"); !strings.Contains(page, "last 7 days: 8") {
			t.Fatalf("page lacks the history")
		}
		if reads != step.wantReads {
			t.Errorf("after %s more: %d reads of the history, want %d", step.advance, reads, step.wantReads)
		}
	}
}
