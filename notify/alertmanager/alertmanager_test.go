package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"

	"github.com/medic-watchdog/medic/notify"
)

// since is the first failure of the test incidents: whole milliseconds,
// the precision Alertmanager's API returns times with.
var since = time.Date(2026, 11, 21, 8, 0, 0, 123e6, time.UTC)

func message(kind notify.Kind, event notify.Event) *notify.Message {
	in := notify.Incident{
		ID:      "my-app-20261121T080000.123Z",
		Check:   "my-app",
		Unit:    "my-app.service",
		Host:    "web1",
		Target:  "127.0.0.1:8080",
		Problem: "127.0.0.1:8080 connection refused",
		Cause:   "backend crashed",
		Since:   since,
		Timeline: []notify.Entry{
			{At: since, What: "first failed probe", Detail: "connect: connection refused"},
			{At: since.Add(10 * time.Second), What: "restart 1", Detail: "job done"},
			{At: since.Add(40 * time.Second), What: "verify failed", Detail: "still refused\r\nInjected: header"},
		},
		Restarts:  1,
		UnitState: notify.UnitState{ActiveState: "failed", SubState: "failed", Result: "exit-code"},
	}
	m := &notify.Message{ID: in.ID + ".1", Kind: kind, Event: event, At: since.Add(time.Minute), Version: "test", Incident: in}
	if kind == notify.Resolved || kind == notify.Recovered {
		m.Incident.ResolvedAt = since.Add(2 * time.Minute)
		m.At = m.Incident.ResolvedAt
		m.ID = in.ID + ".2"
	}
	return m
}

func newAM(t *testing.T, cfg Config) *Alertmanager {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "fleet"
	}
	a, err := New(cfg, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return a
}

// recorder is a fake Alertmanager: it answers every POST with status and
// body and keeps the alerts posted.
type recorder struct {
	status int
	body   string
	header http.Header

	mu    sync.Mutex
	posts [][]map[string]any
	raw   []string
	paths []string
	auth  []string
}

func (r *recorder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	b, _ := io.ReadAll(req.Body)
	var alerts []map[string]any
	_ = json.Unmarshal(b, &alerts)
	r.mu.Lock()
	r.posts = append(r.posts, alerts)
	r.raw = append(r.raw, string(b))
	r.paths = append(r.paths, req.Method+" "+req.URL.Path+" "+req.Header.Get("Content-Type"))
	u, p, _ := req.BasicAuth()
	r.auth = append(r.auth, u+":"+p)
	r.mu.Unlock()
	for k, v := range r.header {
		w.Header()[k] = v
	}
	if r.status == 0 {
		r.status = http.StatusOK
	}
	w.WriteHeader(r.status)
	_, _ = io.WriteString(w, r.body)
}

func fake(t *testing.T, r *recorder) string {
	t.Helper()
	s := httptest.NewServer(r)
	t.Cleanup(s.Close)
	return s.URL
}

// closedURL returns the URL of a loopback port nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return "http://" + addr
}

