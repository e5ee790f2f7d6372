// Package alertmanager is the notifier that sends medic's incidents to
// Prometheus Alertmanager as alerts, through its API v2 (POST
// /api/v2/alerts, the postableAlerts of api/v2/openapi.yaml).
//
// Alertmanager expects its clients to behave like Prometheus: send each
// alert to every Alertmanager of a highly available cluster directly (no
// load balancer), and keep re-sending it while it is active, with an endsAt
// in the future, so that it never expires on its own; a resolved alert is
// sent with endsAt set to when it resolved, and re-sent for a while so that
// an Alertmanager that missed it learns of it. The Alertmanager notifier
// does the same: Notify sends at once, and Run re-sends every
// ResendInterval.
package alertmanager

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/internal/redact"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/httpsend"
)

// Defaults of Config.
const (
	// DefaultResendInterval is how often Run re-sends alerts, Prometheus'
	// default --rules.alert.resend-delay.
	DefaultResendInterval = time.Minute
	// DefaultResolvedResendFor is how long a resolved alert keeps being
	// re-sent.
	DefaultResolvedResendFor = 5 * time.Minute
	// DefaultTimeout bounds each POST to one Alertmanager.
	DefaultTimeout = 10 * time.Second
	// DefaultSeverity is the severity label of medic's alerts.
	DefaultSeverity = "critical"
)

// Alert names, the alertname label of medic's alerts.
const (
	// AlertName is the alertname of an incident's alert.
	AlertName = "MedicCheckFailing"
	// TestAlertName is the alertname of the alert `medic notify test`
	// sends.
	TestAlertName = "MedicTest"
)

// Path is the Alertmanager API v2 endpoint alerts are posted to, relative
// to an Alertmanager's base URL.
const Path = "/api/v2/alerts"

// maxTimeline is how many of an incident's latest timeline entries the
// description annotation lists.
const maxTimeline = 10

// Config configures an Alertmanager notifier. Zero durations and an empty
// Severity take their defaults.
type Config struct {
	// Name is the notifier's name from the configuration.
	Name string
	// URLs are the base URLs of the Alertmanagers, e.g.
	// "http://127.0.0.1:9093", or with its --web.route-prefix,
	// "http://am.example.com/alertmanager". Every alert is posted to each
	// of them directly, as Alertmanager's high availability requires. A
	// user and password in a URL are sent as HTTP basic authentication and
	// never appear in errors or logs.
	URLs []string
	// ResendInterval is how often Run re-sends alerts (default 1m). An
	// active alert's endsAt is 4×ResendInterval after it is sent, as
	// Prometheus does, so it expires only when medic stops sending it.
	ResendInterval time.Duration
	// ResolvedResendFor is how long after it resolved an alert keeps being
	// re-sent (default 5m).
	ResolvedResendFor time.Duration
	// Timeout bounds each POST to one Alertmanager (default 10s).
	Timeout time.Duration
	// Severity is the severity label (default "critical"). It is the same
	// for the firing and the resolved alert: labels identify an alert.
	Severity string
	// ExtraLabels are added to every alert's labels, e.g. a team or an
	// environment to route on. They may not replace medic's own labels.
	ExtraLabels map[string]string
	// GeneratorURL, when set, is every alert's generatorURL: the link back
	// to its source, e.g. the host's medic dashboard. It must be an
	// absolute http or https URL.
	GeneratorURL string
	// Client makes the requests; nil means a client of its own with the
	// default transport.
	Client *http.Client
}

// ownLabels are the labels medic sets itself.
var ownLabels = []string{"alertname", "check", "unit", "instance", "severity"}

// labelName is Prometheus' label name syntax (model.LabelNameRE).
var labelName = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Alertmanager is the notifier that posts incidents to Alertmanagers as
// alerts with alertname "MedicCheckFailing", one alert per check, unit and
// host. Its Run loop must run while medic does, or active alerts expire
// (4×ResendInterval after the last send) and Alertmanager resolves them.
type Alertmanager struct {
	cfg     Config
	targets []target
	client  *http.Client
	log     *zap.Logger
	now     func() time.Time

	mu     sync.Mutex
	alerts map[string]*tracked // by labels key
}

var _ notify.Notifier = (*Alertmanager)(nil)

// target is one Alertmanager.
type target struct {
	post     string // Path under the base URL, with user info
	redacted string // the base URL without user info, for errors and logs
}

