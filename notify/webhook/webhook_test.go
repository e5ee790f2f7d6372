package webhook_test

import (
	"github.com/medic-watchdog/medic/internal/notifytest"

	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/webhook"
)

var update = flag.Bool("update", false, "rewrite testdata/example-firing.json")

// testSecretText is a signing secret as a user writes it in secret_file.
const testSecretText = "whsec_c2VjcmV0LWtleS1mb3ItbWVkaWMtdGVzdHMtMDEyMzQ1Njc4OQ=="

// testSecretKey decodes testSecretText without ParseSecret, so that the
// receiver's key does not depend on the code under test.
func testSecretKey(t *testing.T) []byte {
	t.Helper()
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(testSecretText, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

// verifySignature is the receiver's own implementation of the Standard
// Webhooks symmetric scheme, written from the specification and not from
// the sender: the signed content is "{webhook-id}.{webhook-timestamp}.{body}",
// the signature is HMAC-SHA256 with the key, "v1," and standard base64;
// webhook-signature is a space delimited list of which one must match,
// compared in constant time; webhook-timestamp is integer unix seconds
// that must be within tolerance of now.
func verifySignature(key []byte, h http.Header, body []byte, tolerance time.Duration, now time.Time) error {
	id, ts, sigs := h.Get("webhook-id"), h.Get("webhook-timestamp"), h.Get("webhook-signature")
	if id == "" || ts == "" || sigs == "" {
		return errors.New("missing webhook headers")
	}
	sec, err := strconv.ParseInt(ts, 10, 64)
	if err != nil {
		return fmt.Errorf("bad webhook-timestamp %q", ts)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("webhook-timestamp %d is %s off", sec, d)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "." + string(body)))
	want := mac.Sum(nil)
	for _, s := range strings.Split(sigs, " ") {
		version, value, ok := strings.Cut(s, ",")
		if !ok || version != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(value)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return errors.New("no matching signature")
}

// TestVerifierStandardWebhooksVector checks the test receiver's verifier
// against the test vector of the Standard Webhooks reference libraries.
func TestVerifierStandardWebhooksVector(t *testing.T) {
	key, _ := base64.StdEncoding.DecodeString("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
	h := http.Header{}
	h.Set("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek")
	h.Set("webhook-timestamp", "1614265330")
	h.Set("webhook-signature", "v1,bm9wZQ== v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
	body := []byte(`{"test": 2432232314}`)
	if err := verifySignature(key, h, body, 5*time.Minute, time.Unix(1614265330, 0)); err != nil {
		t.Errorf("vector: %v", err)
	}
	if err := verifySignature(key, h, []byte(`{"test": 2432232315}`), 5*time.Minute, time.Unix(1614265330, 0)); err == nil {
		t.Error("tampered body verified")
	}
	if err := verifySignature(key, h, body, 5*time.Minute, time.Unix(1614265330+301, 0)); err == nil {
		t.Error("stale timestamp verified")
	}
}

// testMessage returns a firing message with every field set; its times
// are in a zone other than UTC and have fractional seconds.
func testMessage() *notify.Message {
	cet := time.FixedZone("CET", 3600)
	since := time.Date(2026, 11, 21, 9, 0, 0, 123000000, cet)
	return &notify.Message{
		ID:      "my-app-20261121T080000.123Z.1",
		Kind:    notify.Firing,
		Event:   notify.VerifyFailed,
		At:      since.Add(47*time.Second + 333*time.Millisecond),
		Version: "1.2.3",
		Incident: notify.Incident{
			ID:        "my-app-20261121T080000.123Z",
			Check:     "my-app",
			Unit:      "my-app.service",
			Host:      "web1",
			Target:    "127.0.0.1:8080",
			Problem:   "127.0.0.1:8080 connection refused",
			Cause:     "backend crashed",
			Diagnosis: notifytest.CrashDiagnosis(since.Add(46 * time.Second)),
			Since:     since,
			Timeline: []notify.Entry{
				{At: since, What: "first failed probe", Detail: "dial tcp 127.0.0.1:8080: connect: connection refused"},
				{At: since.Add(4 * time.Second), What: "restart 1", Detail: "job done"},
				{At: since.Add(45 * time.Second), What: "verify failed", Detail: "probes still failing after 30s"},
			},
			Restarts: 1,
			UnitState: notify.UnitState{
				ActiveState:    "failed",
				SubState:       "failed",
				Result:         "exit-code",
				ExecMainCode:   1,
				ExecMainStatus: 1,
				NRestarts:      0,
				MainPID:        0,
				Since:          since.Add(44 * time.Second),
			},
			Journal: []string{
				"Nov 21 09:00:44 web1 my-app[4242]: panic: listen tcp :8080: bind: address already in use",
				"Nov 21 09:00:44 web1 systemd[1]: my-app.service: Main process exited, code=exited, status=1/FAILURE",
			},
		},
	}
}

// request is what a test receiver got.
type request struct {
	method string
	path   string
	header http.Header
	body   []byte
}

// receiver is an httptest server that records requests and answers with
// status (200 when 0) and the given headers and body.
type receiver struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []request
}

func newReceiver(t *testing.T, status int, header http.Header, body string) *receiver {
	t.Helper()
	rc := &receiver{}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("receiver: read body: %v", err)
		}
		rc.mu.Lock()
		rc.reqs = append(rc.reqs, request{r.Method, r.URL.Path, r.Header.Clone(), b})
		rc.mu.Unlock()
		for k, v := range header {
			w.Header()[k] = v
		}
		if status != 0 {
			w.WriteHeader(status)
		}
		io.WriteString(w, body)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func (rc *receiver) requests() []request {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return slices.Clone(rc.reqs)
}

func newWebhook(t *testing.T, cfg webhook.Config) *webhook.Webhook {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "ops-webhook"
	}
	w, err := webhook.New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return w
}

func testSecret(t *testing.T) []byte {
	t.Helper()
	s, err := webhook.ParseSecret(testSecretText + "\n")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSignedJSON(t *testing.T) {
	rc := newReceiver(t, http.StatusNoContent, nil, "")
	w := newWebhook(t, webhook.Config{URL: rc.URL + "/hooks/medic", Secret: testSecret(t)})
	m := testMessage()
	start := time.Now()
	retry, err := w.Notify(context.Background(), m)
	if err != nil || retry {
		t.Fatalf("Notify = %v, %v; want false, nil", retry, err)
	}
	reqs := rc.requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.method != http.MethodPost || r.path != "/hooks/medic" {
		t.Errorf("request %s %s, want POST /hooks/medic", r.method, r.path)
	}
	if err := verifySignature(testSecretKey(t), r.header, r.body, 5*time.Minute, time.Now()); err != nil {
		t.Errorf("verify signature: %v", err)
	}
	if got := r.header.Get("webhook-id"); got != m.ID {
		t.Errorf("webhook-id %q, want %q", got, m.ID)
	}
	ts, _ := strconv.ParseInt(r.header.Get("webhook-timestamp"), 10, 64)
	if ts < start.Unix() || ts > time.Now().Unix() {
		t.Errorf("webhook-timestamp %d is not the attempt's time (%d)", ts, start.Unix())
	}
	for h, want := range map[string]string{
		"Content-Type": "application/json",
		"User-Agent":   "medic/1.2.3",
	} {
		if got := r.header.Get(h); got != want {
			t.Errorf("%s: %q, want %q", h, got, want)
		}
	}
	if got := r.header.Get("webhook-signature"); !strings.HasPrefix(got, "v1,") || strings.Contains(got, " ") {
		t.Errorf("webhook-signature %q, want one v1 signature", got)
	}

	var p webhook.Payload
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode payload: %v\n%s", err, r.body)
	}
	in := &m.Incident
	checks := []struct {
		field     string
		got, want any
	}{
		{"version", p.Version, "1"},
		{"type", p.Type, "incident.firing"},
		{"message_id", p.MessageID, m.ID},
		{"event", p.Event, "verify_failed"},
		{"summary", p.Summary, "FIRING my-app.service on web1: 127.0.0.1:8080 connection refused, restart did not help"},
		{"incident.id", p.Incident.ID, in.ID},
		{"incident.check", p.Incident.Check, "my-app"},
		{"incident.unit", p.Incident.Unit, "my-app.service"},
		{"incident.host", p.Incident.Host, "web1"},
		{"incident.state", p.Incident.State, "firing"},
		{"incident.target", p.Incident.Target, "127.0.0.1:8080"},
		{"incident.problem", p.Incident.Problem, in.Problem},
		{"incident.cause", p.Incident.Cause, "backend crashed"},
		{"incident.restarts", p.Incident.Restarts, 1},
		{"incident.resolved_at", p.Incident.ResolvedAt, (*time.Time)(nil)},
		{"incident.timeline length", len(p.Incident.Timeline), 3},
		{"incident.timeline[2].what", p.Incident.Timeline[2].What, "verify failed"},
		{"incident.timeline[2].detail", p.Incident.Timeline[2].Detail, "probes still failing after 30s"},
		{"incident.unit_state.active_state", p.Incident.UnitState.ActiveState, "failed"},
		{"incident.unit_state.sub_state", p.Incident.UnitState.SubState, "failed"},
		{"incident.unit_state.result", p.Incident.UnitState.Result, "exit-code"},
		{"incident.unit_state.exec_main_code", p.Incident.UnitState.ExecMainCode, int32(1)},
		{"incident.unit_state.exec_main_status", p.Incident.UnitState.ExecMainStatus, int32(1)},
		{"incident.journal", strings.Join(p.Incident.Journal, "\n"), strings.Join(in.Journal, "\n")},
		{"medic.version", p.Medic.Version, "1.2.3"},
		{"medic.host", p.Medic.Host, "web1"},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %#v, want %#v", c.field, c.got, c.want)
		}
	}
	times := []struct {
		field     string
		got, want time.Time
	}{
		{"timestamp", p.Timestamp, m.At},
		{"incident.since", p.Incident.Since, in.Since},
		{"incident.timeline[0].at", p.Incident.Timeline[0].At, in.Timeline[0].At},
		{"incident.timeline[1].at", p.Incident.Timeline[1].At, in.Timeline[1].At},
		{"incident.unit_state.since", deref(p.Incident.UnitState.Since), in.UnitState.Since},
	}
	for _, c := range times {
		if !c.got.Equal(c.want) {
			t.Errorf("%s = %s, want %s", c.field, c.got, c.want)
		}
	}

	// On the wire every field is present and every time is RFC 3339 UTC.
	var raw map[string]any
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "type", "message_id", "event", "summary", "incident", "medic", "timestamp"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("payload lacks %q", k)
		}
	}
	rawIn := raw["incident"].(map[string]any)
	for _, k := range []string{"id", "check", "unit", "host", "state", "target", "problem", "cause", "since", "resolved_at", "restarts", "timeline", "unit_state", "journal"} {
		if _, ok := rawIn[k]; !ok {
			t.Errorf("payload lacks incident.%s", k)
		}
	}
	for _, s := range []string{raw["timestamp"].(string), rawIn["since"].(string)} {
		if _, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") {
			t.Errorf("time %q is not RFC 3339 UTC: %v", s, err)
		}
	}
	if got := raw["timestamp"]; got != "2026-11-21T08:00:47.456Z" {
		t.Errorf("timestamp on the wire %q, want 2026-11-21T08:00:47.456Z", got)
	}
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func TestResolvedPayload(t *testing.T) {
	rc := newReceiver(t, 0, nil, "")
	w := newWebhook(t, webhook.Config{URL: rc.URL})
	m := testMessage()
	m.ID = "my-app-20261121T080000.123Z.2"
	m.Kind, m.Event = notify.Resolved, notify.EventResolved
	m.Incident.ResolvedAt = m.Incident.Since.Add(3 * time.Minute)
	m.Incident.Journal = nil
	m.Incident.Timeline = nil
	m.Incident.UnitState.Since = time.Time{}
	if _, err := w.Notify(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	body := rc.requests()[0].body
	var p webhook.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "incident.resolved" || p.Event != "resolved" || p.Incident.State != "resolved" {
		t.Errorf("type, event, state = %q, %q, %q; want incident.resolved, resolved, resolved", p.Type, p.Event, p.Incident.State)
	}
	if p.Incident.ResolvedAt == nil || !p.Incident.ResolvedAt.Equal(m.Incident.ResolvedAt) {
		t.Errorf("resolved_at = %v, want %s", p.Incident.ResolvedAt, m.Incident.ResolvedAt)
	}
	for _, want := range []string{`"timeline":[]`, `"journal":[]`, `"since":null`} {
		if !bytes.Contains(body, []byte(want)) {
			t.Errorf("body lacks %s: %s", want, body)
		}
	}
}

func TestPayloadTypes(t *testing.T) {
	for kind, want := range map[notify.Kind]string{
		notify.Firing:    "incident.firing",
		notify.Reminder:  "incident.reminder",
		notify.Resolved:  "incident.resolved",
		notify.Recovered: "incident.recovered",
		notify.Test:      "test",
	} {
		m := testMessage()
		m.Kind = kind
		if got := webhook.NewPayload(m).Type; got != want {
			t.Errorf("kind %s: type %q, want %q", kind, got, want)
		}
	}
}

// TestSameIDAcrossRetries: every attempt for one message carries the same
// webhook-id and body; other messages carry other ids.
func TestSameIDAcrossRetries(t *testing.T) {
	rc := newReceiver(t, http.StatusServiceUnavailable, nil, "down")
	key := testSecretKey(t)
	m := testMessage()
	for range 3 {
		// A new Webhook each time, as after a restart of medic.
		w := newWebhook(t, webhook.Config{URL: rc.URL, Secret: testSecret(t)})
		if retry, err := w.Notify(context.Background(), m); !retry || err == nil {
			t.Fatalf("Notify = %v, %v; want true, error", retry, err)
		}
	}
	other := testMessage()
	other.ID = "my-app-20261121T080000.123Z.2"
	other.Kind = notify.Reminder
	w := newWebhook(t, webhook.Config{URL: rc.URL, Secret: testSecret(t)})
	w.Notify(context.Background(), other)

	reqs := rc.requests()
	if len(reqs) != 4 {
		t.Fatalf("receiver got %d requests, want 4", len(reqs))
	}
	for i, r := range reqs {
		if err := verifySignature(key, r.header, r.body, 5*time.Minute, time.Now()); err != nil {
			t.Errorf("request %d: %v", i, err)
		}
	}
	for i := 1; i < 3; i++ {
		if got, want := reqs[i].header.Get("webhook-id"), reqs[0].header.Get("webhook-id"); got != want {
			t.Errorf("attempt %d: webhook-id %q, want %q", i+1, got, want)
		}
		if !bytes.Equal(reqs[i].body, reqs[0].body) {
			t.Errorf("attempt %d: body differs:\n%s\n%s", i+1, reqs[i].body, reqs[0].body)
		}
	}
	if reqs[0].header.Get("webhook-id") != m.ID {
		t.Errorf("webhook-id %q, want %q", reqs[0].header.Get("webhook-id"), m.ID)
	}
	if got := reqs[3].header.Get("webhook-id"); got != other.ID {
		t.Errorf("other message: webhook-id %q, want %q", got, other.ID)
	}
}

func TestUnsigned(t *testing.T) {
	rc := newReceiver(t, http.StatusOK, nil, "ok")
	w := newWebhook(t, webhook.Config{URL: rc.URL, Headers: map[string]string{"Authorization": "Bearer tok", "X-Team": "ops"}})
	m := testMessage()
	m.Version = ""
	if retry, err := w.Notify(context.Background(), m); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	h := rc.requests()[0].header
	if _, ok := h["Webhook-Signature"]; ok {
		t.Errorf("unsigned webhook sent webhook-signature %q", h.Get("webhook-signature"))
	}
	if h.Get("webhook-id") != m.ID || h.Get("webhook-timestamp") == "" {
		t.Errorf("webhook-id %q, webhook-timestamp %q; want both", h.Get("webhook-id"), h.Get("webhook-timestamp"))
	}
	if h.Get("Authorization") != "Bearer tok" || h.Get("X-Team") != "ops" {
		t.Errorf("configured headers missing: %v", h)
	}
	if got := h.Get("User-Agent"); got != "medic" {
		t.Errorf("User-Agent %q, want medic", got)
	}
}

func TestSlack(t *testing.T) {
	rc := newReceiver(t, http.StatusOK, nil, "ok")
	w := newWebhook(t, webhook.Config{URL: rc.URL + "/services/T000/B000/XXXX", Format: "slack", Secret: testSecret(t)})
	m := testMessage()
	m.Incident.Problem = "GET http://127.0.0.1:8080/health?a=1&b=2: 502 <html>"
	if retry, err := w.Notify(context.Background(), m); err != nil || retry {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	r := rc.requests()[0]
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	if err := verifySignature(testSecretKey(t), r.header, r.body, 5*time.Minute, time.Now()); err != nil {
		t.Errorf("verify signature: %v", err)
	}
	var p struct {
		Text        string `json:"text"`
		Attachments []struct {
			Color, Fallback, Text string
		} `json:"attachments"`
	}
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("decode: %v\n%s", err, r.body)
	}
	want := "[medic] FIRING my-app.service on web1: GET http://127.0.0.1:8080/health?a=1&amp;b=2: 502 &lt;html&gt;, restart did not help"
	if p.Text != want {
		t.Errorf("text\n%q, want\n%q", p.Text, want)
	}
	if len(p.Attachments) != 1 {
		t.Fatalf("%d attachments, want 1", len(p.Attachments))
	}
	a := p.Attachments[0]
	if a.Color != "danger" {
		t.Errorf("color %q, want danger", a.Color)
	}
	for _, s := range []string{"*Problem:*", "*Cause:* backend crashed", "my-app.service failed/failed, result exit-code, status 1",
		"2026-11-21 08:00:00Z first failed probe: dial tcp", "verify failed"} {
		if !strings.Contains(a.Text, s) {
			t.Errorf("attachment text lacks %q:\n%s", s, a.Text)
		}
	}
	if strings.Contains(a.Text, "<html>") {
		t.Errorf("attachment text not escaped:\n%s", a.Text)
	}
}

func TestSlackColors(t *testing.T) {
	for kind, want := range map[notify.Kind]string{
		notify.Firing: "danger", notify.Reminder: "warning", notify.Resolved: "good",
		notify.Recovered: "good", notify.Test: "#439FE0",
	} {
		m := testMessage()
		m.Kind = kind
		if got := webhook.NewSlackPayload(m).Attachments[0].Color; got != want {
			t.Errorf("kind %s: color %q, want %q", kind, got, want)
		}
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		name       string
		status     int
		header     http.Header
		body       string
		wantRetry  bool
		wantErr    bool
		wantAfter  time.Duration
		wantAfterT time.Duration // tolerance on wantAfter
	}{
		{name: "200", status: 200},
		{name: "202", status: 202},
		{name: "204", status: 204},
		{name: "500", status: 500, wantRetry: true, wantErr: true},
		{name: "502", status: 502, wantRetry: true, wantErr: true},
		{name: "503 with Retry-After", status: 503, header: http.Header{"Retry-After": {"120"}}, wantRetry: true, wantErr: true, wantAfter: 2 * time.Minute},
		{name: "408", status: 408, wantRetry: true, wantErr: true},
		{name: "429", status: 429, wantRetry: true, wantErr: true},
		{name: "429 Retry-After seconds", status: 429, header: http.Header{"Retry-After": {"7"}}, wantRetry: true, wantErr: true, wantAfter: 7 * time.Second},
		{name: "429 Retry-After date", status: 429, header: http.Header{"Retry-After": {time.Now().Add(30 * time.Second).UTC().Format(http.TimeFormat)}},
			wantRetry: true, wantErr: true, wantAfter: 30 * time.Second, wantAfterT: 2 * time.Second},
		{name: "429 Retry-After capped", status: 429, header: http.Header{"Retry-After": {"604800"}}, wantRetry: true, wantErr: true, wantAfter: time.Hour},
		{name: "429 Retry-After invalid", status: 429, header: http.Header{"Retry-After": {"later"}}, wantRetry: true, wantErr: true},
		{name: "400", status: 400, wantErr: true},
		{name: "401", status: 401, wantErr: true},
		{name: "404", status: 404, wantErr: true},
		{name: "410", status: 410, wantErr: true},
		{name: "400 ignores Retry-After", status: 400, header: http.Header{"Retry-After": {"7"}}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rc := newReceiver(t, tt.status, tt.header, tt.body)
			w := newWebhook(t, webhook.Config{URL: rc.URL})
			retry, err := w.Notify(context.Background(), testMessage())
			if retry != tt.wantRetry || (err != nil) != tt.wantErr {
				t.Fatalf("Notify = %v, %v; want retry %v, error %v", retry, err, tt.wantRetry, tt.wantErr)
			}
			if err == nil {
				return
			}
			var se *webhook.StatusError
			if !errors.As(err, &se) || se.StatusCode != tt.status {
				t.Errorf("error %v is not a *StatusError with code %d", err, tt.status)
			}
			got := notify.RetryAfter(err)
			if d := got - tt.wantAfter; d > tt.wantAfterT || d < -tt.wantAfterT {
				t.Errorf("RetryAfter = %s, want %s", got, tt.wantAfter)
			}
		})
	}
}