// TestPayloadShape checks the JSON posted for a firing message against the
// postableAlert of Alertmanager's API v2 OpenAPI specification: the
// properties labels, annotations, startsAt, endsAt (date-time) and
// generatorURL (uri), and nothing else.
func TestPayloadShape(t *testing.T) {
	r := &recorder{}
	a := newAM(t, Config{
		URLs:           []string{fake(t, r) + "/prefix/"},
		ResendInterval: time.Minute,
		ExtraLabels:    map[string]string{"team": "ops"},
		GeneratorURL:   "https://web1.example.com/medic",
	})
	now := since.Add(time.Minute)
	a.now = func() time.Time { return now }
	if retry, err := a.Notify(context.Background(), message(notify.Firing, notify.VerifyFailed)); err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	if got, want := r.paths, []string{"POST /prefix/api/v2/alerts application/json"}; !slices.Equal(got, want) {
		t.Errorf("requests = %q, want %q", got, want)
	}
	var raw []map[string]json.RawMessage
	if err := json.Unmarshal([]byte(r.raw[0]), &raw); err != nil {
		t.Fatalf("body is not a JSON array of objects: %v: %s", err, r.raw[0])
	}
	if len(raw) != 1 {
		t.Fatalf("posted %d alerts, want 1", len(raw))
	}
	var keys []string
	for k := range raw[0] {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	if want := []string{"annotations", "endsAt", "generatorURL", "labels", "startsAt"}; !slices.Equal(keys, want) {
		t.Errorf("alert properties = %q, want %q", keys, want)
	}

	var got struct {
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     string            `json:"startsAt"`
		EndsAt       string            `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
	}
	if err := json.Unmarshal(raw[0]["labels"], &got.Labels); err != nil {
		t.Errorf("labels is not a labelSet (string map): %v", err)
	}
	if err := json.Unmarshal(raw[0]["annotations"], &got.Annotations); err != nil {
		t.Errorf("annotations is not a labelSet (string map): %v", err)
	}
	_ = json.Unmarshal(raw[0]["startsAt"], &got.StartsAt)
	_ = json.Unmarshal(raw[0]["endsAt"], &got.EndsAt)
	_ = json.Unmarshal(raw[0]["generatorURL"], &got.GeneratorURL)

	wantLabels := map[string]string{
		"alertname": "MedicCheckFailing", "check": "my-app", "unit": "my-app.service",
		"instance": "web1", "severity": "critical", "team": "ops",
	}
	if !mapsEqual(got.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", got.Labels, wantLabels)
	}
	if want := "FIRING my-app.service on web1: 127.0.0.1:8080 connection refused, restart did not help"; got.Annotations["summary"] != want {
		t.Errorf("summary = %q, want %q", got.Annotations["summary"], want)
	}
	for k, want := range map[string]string{"incident": "my-app-20261121T080000.123Z", "event": "verify_failed", "target": "127.0.0.1:8080", "cause": "backend crashed"} {
		if got.Annotations[k] != want {
			t.Errorf("annotation %s = %q, want %q", k, got.Annotations[k], want)
		}
	}
	desc := got.Annotations["description"]
	for _, want := range []string{
		"my-app.service on web1: 127.0.0.1:8080 connection refused\n",
		"\nCause: backend crashed\n",
		"\nUnit: failed/failed, result exit-code\n",
		"\nRestarts by medic: 1\n",
		"\n2026-11-21T08:00:40Z verify failed: still refused  Injected: header",
	} {
		if !strings.Contains(desc, want) {
			t.Errorf("description lacks %q:\n%s", want, desc)
		}
	}
	if n := strings.Count(desc, "\n"); n != 7 {
		t.Errorf("description has %d line breaks, want 7:\n%s", n, desc)
	}
	if got.StartsAt != "2026-11-21T08:00:00.123Z" {
		t.Errorf("startsAt = %s, want the incident's first failure 2026-11-21T08:00:00.123Z", got.StartsAt)
	}
	if want := now.Add(4 * time.Minute).Format(time.RFC3339Nano); got.EndsAt != want {
		t.Errorf("endsAt = %s, want now+4×ResendInterval %s", got.EndsAt, want)
	}
	for _, ts := range []string{got.StartsAt, got.EndsAt} {
		if _, err := time.Parse(time.RFC3339, ts); err != nil {
			t.Errorf("%q is not an RFC 3339 date-time: %v", ts, err)
		}
	}
	if got.GeneratorURL != "https://web1.example.com/medic" {
		t.Errorf("generatorURL = %q", got.GeneratorURL)
	}

	// Without a GeneratorURL the property is left out, not sent empty.
	r2 := &recorder{}
	a2 := newAM(t, Config{URLs: []string{fake(t, r2)}})
	if _, err := a2.Notify(context.Background(), message(notify.Resolved, notify.EventResolved)); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(r2.raw[0], "generatorURL") {
		t.Errorf("generatorURL sent though unset: %s", r2.raw[0])
	}
	if want := `"endsAt":"2026-11-21T08:02:00.123Z"`; !strings.Contains(r2.raw[0], want) {
		t.Errorf("resolved alert lacks %s (its ResolvedAt): %s", want, r2.raw[0])
	}
	if !strings.Contains(r2.raw[0], `"severity":"critical"`) {
		t.Errorf("resolved alert's labels differ from the firing one's: %s", r2.raw[0])
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestNewValidates(t *testing.T) {
	a, err := New(Config{Name: "fleet", URLs: []string{"http://127.0.0.1:9093"}}, zaptest.NewLogger(t))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if c := a.cfg; c.ResendInterval != time.Minute || c.ResolvedResendFor != 5*time.Minute || c.Timeout != 10*time.Second || c.Severity != "critical" {
		t.Errorf("defaults = %+v", c)
	}
	if a.Name() != "fleet" {
		t.Errorf("Name = %q", a.Name())
	}

	_, err = New(Config{
		URLs:           []string{"ftp://x", "http://user:s3cret@/p", "http://h:1/?q=1", "::"},
		ResendInterval: -time.Second,
		ExtraLabels:    map[string]string{"bad-name": "x", "severity": "low", "team": "", "__x": "y"},
		GeneratorURL:   "/relative",
	}, zaptest.NewLogger(t))
	if err == nil {
		t.Fatal("New accepted an invalid config")
	}
	msg := err.Error()
	for _, want := range []string{
		"name is empty",
		"url 1: ftp://x: scheme is not http or https",
		"url 2: http://xxxxx@/p: no host",
		"url 3: http://h:1/?q=xxxxx: has a query or fragment",
		"url 4: not a URL",
		"resend interval -1s is negative",
		`extra label "bad-name": invalid label name`,
		`extra label "severity": set by medic`,
		`extra label "team": value is empty`,
		`extra label "__x": invalid label name`,
		"generator URL is not an absolute http or https URL",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	if strings.Contains(msg, "s3cret") || strings.Contains(msg, "user") {
		t.Errorf("error shows user info: %s", msg)
	}
	if _, err := New(Config{Name: "x"}, zaptest.NewLogger(t)); err == nil || !strings.Contains(err.Error(), "no Alertmanager URL") {
		t.Errorf("New without URLs: %v", err)
	}
}

// TestStatusErrors: an HTTP 4xx is final, a 5xx or 429 may pass later, and
// a Retry-After header is kept; errors name the URL without user info.
func TestStatusErrors(t *testing.T) {
	for _, tc := range []struct {
		name      string
		rec       *recorder
		wantRetry bool
		wantErr   string
		wantAfter time.Duration
	}{
		{"400 invalid alert", &recorder{status: 400, body: `"start time must be before end time"`}, false,
			"400 Bad Request: start time must be before end time", 0},
		{"422 schema", &recorder{status: 422, body: `{"code":601,"message":"0.generatorURL in body must be of type uri: \"x\""}`}, false,
			`422 Unprocessable Entity: 0.generatorURL in body must be of type uri: "x"`, 0},
		{"401", &recorder{status: 401, body: "no"}, false, "401 Unauthorized: no", 0},
		{"500", &recorder{status: 500, body: `"boom"`}, true, "500 Internal Server Error: boom", 0},
		{"503 retry after", &recorder{status: 503, header: http.Header{"Retry-After": {"7"}}}, true,
			"503 Service Unavailable (retry after 7s)", 7 * time.Second},
		{"429", &recorder{status: 429}, true, "429 Too Many Requests", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := fake(t, tc.rec)
			withUser := strings.Replace(base, "http://", "http://medic:s3cret@", 1)
			a := newAM(t, Config{URLs: []string{withUser}})
			retry, err := a.Notify(context.Background(), message(notify.Firing, notify.GaveUp))
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			if retry != tc.wantRetry {
				t.Errorf("retry = %v, want %v (err %v)", retry, tc.wantRetry, err)
			}
			want := "post alerts to " + strings.Replace(base, "http://", "http://xxxxx@", 1) + ": " + tc.wantErr
			if err.Error() != want {
				t.Errorf("err = %q\nwant  %q", err, want)
			}
			if strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "medic@") {
				t.Errorf("error shows user info: %v", err)
			}
			if got := notify.RetryAfter(err); got != tc.wantAfter {
				t.Errorf("RetryAfter = %s, want %s", got, tc.wantAfter)
			}
			var se *StatusError
			if !errors.As(err, &se) || se.StatusCode != tc.rec.status {
				t.Errorf("error is not a *StatusError with code %d: %#v", tc.rec.status, err)
			}
			if got := tc.rec.auth[0]; got != "medic:s3cret" {
				t.Errorf("basic auth = %q, want the URL's user info", got)
			}
		})
	}
}

// TestDownURL: a closed port is a connection error: retry, naming the URL.
func TestDownURL(t *testing.T) {
	down := closedURL(t)
	a := newAM(t, Config{URLs: []string{down}})
	retry, err := a.Notify(context.Background(), message(notify.Firing, notify.GaveUp))
	if err == nil || !retry {
		t.Fatalf("Notify = %v, %v; want retry and an error", retry, err)
	}
	if !strings.HasPrefix(err.Error(), "post alerts to "+down+": ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want it to name %s and say connection refused", err, down)
	}
}

// TestTimeout: an Alertmanager that does not answer within Timeout is a
// retryable error that says so.
func TestTimeout(t *testing.T) {
	block := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-block:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(s.Close)
	t.Cleanup(func() { close(block) })
	a := newAM(t, Config{URLs: []string{s.URL}, Timeout: 100 * time.Millisecond})
	retry, err := a.Notify(context.Background(), message(notify.Firing, notify.GaveUp))
	if err == nil || !retry {
		t.Fatalf("Notify = %v, %v; want retry and an error", retry, err)
	}
	if !strings.Contains(err.Error(), "attempt timed out after 100ms") || !strings.Contains(err.Error(), s.URL) {
		t.Errorf("err = %v", err)
	}
}

// TestAnyAccepted: with several Alertmanagers, one accepting is success;
// when none accepts, the errors of all are joined, and retry is true when
// any may pass later.
func TestAnyAccepted(t *testing.T) {
	ok := &recorder{}
	bad := &recorder{status: 400, body: `"nope"`}
	down := closedURL(t)

	a := newAM(t, Config{URLs: []string{down, fake(t, ok), fake(t, bad)}})
	if retry, err := a.Notify(context.Background(), message(notify.Firing, notify.GaveUp)); err != nil {
		t.Fatalf("Notify with one accepting = %v, %v; want nil", retry, err)
	}
	if len(ok.posts) != 1 || len(bad.posts) != 1 {
		t.Errorf("posts: ok %d, bad %d; want 1 each", len(ok.posts), len(bad.posts))
	}

	badURL := fake(t, bad)
	a = newAM(t, Config{URLs: []string{down, badURL}})
	retry, err := a.Notify(context.Background(), message(notify.Firing, notify.GaveUp))
	if err == nil || !retry {
		t.Fatalf("Notify with none accepting = %v, %v; want retry (one is down) and an error", retry, err)
	}
	if !strings.Contains(err.Error(), down) || !strings.Contains(err.Error(), badURL+": 400") {
		t.Errorf("err does not name both URLs: %v", err)
	}

	a = newAM(t, Config{URLs: []string{badURL, fake(t, &recorder{status: 404})}})
	if retry, err := a.Notify(context.Background(), message(notify.Firing, notify.GaveUp)); err == nil || retry {
		t.Errorf("Notify with only 4xx = %v, %v; want no retry and an error", retry, err)
	}
}

// TestResendLifecycle drives resend with an injected clock: an active alert
// is re-sent with endsAt moving forward, a resolved one with its resolve
// time until ResolvedResendFor has passed, then never again; a message of
// an earlier incident does not overwrite a newer incident's alert.
func TestResendLifecycle(t *testing.T) {
	r := &recorder{}
	a := newAM(t, Config{URLs: []string{fake(t, r)}, ResendInterval: 10 * time.Second, ResolvedResendFor: time.Minute})
	now := since.Add(time.Minute)
	a.now = func() time.Time { return now }
	ctx := context.Background()

	if n := a.resend(ctx); n != 0 || len(r.posts) != 0 {
		t.Fatalf("resend with nothing recorded posted %d alerts", n)
	}
	if _, err := a.Notify(ctx, message(notify.Firing, notify.GaveUp)); err != nil {
		t.Fatal(err)
	}
	endsAt := func() string { return r.posts[len(r.posts)-1][0]["endsAt"].(string) }
	now = now.Add(10 * time.Second)
	if n := a.resend(ctx); n != 1 {
		t.Fatalf("resend posted %d alerts, want 1", n)
	}
	if want := now.Add(40 * time.Second).Format(time.RFC3339Nano); endsAt() != want {
		t.Errorf("re-sent endsAt = %s, want %s", endsAt(), want)
	}

	res := message(notify.Resolved, notify.EventResolved) // resolved at since+2m
	if _, err := a.Notify(ctx, res); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Duration{2 * time.Minute, 3 * time.Minute} { // since+2m .. +3m
		now = since.Add(at)
		if n := a.resend(ctx); n != 1 {
			t.Fatalf("at +%s: resend posted %d alerts, want the resolved one", at, n)
		}
		if want := "2026-11-21T08:02:00.123Z"; endsAt() != want {
			t.Errorf("re-sent resolved endsAt = %s, want %s", endsAt(), want)
		}
	}
	// A reminder of the same incident retried after its resolve is stale.
	posts := len(r.posts)
	if retry, err := a.Notify(ctx, message(notify.Reminder, notify.GaveUp)); err != nil || retry {
		t.Fatalf("late reminder = %v, %v", retry, err)
	}
	if len(r.posts) != posts {
		t.Errorf("late reminder of a resolved incident was posted")
	}
	now = since.Add(3*time.Minute + time.Millisecond)
	if n := a.resend(ctx); n != 0 {
		t.Errorf("resend after ResolvedResendFor posted %d alerts", n)
	}

	// A new incident of the same check, then a late message of the old one.
	newer := message(notify.Firing, notify.GaveUp)
	newer.Incident.ID, newer.Incident.Since = "my-app-new", since.Add(10*time.Minute)
	if _, err := a.Notify(ctx, newer); err != nil {
		t.Fatal(err)
	}
	posts = len(r.posts)
	if retry, err := a.Notify(ctx, res); err != nil || retry {
		t.Fatalf("late resolved message = %v, %v", retry, err)
	}
	if len(r.posts) != posts {
		t.Errorf("late message of an earlier incident was posted")
	}
	now = since.Add(11 * time.Minute)
	a.resend(ctx)
	last := r.posts[len(r.posts)-1][0]
	if ann := last["annotations"].(map[string]any); ann["incident"] != "my-app-new" {
		t.Errorf("re-sent alert is of incident %v, want my-app-new", ann["incident"])
	}
}

// TestTestMessage: a test message is an alert named MedicTest that ends by
// itself and is not re-sent.
func TestTestMessage(t *testing.T) {
	r := &recorder{}
	a := newAM(t, Config{URLs: []string{fake(t, r)}})
	now := since
	a.now = func() time.Time { return now }
	m := &notify.Message{ID: "test-1", Kind: notify.Test, Event: notify.EventTest, At: now,
		Incident: notify.Incident{ID: "test-1", Check: "medic-test", Host: "web1", Problem: "this is a test"}}
	if _, err := a.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := r.posts[0][0]
	labels := got["labels"].(map[string]any)
	if labels["alertname"] != "MedicTest" || labels["instance"] != "web1" {
		t.Errorf("test alert labels = %v", labels)
	}
	if _, ok := labels["unit"]; ok {
		t.Errorf("empty unit sent as a label: %v", labels)
	}
	if got["endsAt"] != now.Add(4*time.Minute).Format(time.RFC3339Nano) {
		t.Errorf("test alert endsAt = %v", got["endsAt"])
	}
	if n := a.resend(context.Background()); n != 0 {
		t.Errorf("test alert re-sent")
	}
}

// TestRedirectNotFollowed: an Alertmanager URL that answers with a
// redirect fails the send, and the Location is not fetched (net/http
// would turn the POST into a GET and lose the alerts).
func TestRedirectNotFollowed(t *testing.T) {
	target := &recorder{}
	targetURL := fake(t, target)
	for _, code := range []int{301, 302, 307, 308} {
		rc := &recorder{status: code, header: http.Header{"Location": {targetURL + "/api/v2/alerts"}}}
		for _, client := range []*http.Client{nil, {}} {
			a := newAM(t, Config{URLs: []string{fake(t, rc)}, Client: client})
			if _, err := a.Notify(context.Background(), message(notify.Firing, notify.VerifyFailed)); err == nil {
				t.Errorf("%d: Notify succeeded through a redirect", code)
			}
		}
	}
	target.mu.Lock()
	defer target.mu.Unlock()
	if n := len(target.posts); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}