// tracked is an alert Run re-sends.
type tracked struct {
	incident string
	since    time.Time
	alert    PostableAlert // endsAt is set when sent, for an active alert
	resolved time.Time     // zero while active
}

// PostableAlert is one alert of a POST /api/v2/alerts body (postableAlert
// in Alertmanager's API v2 OpenAPI specification): labels identify it,
// annotations are informational and always replaced by the latest ones,
// startsAt is when it began and endsAt when it ends or, for an active
// alert, when Alertmanager will take it as resolved unless it is sent
// again.
type PostableAlert struct {
	Labels       map[string]string `json:"labels"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	StartsAt     time.Time         `json:"startsAt,omitzero"`
	EndsAt       time.Time         `json:"endsAt,omitzero"`
	GeneratorURL string            `json:"generatorURL,omitempty"`
}

// New returns an Alertmanager notifier for cfg, logging to log. It returns
// an error, naming every problem, when cfg is invalid: no name, no URL, a
// URL that is not an absolute http(s) URL, a negative duration, an invalid
// or reserved extra label, an invalid GeneratorURL.
func New(cfg Config, log *zap.Logger) (*Alertmanager, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name is empty"))
	}
	if len(cfg.URLs) == 0 {
		errs = append(errs, errors.New("no Alertmanager URL"))
	}
	var targets []target
	for i, raw := range cfg.URLs {
		t, err := parseTarget(raw)
		if err != nil {
			errs = append(errs, fmt.Errorf("url %d: %w", i+1, err))
			continue
		}
		targets = append(targets, t)
	}
	for name, d := range map[string]*time.Duration{
		"resend interval":     &cfg.ResendInterval,
		"resolved resend for": &cfg.ResolvedResendFor,
		"timeout":             &cfg.Timeout,
	} {
		if *d < 0 {
			errs = append(errs, fmt.Errorf("%s %s is negative", name, *d))
		}
	}
	if cfg.ResendInterval == 0 {
		cfg.ResendInterval = DefaultResendInterval
	}
	if cfg.ResolvedResendFor == 0 {
		cfg.ResolvedResendFor = DefaultResolvedResendFor
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Severity == "" {
		cfg.Severity = DefaultSeverity
	}
	if !utf8.ValidString(cfg.Severity) {
		errs = append(errs, errors.New("severity is not valid UTF-8"))
	}
	extra := make(map[string]string, len(cfg.ExtraLabels))
	for _, name := range slices.Sorted(maps.Keys(cfg.ExtraLabels)) {
		value := cfg.ExtraLabels[name]
		switch {
		case !labelName.MatchString(name) || strings.HasPrefix(name, "__"):
			errs = append(errs, fmt.Errorf("extra label %q: invalid label name", name))
		case slices.Contains(ownLabels, name):
			errs = append(errs, fmt.Errorf("extra label %q: set by medic", name))
		case value == "" || !utf8.ValidString(value):
			errs = append(errs, fmt.Errorf("extra label %q: value is empty or not UTF-8", name))
		default:
			extra[name] = value
		}
	}
	cfg.ExtraLabels = extra
	if cfg.GeneratorURL != "" {
		if u, err := url.Parse(cfg.GeneratorURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, errors.New("generator URL is not an absolute http or https URL"))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("alertmanager notifier %q: %w", cfg.Name, err)
	}
	// A redirect is not followed: net/http would turn the POST into a GET
	// and drop the alerts; the 3xx is an answer httpsend classifies.
	client := httpsend.NoRedirects(cfg.Client)
	return &Alertmanager{
		cfg:     cfg,
		targets: targets,
		client:  client,
		log:     log.With(zap.String("notifier", cfg.Name)),
		now:     time.Now,
		alerts:  make(map[string]*tracked),
	}, nil
}

// parseTarget checks an Alertmanager base URL. Its error never contains
// the URL's password.
func parseTarget(raw string) (target, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return target{}, errors.New("not a URL")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return target{}, fmt.Errorf("%s: scheme is not http or https", redactURL(u))
	}
	if u.Host == "" {
		return target{}, fmt.Errorf("%s: no host", redactURL(u))
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return target{}, fmt.Errorf("%s: has a query or fragment", redactURL(u))
	}
	post := *u
	post.Path = strings.TrimRight(u.Path, "/") + Path
	post.RawPath = ""
	return target{post: post.String(), redacted: redactURL(u)}, nil
}

// redactURL returns u fit for errors and logs: user info and query values
// masked (redact.URL).
func redactURL(u *url.URL) string { return redact.URL(u, false) }

// Name returns the notifier's name.
func (a *Alertmanager) Name() string { return a.cfg.Name }

// Notify posts m's alert to every Alertmanager at once and records it for
// Run to re-send:
//   - firing and reminder: the incident's alert, active, with startsAt the
//     incident's first failure and endsAt 4×ResendInterval from now; Run
//     re-sends it until a resolved message of the incident comes;
//   - resolved and recovered: the same alert (same labels) with endsAt the
//     incident's ResolvedAt; Run re-sends it for ResolvedResendFor;
//   - test: an alert with alertname "MedicTest", sent once, which ends by
//     itself 4×ResendInterval later;
//   - digest: the alerts of its members, each as above, in one request.
//     Alertmanager groups alerts itself (group_by, group_wait), so medic's
//     configuration gives alertmanager notifiers no digest window; Notify
//     takes a digest apart all the same.
//
// A message older than the alert already recorded for its labels (of an
// earlier incident of the same check, or a firing or reminder message of
// an incident already resolved, e.g. retried late by the outbox) is not
// sent: it would overwrite the newer state in Alertmanager. Notify then
// returns (false, nil).
//
// Notify returns nil when at least one Alertmanager accepted the alert;
// the errors of the others are logged, and Run's next re-send reaches them.
// When none accepted it, the error joins every Alertmanager's error, each
// naming its URL (without user info), and retry is true when any of them
// may pass later: a connection error, a timeout, HTTP 5xx, 429 or 408. An
// HTTP 4xx (400: Alertmanager rejected the alert as invalid) gives
// retry=false. An error may wrap *notify.RetryAfterError from a
// Retry-After header. Alerts are identified by their labels, so a repeated
// Notify of the same m is a duplicate Alertmanager merges.
func (a *Alertmanager) Notify(ctx context.Context, m *notify.Message) (retry bool, err error) {
	now := a.now()
	members := []*notify.Message{m}
	if m.Kind == notify.Digest {
		members = m.Digest
	}
	var alerts []PostableAlert
	for _, m := range members {
		alert, ok, err := a.alertOf(m, now)
		if err != nil {
			return false, err
		}
		if ok {
			alerts = append(alerts, alert)
		}
	}
	if len(alerts) == 0 {
		return false, nil
	}
	return a.post(ctx, alerts)
}

// alertOf returns the alert to post for m, and records it for Run; ok is
// false when there is nothing to post (m is older than what was recorded).
func (a *Alertmanager) alertOf(m *notify.Message, now time.Time) (alert PostableAlert, ok bool, err error) {
	switch m.Kind {
	case notify.Firing, notify.Reminder:
		alert = a.alertFor(m)
		if !a.track(m, alert, time.Time{}) {
			return alert, false, nil
		}
		alert.EndsAt = now.Add(a.expiry())
	case notify.Resolved, notify.Recovered:
		alert = a.alertFor(m)
		resolved := m.Incident.ResolvedAt
		if resolved.IsZero() {
			resolved = m.At
		}
		if resolved.IsZero() {
			resolved = now
		}
		alert.EndsAt = resolved.UTC()
		if !a.track(m, alert, resolved) {
			return alert, false, nil
		}
	case notify.Test:
		alert = a.testAlertFor(m, now)
	default:
		return alert, false, fmt.Errorf("notify %s: unknown message kind %q", m.ID, m.Kind)
	}
	return alert, true, nil
}

// expiry is how long after it was sent an active alert stays active in
// Alertmanager: 4×ResendInterval, as Prometheus sets endsAt (ValidUntil).
func (a *Alertmanager) expiry() time.Duration { return 4 * a.cfg.ResendInterval }

// track records alert for Run, resolved unless resolvedAt is zero. It
// returns false, recording nothing, when m is older than the alert already
// recorded for the same labels: of an earlier incident, or firing for an
// incident recorded as resolved.
func (a *Alertmanager) track(m *notify.Message, alert PostableAlert, resolvedAt time.Time) bool {
	key := labelsKey(alert.Labels)
	in := &m.Incident
	a.mu.Lock()
	defer a.mu.Unlock()
	if old, ok := a.alerts[key]; ok {
		if old.incident != in.ID && old.since.After(in.Since) {
			a.log.Debug("not sending a message of an earlier incident",
				zap.String(notify.IDField, m.ID), zap.String("incident", in.ID), zap.String("current_incident", old.incident))
			return false
		}
		if old.incident == in.ID && !old.resolved.IsZero() && resolvedAt.IsZero() {
			a.log.Debug("not sending a firing message of a resolved incident",
				zap.String(notify.IDField, m.ID), zap.String("incident", in.ID))
			return false
		}
	}
	a.alerts[key] = &tracked{incident: in.ID, since: in.Since, alert: alert, resolved: resolvedAt}
	return true
}

// labelsKey identifies an alert by its labels, as Alertmanager does.
func labelsKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[k]))
		b.WriteByte(',')
	}
	return b.String()
}

// labels returns the labels of an alert named alertname for in.
func (a *Alertmanager) labels(alertname string, in *notify.Incident) map[string]string {
	l := make(map[string]string, len(ownLabels)+len(a.cfg.ExtraLabels))
	for k, v := range a.cfg.ExtraLabels {
		l[k] = v
	}
	for k, v := range map[string]string{
		"alertname": alertname,
		"check":     in.Check,
		"unit":      in.Unit,
		"instance":  in.Host,
		"severity":  a.cfg.Severity,
	} {
		// An empty label value is the same as no label in Prometheus.
		if v = strings.ToValidUTF8(v, "\uFFFD"); v != "" {
			l[k] = v
		}
	}
	return l
}

// alertFor returns the incident alert for m, without endsAt.
func (a *Alertmanager) alertFor(m *notify.Message) PostableAlert {
	in := &m.Incident
	start := in.Since
	if start.IsZero() {
		start = m.At
	}
	return PostableAlert{
		Labels:       a.labels(AlertName, in),
		Annotations:  annotations(m),
		StartsAt:     start.UTC(),
		GeneratorURL: a.cfg.GeneratorURL,
	}
}

// testAlertFor returns the test alert for m, sent at now.
func (a *Alertmanager) testAlertFor(m *notify.Message, now time.Time) PostableAlert {
	return PostableAlert{
		Labels:       a.labels(TestAlertName, &m.Incident),
		Annotations:  annotations(m),
		StartsAt:     now.UTC(),
		EndsAt:       now.Add(a.expiry()).UTC(),
		GeneratorURL: a.cfg.GeneratorURL,
	}
}

// annotations returns the annotations of m's alert: summary (m's subject
// without "[medic] "), description (problem, cause, unit state, restarts
// and the latest timeline entries, one per line), incident (its ID), event
// and, when known, target and cause.
func annotations(m *notify.Message) map[string]string {
	in := &m.Incident
	ann := map[string]string{
		"summary":     strings.TrimPrefix(m.Subject(), "[medic] "),
		"description": description(m),
		"incident":    in.ID,
		"event":       string(m.Event),
	}
	if in.Target != "" {
		ann["target"] = notify.OneLine(in.Target)
	}
	if in.Cause != "" {
		ann["cause"] = notify.OneLine(in.Cause)
	}
	for k, v := range ann {
		ann[k] = strings.ToValidUTF8(v, "\uFFFD")
	}
	return ann
}

// description renders the description annotation: a few lines, each made
// of one-line fields, so text from the network cannot add lines.
func description(m *notify.Message) string {
	in := &m.Incident
	what := in.Unit
	if what == "" {
		what = in.Check
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s on %s: %s", notify.OneLine(what), notify.OneLine(in.Host), notify.OneLine(in.Problem))
	if in.Cause != "" {
		fmt.Fprintf(&b, "\nCause: %s", notify.OneLine(in.Cause))
	}
	if us := in.UnitState; us.ActiveState != "" {
		fmt.Fprintf(&b, "\nUnit: %s/%s", notify.OneLine(us.ActiveState), notify.OneLine(us.SubState))
		if us.Result != "" {
			fmt.Fprintf(&b, ", result %s", notify.OneLine(us.Result))
		}
	}
	fmt.Fprintf(&b, "\nRestarts by medic: %d", in.Restarts)
	tl := in.Timeline
	if len(tl) > 0 {
		b.WriteString("\nTimeline:")
		if len(tl) > maxTimeline {
			fmt.Fprintf(&b, " (last %d of %d)", maxTimeline, len(tl))
			tl = tl[len(tl)-maxTimeline:]
		}
		for _, e := range tl {
			fmt.Fprintf(&b, "\n%s %s", e.At.UTC().Format(time.RFC3339), notify.OneLine(e.What))
			if e.Detail != "" {
				fmt.Fprintf(&b, ": %s", notify.OneLine(e.Detail))
			}
		}
	}
	return b.String()
}

// Run re-sends the recorded alerts every ResendInterval until ctx ends:
// each active alert with endsAt 4×ResendInterval from then, each resolved
// alert with endsAt its resolve time until ResolvedResendFor has passed
// since then, after which it is forgotten. Failures are logged; the next
// re-send tries again. Run returns when ctx ends.
func (a *Alertmanager) Run(ctx context.Context) {
	t := time.NewTicker(a.cfg.ResendInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			a.resend(ctx)
		}
	}
}

// resend is one step of Run: it posts every recorded alert in one request
// per Alertmanager and forgets resolved alerts older than
// ResolvedResendFor. It returns the number of alerts posted.
func (a *Alertmanager) resend(ctx context.Context) int {
	now := a.now()
	a.mu.Lock()
	batch := make([]PostableAlert, 0, len(a.alerts))
	for key, t := range a.alerts {
		if !t.resolved.IsZero() {
			if now.Sub(t.resolved) > a.cfg.ResolvedResendFor {
				delete(a.alerts, key)
				continue
			}
			batch = append(batch, t.alert)
			continue
		}
		al := t.alert
		al.EndsAt = now.Add(a.expiry()).UTC()
		batch = append(batch, al)
	}
	a.mu.Unlock()
	if len(batch) == 0 {
		return 0
	}
	sort.Slice(batch, func(i, j int) bool { return labelsKey(batch[i].Labels) < labelsKey(batch[j].Labels) })
	if _, err := a.post(ctx, batch); err != nil && ctx.Err() == nil {
		a.log.Warn("re-send alerts", zap.Int("alerts", len(batch)), zap.Error(err))
	}
	return len(batch)
}

// post sends alerts to every Alertmanager concurrently. It succeeds when
// at least one accepted them; see Notify for its results.
func (a *Alertmanager) post(ctx context.Context, alerts []PostableAlert) (retry bool, err error) {
	body, err := json.Marshal(alerts)
	if err != nil {
		return false, fmt.Errorf("encode alerts: %w", err)
	}
	type result struct {
		retry bool
		err   error
	}
	results := make([]result, len(a.targets))
	var wg sync.WaitGroup
	for i, t := range a.targets {
		wg.Go(func() {
			r, err := a.postOne(ctx, t, body)
			results[i] = result{r, err}
		})
	}
	wg.Wait()

	var errs []error
	accepted := 0
	for _, r := range results {
		if r.err == nil {
			accepted++
			continue
		}
		errs = append(errs, r.err)
		retry = retry || r.retry
	}
	if accepted == 0 {
		return retry, errors.Join(errs...)
	}
	for _, err := range errs {
		a.log.Warn("an Alertmanager did not accept alerts; the others did", zap.Int("alerts", len(alerts)), zap.Error(err))
	}
	return false, nil
}

// postOne posts body to one Alertmanager.
func (a *Alertmanager) postOne(ctx context.Context, t target, body []byte) (retry bool, err error) {
	return httpsend.Send(ctx, a.client, httpsend.Request{
		Op:       "post alerts to",
		URL:      t.post,
		Redacted: t.redacted,
		Header:   http.Header{"Content-Type": {"application/json"}, "Accept": {"application/json"}},
		Body:     body,
		Timeout:  a.cfg.Timeout,
		Excerpt:  bodyText,
		Now:      a.now,
	})
}

// StatusError is an Alertmanager's answer other than 2xx. Alertmanager
// answers 400 with the reason when it rejects an alert as invalid, e.g.
// "post alerts to http://127.0.0.1:9093: 400 Bad Request: start time must
// be before end time".
type StatusError = httpsend.StatusError

// bodyText makes an error body printable, on one line. Alertmanager
// answers a rejected alert (400) with a JSON string, and a body that does
// not match its OpenAPI schema (422, e.g. a generatorURL that is not a
// URI) with {"code":601,"message":"..."}: the text is taken out of either.
func bodyText(b []byte) string {
	var s string
	var obj struct {
		Message string `json:"message"`
	}
	switch {
	case json.Unmarshal(b, &s) == nil:
	case json.Unmarshal(b, &obj) == nil && obj.Message != "":
		s = obj.Message
	default:
		s = string(b)
	}
	return strings.TrimSpace(notify.OneLine(strings.ToValidUTF8(s, "\uFFFD")))
}