func TestErrorText(t *testing.T) {
	body := "upstream\r\nis down " + strings.Repeat("x", 300)
	rc := newReceiver(t, http.StatusServiceUnavailable, nil, body)
	w := newWebhook(t, webhook.Config{URL: rc.URL + "/hooks/medic"})
	_, err := w.Notify(context.Background(), testMessage())
	want := "post webhook " + rc.URL + "/hooks/medic: 503 Service Unavailable: upstream is down " + strings.Repeat("x", 200-len("upstream\r\nis down "))
	if err == nil || err.Error() != want {
		t.Errorf("error\n%v, want\n%s", err, want)
	}
}

// TestRedirectNotFollowed: a 3xx is a failure a retry cannot fix, and the
// Location is not fetched.
func TestRedirectNotFollowed(t *testing.T) {
	target := newReceiver(t, http.StatusOK, nil, "")
	for _, code := range []int{301, 302, 307, 308} {
		rc := newReceiver(t, code, http.Header{"Location": {target.URL + "/new"}}, "")
		for _, client := range []*http.Client{nil, {}} {
			w := newWebhook(t, webhook.Config{URL: rc.URL, Client: client})
			retry, err := w.Notify(context.Background(), testMessage())
			if retry || err == nil {
				t.Errorf("%d: Notify = %v, %v; want false, error", code, retry, err)
			} else if !strings.Contains(err.Error(), "redirects are not followed") {
				t.Errorf("%d: error %q does not say redirects are not followed", code, err)
			}
		}
	}
	if n := len(target.requests()); n != 0 {
		t.Errorf("redirect target got %d requests, want 0", n)
	}
}

// hangingServer accepts requests and never answers until the test ends or
// the client goes away.
func hangingServer(t *testing.T) *httptest.Server {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })
	return srv
}

func TestTimeout(t *testing.T) {
	srv := hangingServer(t)
	const timeout = 300 * time.Millisecond
	w := newWebhook(t, webhook.Config{URL: srv.URL, Timeout: timeout})
	start := time.Now()
	retry, err := w.Notify(context.Background(), testMessage())
	elapsed := time.Since(start)
	if !retry || err == nil {
		t.Fatalf("Notify = %v, %v; want true, error", retry, err)
	}
	if elapsed < timeout || elapsed > timeout+2*time.Second {
		t.Errorf("Notify returned after %s, want about %s", elapsed, timeout)
	}
	if !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "attempt timed out after 300ms") {
		t.Errorf("error %q does not say the attempt timed out", err)
	}
}

func TestContextCanceled(t *testing.T) {
	srv := hangingServer(t)
	w := newWebhook(t, webhook.Config{URL: srv.URL, Timeout: time.Minute})
	ctx, cancel := context.WithCancelCause(context.Background())
	shutdown := errors.New("medic is stopping")
	time.AfterFunc(100*time.Millisecond, func() { cancel(shutdown) })
	start := time.Now()
	retry, err := w.Notify(ctx, testMessage())
	if elapsed := time.Since(start); elapsed > 5*time.Second {
		t.Errorf("Notify returned after %s, want soon after cancel", elapsed)
	}
	if !retry || !errors.Is(err, shutdown) {
		t.Errorf("Notify = %v, %v; want true and an error wrapping the cause", retry, err)
	}
}

func TestConnectionReset(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.(*net.TCPConn).SetLinger(0) // close with RST
			c.Close()
		}
	}()
	w := newWebhook(t, webhook.Config{URL: "http://" + ln.Addr().String() + "/hook", Secret: testSecret(t)})
	retry, err := w.Notify(context.Background(), testMessage())
	if !retry || err == nil {
		t.Fatalf("Notify = %v, %v; want true, error", retry, err)
	}
	t.Logf("reset: %v", err)
}

func TestConnectionRefused(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w := newWebhook(t, webhook.Config{URL: "http://" + addr + "/hook"})
	retry, err := w.Notify(context.Background(), testMessage())
	if !retry || err == nil {
		t.Fatalf("Notify = %v, %v; want true, error", retry, err)
	}
	if !strings.Contains(err.Error(), "connection refused") || !strings.HasPrefix(err.Error(), "post webhook http://"+addr+"/hook: ") {
		t.Errorf("error %q", err)
	}
}

// TestNoSecretInErrors runs every failure with a secret, a password and a
// query token in the URL and a credential header, and looks for them in
// the error text.
func TestNoSecretInErrors(t *testing.T) {
	secret := testSecret(t)
	leaks := []string{
		testSecretText, strings.TrimPrefix(testSecretText, "whsec_"), string(secret),
		"hunter2", "s3cr3t-token", "Bearer-abc123", "alice",
	}
	hang := hangingServer(t)
	refused, _ := net.Listen("tcp", "127.0.0.1:0")
	refusedAddr := refused.Addr().String()
	refused.Close()
	hosts := map[string]string{
		"500":     newReceiver(t, 500, nil, "internal error").Listener.Addr().String(),
		"429":     newReceiver(t, 429, http.Header{"Retry-After": {"3"}}, "").Listener.Addr().String(),
		"404":     newReceiver(t, 404, nil, "not found").Listener.Addr().String(),
		"301":     newReceiver(t, 301, http.Header{"Location": {"http://alice:hunter2@example.com/?token=s3cr3t-token"}}, "").Listener.Addr().String(),
		"timeout": hang.Listener.Addr().String(),
		"refused": refusedAddr,
	}
	for name, host := range hosts {
		t.Run(name, func(t *testing.T) {
			u := "http://alice:hunter2@" + host + "/hook?token=s3cr3t-token&team=ops"
			w := newWebhook(t, webhook.Config{URL: u, Secret: secret, Timeout: 200 * time.Millisecond,
				Headers: map[string]string{"Authorization": "Bearer-abc123"}})
			_, err := w.Notify(context.Background(), testMessage())
			if err == nil {
				t.Fatal("Notify succeeded")
			}
			for _, s := range leaks {
				if strings.Contains(err.Error(), s) {
					t.Errorf("error %q contains secret %q", err, s)
				}
			}
			if want := "http://xxxxx@" + host + "/hook?team=xxxxx&token=xxxxx"; !strings.Contains(err.Error(), want) {
				t.Errorf("error %q lacks the redacted URL %s", err, want)
			}
		})
	}
}

func TestRedactURL(t *testing.T) {
	tests := []struct {
		url      string
		hidePath bool
		want     string
	}{
		{"https://hooks.example.com/medic", false, "https://hooks.example.com/medic"},
		{"https://u:p@hooks.example.com:8443/a/b?x=1&api_key=k#frag", false, "https://xxxxx@hooks.example.com:8443/a/b?api_key=xxxxx&x=xxxxx"},
		{"https://token@hooks.example.com/", false, "https://xxxxx@hooks.example.com/"},
		{"https://hooks.slack.com/services/T000/B000/XXXX", true, "https://hooks.slack.com/services/xxxxx"},
		{"https://chat.example.com/hooks/abcdef", true, "https://chat.example.com/hooks/xxxxx"},
		{"https://chat.example.com/hooks", true, "https://chat.example.com/hooks"},
		{"https://chat.example.com/hooks/", true, "https://chat.example.com/hooks/"},
	}
	for _, tt := range tests {
		u, err := url.Parse(tt.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := webhook.RedactURL(u, tt.hidePath); got != tt.want {
			t.Errorf("RedactURL(%s, %v) = %s, want %s", tt.url, tt.hidePath, got, tt.want)
		}
	}
}

func TestSlackURLRedactedInErrors(t *testing.T) {
	rc := newReceiver(t, 404, nil, "no_service")
	w := newWebhook(t, webhook.Config{URL: rc.URL + "/services/T000/B000/XXXXSECRET", Format: "slack"})
	_, err := w.Notify(context.Background(), testMessage())
	if err == nil || strings.Contains(err.Error(), "XXXXSECRET") {
		t.Errorf("error %v, want one without the path secret", err)
	}
	if want := "post webhook " + rc.URL + "/services/xxxxx: 404 Not Found: no_service"; err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
}

func TestParseSecret(t *testing.T) {
	tests := []struct {
		in      string
		want    string
		wantErr string
	}{
		{in: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", want: "\x31\xf2\x90\xf6\xbf\x06\x29\x8a\xab\x4f\x08\xd4\x3c\x3f\x08\x2c\xf6\x48\xa3\x62\xda\x2d\xa4\xb0"},
		{in: "whsec_c2VjcmV0\n", want: "secret"},
		{in: "whsec_c2VjcmV0IQ==", want: "secret!"},
		{in: "whsec_c2VjcmV0IQ", want: "secret!"}, // unpadded
		{in: "  correct horse battery staple \n", want: "correct horse battery staple"},
		{in: "c2VjcmV0", want: "c2VjcmV0"}, // no prefix: the bytes as written
		{in: "", wantErr: "parse webhook secret: empty"},
		{in: " \n", wantErr: "parse webhook secret: empty"},
		{in: "whsec_", wantErr: `parse webhook secret: empty key after "whsec_"`},
		{in: "whsec_not*base64!", wantErr: `parse webhook secret: invalid base64 after "whsec_"`},
	}
	for _, tt := range tests {
		got, err := webhook.ParseSecret(tt.in)
		if tt.wantErr != "" {
			if err == nil || err.Error() != tt.wantErr {
				t.Errorf("ParseSecret(%q) error %v, want %s", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || string(got) != tt.want {
			t.Errorf("ParseSecret(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
}

func TestNewErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  webhook.Config
		want []string
	}{
		{"relative URL", webhook.Config{URL: "hooks.example.com/x"}, []string{"want an absolute http:// or https:// URL"}},
		{"ftp URL", webhook.Config{URL: "ftp://example.com/"}, []string{"want an absolute http:// or https:// URL"}},
		{"bad URL hides its secret", webhook.Config{URL: "http://u:hunter2@exa mple.com/"}, []string{"parse webhook URL:"}},
		{"format", webhook.Config{URL: "https://x/", Format: "xml"}, []string{`invalid webhook format "xml"`}},
		{"timeout", webhook.Config{URL: "https://x/", Timeout: -time.Second}, []string{"invalid webhook timeout -1s"}},
		{"empty secret", webhook.Config{URL: "https://x/", Secret: []byte{}}, []string{"invalid webhook secret: empty"}},
		{"reserved header", webhook.Config{URL: "https://x/", Headers: map[string]string{"webhook-id": "1"}}, []string{`invalid webhook header "webhook-id": set by medic`}},
		{"bad header name", webhook.Config{URL: "https://x/", Headers: map[string]string{"X Bad": "1"}}, []string{`invalid webhook header name "X Bad"`}},
		{"header value hides its secret", webhook.Config{URL: "https://x/", Headers: map[string]string{"Authorization": "hunter2\r\nX: y"}}, []string{`invalid webhook header "Authorization": value has control characters`}},
		{"all at once", webhook.Config{URL: "x", Format: "xml", Timeout: -1}, []string{"absolute", "format", "timeout"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.cfg.Name = "ops-webhook"
			_, err := webhook.New(tt.cfg)
			if err == nil {
				t.Fatal("New succeeded")
			}
			if !strings.HasPrefix(err.Error(), "webhook ops-webhook: ") {
				t.Errorf("error %q does not name the notifier", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q leaks a secret", err)
			}
		})
	}
}

func TestInvalidMessageID(t *testing.T) {
	rc := newReceiver(t, 200, nil, "")
	w := newWebhook(t, webhook.Config{URL: rc.URL})
	for _, id := range []string{"", "a b", "a\r\nX-Evil: 1"} {
		m := testMessage()
		m.ID = id
		if retry, err := w.Notify(context.Background(), m); retry || err == nil {
			t.Errorf("id %q: Notify = %v, %v; want false, error", id, retry, err)
		}
	}
	if n := len(rc.requests()); n != 0 {
		t.Errorf("receiver got %d requests, want 0", n)
	}
}

// TestExampleFiring keeps testdata/example-firing.json and
// example-firing-slack.json, the examples in docs/webhook.md, equal to what
// medic sends for testMessage (indented); go test -run TestExampleFiring
// -update rewrites them.
func TestExampleFiring(t *testing.T) {
	for format, file := range map[webhook.Format]string{
		"json":  "example-firing.json",
		"slack": "example-firing-slack.json",
	} {
		t.Run(string(format), func(t *testing.T) {
			rc := newReceiver(t, 200, nil, "")
			w := newWebhook(t, webhook.Config{URL: rc.URL, Secret: testSecret(t), Format: format})
			if _, err := w.Notify(context.Background(), testMessage()); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, rc.requests()[0].body, "", "  "); err != nil {
				t.Fatal(err)
			}
			buf.WriteByte('\n')
			path := filepath.Join("testdata", file)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestExampleFiring -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("payload differs from %s (run go test -run TestExampleFiring -update if intended):\n%s", path, buf.Bytes())
			}
		})
	}
}

// TestDocsShowExamples: docs/webhook.md shows the current example payloads.
func TestDocsShowExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "webhook.md"))
	if err != nil {
		t.Fatalf("read docs/webhook.md: %v", err)
	}
	for _, file := range []string{"example-firing.json", "example-firing-slack.json"} {
		example, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, append([]byte("```json\n"), example...)) {
			t.Errorf("docs/webhook.md does not show testdata/%s; copy it in", file)
		}
		if file == "example-firing.json" {
			readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(readme, bytes.TrimRight(example, "\n")) {
				t.Errorf("README.md does not show testdata/%s; copy it in", file)
			}
		}
	}
}
