// Package metrics exposes medic's Prometheus metrics.
//
// A [Metrics] holds a private registry with the Go runtime, process and
// build-info collectors and medic's own metrics. The agent reports events
// (probe results, remedies, config reloads) through the Observe methods; the
// state medic already keeps elsewhere (check states, outbox counts, the D-Bus
// connection) is read from [Sources] at scrape time, so it is never copied.
//
// Label values come only from medic's configuration and from small fixed
// sets: never an error string or a URL. A value outside its expected form is
// replaced by "other" so that a bug cannot blow up the series count or leak
// a secret into a label.
package metrics

import (
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/medic-watchdog/medic/probe"
)

const namespace = "medic"

// other replaces a label value outside its expected form or set.
const other = "other"

// states are the values of medic_check_state's state label, in the order
// they are exposed. A check's current state outside this set is exposed as
// state="other".
var states = []string{"healthy", "failing", "restarting", "verifying", "gave_up", "paused"}

// results are the values of medic_remediations_total's result label: the
// systemd job results, and "error" when the job could not be queued or its
// result not read. Any other value is counted as "other".
var results = []string{"done", "failed", "canceled", "timeout", "dependency", "skipped", "error"}

// notificationResults are the values of medic_notifications_total's result
// label.
var notificationResults = []string{"delivered", "failed", "dropped"}

// probeDurationBuckets are the upper bounds, in seconds, of
// medic_probe_duration_seconds: 100µs to 10s.
//
// That histogram is shared by every probe of a type (label type="tcp",
// "unix", "http"), not kept per check and probe: 19 series per probe (16
// buckets, +Inf, sum, count) would be 190,000 series at 10,000 checks, which
// medic would have to render at every scrape and Prometheus to store, for a
// distribution that matters across probes (how slow are backends, is the
// host loaded) more than per probe. What one probe took last is
// medic_probe_last_duration_seconds, one series per probe.
var probeDurationBuckets = []float64{
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
	0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// ttrBuckets are the upper bounds, in seconds, of
// medic_time_to_recovery_seconds: 100ms (a restart on systemd's word) to an
// hour (a human had to act).
var ttrBuckets = []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600}

// outcomes are the values of medic_incidents_total's outcome label.
var outcomes = []string{"resolved", "gave_up"}

// CheckState is the scrape-time view of one check.
type CheckState struct {
	// Check is the check's name.
	Check string
	// State is the check's policy state: "healthy", "failing",
	// "restarting", "verifying", "gave_up" or "paused"; any other value is
	// exposed as state="other".
	State string
	// IncidentOpen is whether the check has an open incident.
	IncidentOpen bool
}

// OutboxStat is the scrape-time view of one notifier's outbox.
type OutboxStat struct {
	// Notifier is the notifier's name.
	Notifier string
	// Pending is the number of messages waiting for delivery.
	Pending int
	// Delivered, Failed and Dropped are cumulative counts of the messages
	// the notifier accepted, rejected for good, and dropped by the outbox
	// bound. They are exposed as a counter, so they must not decrease
	// (except when medic restarts).
	Delivered, Failed, Dropped uint64
}

// Sources are the functions a scrape reads medic's current state from. Each
// may be nil, in which case its metrics are left out. They are called
// concurrently with the agent, once per scrape, and must be safe for that.
type Sources struct {
	// Checks gives medic_check_state and medic_incidents_open.
	Checks func() []CheckState
	// Outbox gives medic_outbox_pending and medic_notifications_total.
	Outbox func() []OutboxStat
	// DBusConnected gives medic_dbus_connected.
	DBusConnected func() bool
}

// Metrics is medic's metrics registry. Its methods are safe for concurrent
// use.
type Metrics struct {
	reg *prometheus.Registry

	probeSuccess  *prometheus.GaugeVec
	probeLast     *prometheus.GaugeVec
	probeDuration *prometheus.HistogramVec
	remediations  *prometheus.CounterVec
	upstreamErrs  *prometheus.CounterVec
	lateness      prometheus.Histogram
	ttr           *prometheus.HistogramVec
	incidents     *prometheus.CounterVec

	// upstreamMu guards upstreams, the upstream label values in use.
	upstreamMu sync.Mutex
	upstreams  map[string]bool

	reload *reloadCollector
}

// New returns a Metrics whose registry holds the Go, process and build-info
// collectors, the event metrics fed by the Observe methods, and a collector
// that reads src at every scrape.
func New(src Sources) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		probeSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "probe_success",
			Help:      "Whether the last run of the probe passed (1) or failed (0).",
		}, []string{"check", "probe"}),
		probeLast: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "probe_last_duration_seconds",
			Help:      "How long the last run of the probe took, passed or failed.",
		}, []string{"check", "probe"}),
		probeDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "probe_duration_seconds",
			Help:      "How long probe runs took, passed or failed, all checks' probes of a type together.",
			Buckets:   probeDurationBuckets,
		}, []string{"type"}),
		remediations: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "remediations_total",
			Help:      "Remedies medic carried out on a check's unit, by action and systemd job result.",
		}, []string{"check", "unit", "action", "result"}),
		upstreamErrs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "nginx_upstream_errors_total",
			Help:      "Upstream errors read from nginx error logs, by upstream address a check probes (\"other\" for the rest) and errno (0 for no live upstreams, \"other\" for an errno medic does not know).",
		}, []string{"upstream", "errno"}),
		lateness: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "probe_lateness_seconds",
			Help:      "How late scheduled probe rounds started relative to their schedule, all checks together.",
			Buckets:   []float64{0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5},
		}),
		ttr: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "time_to_recovery_seconds",
			Help:      "Time from the first failed probe of an incident to the check healthy again, per check.",
			Buckets:   ttrBuckets,
		}, []string{"check"}),
		incidents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "incidents_total",
			Help:      "Incidents that ended, per check: outcome resolved when the check was healthy again, gave_up each time medic gave up (such an incident counts as resolved too once it is).",
		}, []string{"check", "outcome"}),
		reload:    newReloadCollector(),
		upstreams: map[string]bool{},
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		collectors.NewBuildInfoCollector(),
		m.probeSuccess,
		m.probeLast,
		m.probeDuration,
		m.remediations,
		m.upstreamErrs,
		m.lateness,
		m.ttr,
		m.incidents,
		m.reload,
		newSourceCollector(src),
	)
	return m
}

// ObserveLateness records how late a scheduled probe round started, in
// medic_probe_lateness_seconds (one histogram for all checks, so that ten
// thousand checks do not make ten thousand series).
func (m *Metrics) ObserveLateness(d time.Duration) { m.lateness.Observe(d.Seconds()) }

// ObserveIncident records an incident of check that ended: it counts it in
// medic_incidents_total under outcome ("resolved" or "gave_up"; another
// value is counted as "other") and, for a resolved one, observes ttr (the
// time from its first failed probe to the check healthy again) in
// medic_time_to_recovery_seconds. The histogram is kept per check (14
// series), made at a check's first resolved incident: checks that never
// had one cost nothing.
func (m *Metrics) ObserveIncident(check, outcome string, ttr time.Duration) {
	check, outcome = checkLabel(check), oneOf(outcome, outcomes)
	m.incidents.WithLabelValues(check, outcome).Inc()
	if outcome == "resolved" {
		m.ttr.WithLabelValues(check).Observe(ttr.Seconds())
	}
}

// ObserveUpstreamError counts one upstream error line of nginx's error log
// in medic_nginx_upstream_errors_total: upstream is the normalised address
// of an upstream a check probes ("127.0.0.1:8080", "[::1]:8080",
// "unix:/run/app.sock"), or "other" for every other upstream (the caller
// folds them: nginx's error log is written by the www-data user, and every
// distinct value would be a series); errno is nginx's errno, 0 for "no
// live upstreams".
//
// The label sets are bounded here too: an upstream of another form, and
// every upstream past the first MaxUpstreamSeries distinct ones, is
// counted as "other"; an errno outside KnownErrnos as "other".
func (m *Metrics) ObserveUpstreamError(upstream string, errno int) {
	m.upstreamErrs.WithLabelValues(m.upstreamLabel(upstream), errnoLabel(errno)).Inc()
}

// MaxUpstreamSeries bounds the distinct upstream label values of
// medic_nginx_upstream_errors_total, "other" aside.
const MaxUpstreamSeries = 256

// KnownErrnos are the errno label values of
// medic_nginx_upstream_errors_total: no live upstreams (0), ENOENT (2),
// EACCES (13), EPIPE (32), ECONNRESET (104), ETIMEDOUT (110),
// ECONNREFUSED (111), EHOSTDOWN (112), EHOSTUNREACH (113). Any other errno
// is counted as "other".
var KnownErrnos = []int{0, 2, 13, 32, 104, 110, 111, 112, 113}

// upstreamLabel is the label value of upstream: itself while it has the
// form of an address and the set of values in use is below its bound,
// else "other".
func (m *Metrics) upstreamLabel(upstream string) string {
	upstream = match(upstream, upstreamRE)
	if upstream == other {
		return other
	}
	m.upstreamMu.Lock()
	defer m.upstreamMu.Unlock()
	if m.upstreams[upstream] {
		return upstream
	}
	if len(m.upstreams) >= MaxUpstreamSeries {
		return other
	}
	m.upstreams[upstream] = true
	return upstream
}

func errnoLabel(errno int) string {
	for _, k := range KnownErrnos {
		if errno == k {
			return strconv.Itoa(errno)
		}
	}
	return other
}

// ObserveProbe records one run of a check's probe: medic_probe_success is
// set to 1 when ok and to 0 otherwise, medic_probe_last_duration_seconds to
// d, and d is observed in medic_probe_duration_seconds under the probe's
// type. probe names the probe by its index in the check and its type, like
// "0-tcp" or "1-http"; never pass its target or error. A probe value of
// another form is recorded as "other".
//
// ObserveProbe checks and looks up its labels at every call; a caller that
// records every probe of a check at every round should take the handles
// once with ForCheck.
func (m *Metrics) ObserveProbe(check, probe string, ok bool, d time.Duration) {
	check, probe = checkLabel(check), probeLabel(probe)
	m.probeSuccess.WithLabelValues(check, probe).Set(boolFloat(ok))
	m.probeLast.WithLabelValues(check, probe).Set(d.Seconds())
	m.probeDuration.WithLabelValues(typeLabel(probe)).Observe(d.Seconds())
}

// CheckObserver records the probe runs of one check through metric handles
// made once by ForCheck: an observation checks no label, builds no map and
// looks up no series. A nil *CheckObserver records nothing. Its methods are
// safe for concurrent use.
type CheckObserver struct {
	probes []probeHandles
}

// probeHandles are the series of one probe.
type probeHandles struct {
	success  prometheus.Gauge
	last     prometheus.Gauge
	duration prometheus.Observer
}

// ForCheck returns the metric handles of check's probes: probes[i] names
// probe i of the check as ObserveProbe's probe does ("0-tcp", "1-http"),
// and label values outside their form become "other" as they do there. The
// series are created at the first observation, not here.
//
// Take the handles once per check (and again when a reload changes the
// check's name or probes); ForgetCheck(check) deletes the series behind
// them, after which their observations are no longer exposed: take new
// handles rather than keep using old ones.
func (m *Metrics) ForCheck(check string, probes []string) *CheckObserver {
	check = checkLabel(check)
	o := &CheckObserver{probes: make([]probeHandles, len(probes))}
	for i, p := range probes {
		p = probeLabel(p)
		o.probes[i] = probeHandles{
			success:  m.probeSuccess.WithLabelValues(check, p),
			last:     m.probeLast.WithLabelValues(check, p),
			duration: m.probeDuration.WithLabelValues(typeLabel(p)),
		}
	}
	return o
}

// ObserveProbe records one run of probe i (the index into ForCheck's
// probes), as Metrics.ObserveProbe does: medic_probe_success set to 1 when
// ok and to 0 otherwise, medic_probe_last_duration_seconds to d, d observed
// in medic_probe_duration_seconds. An i outside probes records nothing.
func (o *CheckObserver) ObserveProbe(i int, ok bool, d time.Duration) {
	if o == nil || i < 0 || i >= len(o.probes) {
		return
	}
	h := &o.probes[i]
	h.success.Set(boolFloat(ok))
	h.last.Set(d.Seconds())
	h.duration.Observe(d.Seconds())
}

// ObserveRemedy counts one remedy in medic_remediations_total. action is the
// remedy action, like "restart" or "start"; result is the systemd job result
// ("done", "failed", "canceled", "timeout", "dependency", "skipped") or
// "error". Any other result, or an action or unit that is not a
// plain name, is counted as "other".
func (m *Metrics) ObserveRemedy(check, unit, action, result string) {
	m.remediations.With(prometheus.Labels{
		"check":  checkLabel(check),
		"unit":   unitLabel(unit),
		"action": actionLabel(action),
		"result": oneOf(result, results),
	}).Inc()
}

// ObserveReload records a configuration load: it sets
// medic_config_last_reload_successful to 1 when ok and to 0 otherwise, and
// when ok sets medic_config_last_reload_success_timestamp_seconds to at.
// Neither metric is exposed before the first call, so the agent should call
// it once the initial configuration is loaded.
func (m *Metrics) ObserveReload(ok bool, at time.Time) {
	m.reload.observe(ok, at)
}

// ForgetCheck deletes every series of check from the event metrics, for a
// check that a configuration reload removed. The scrape-time metrics follow
// [Sources] and need no forgetting.
func (m *Metrics) ForgetCheck(check string) {
	l := prometheus.Labels{"check": checkLabel(check)}
	m.probeSuccess.DeletePartialMatch(l)
	m.probeLast.DeletePartialMatch(l)
	m.remediations.DeletePartialMatch(l)
	m.ttr.DeletePartialMatch(l)
	m.incidents.DeletePartialMatch(l)
}

// reloadCollector exposes the config reload metrics once a reload was
// observed; before that there is nothing truthful to say.
type reloadCollector struct {
	successful, timestamp *prometheus.Desc

	mu       sync.Mutex
	observed bool
	ok       bool
	lastOK   time.Time
}

func newReloadCollector() *reloadCollector {
	return &reloadCollector{
		successful: prometheus.NewDesc(namespace+"_config_last_reload_successful",
			"Whether the last configuration load succeeded (1) or failed and the previous configuration stays in use (0).", nil, nil),
		timestamp: prometheus.NewDesc(namespace+"_config_last_reload_success_timestamp_seconds",
			"When the last successful configuration load happened, in seconds since the Unix epoch.", nil, nil),
	}
}

func (c *reloadCollector) observe(ok bool, at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.observed, c.ok = true, ok
	if ok {
		c.lastOK = at
	}
}

// Describe implements prometheus.Collector.
func (c *reloadCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.successful
	ch <- c.timestamp
}

// Collect implements prometheus.Collector.
func (c *reloadCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	observed, ok, lastOK := c.observed, c.ok, c.lastOK
	c.mu.Unlock()
	if !observed {
		return
	}
	ch <- prometheus.MustNewConstMetric(c.successful, prometheus.GaugeValue, boolFloat(ok))
	if !lastOK.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.timestamp, prometheus.GaugeValue,
			float64(lastOK.UnixNano())/1e9)
	}
}

// sourceCollector reads Sources at scrape time.
type sourceCollector struct {
	src Sources

	checkState, incidentsOpen *prometheus.Desc
	outboxPending, notifs     *prometheus.Desc
	dbusConnected             *prometheus.Desc
}

func newSourceCollector(src Sources) *sourceCollector {
	return &sourceCollector{
		src: src,
		checkState: prometheus.NewDesc(namespace+"_check_state",
			"The policy state of each check: 1 for its current state, 0 for the others.",
			[]string{"check", "state"}, nil),
		incidentsOpen: prometheus.NewDesc(namespace+"_incidents_open",
			"Number of checks with an open incident.", nil, nil),
		outboxPending: prometheus.NewDesc(namespace+"_outbox_pending",
			"Messages waiting in a notifier's outbox for delivery.",
			[]string{"notifier"}, nil),
		notifs: prometheus.NewDesc(namespace+"_notifications_total",
			"Messages handled by a notifier's outbox: delivered, failed for good, or dropped by the outbox bound.",
			[]string{"notifier", "result"}, nil),
		dbusConnected: prometheus.NewDesc(namespace+"_dbus_connected",
			"Whether medic is connected to the systemd manager over D-Bus (1) or not (0).", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *sourceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.checkState
	ch <- c.incidentsOpen
	ch <- c.outboxPending
	ch <- c.notifs
	ch <- c.dbusConnected
}

// Collect implements prometheus.Collector. Entries whose name repeats one
// already seen in the same scrape are skipped: a registry refuses duplicate
// series.
func (c *sourceCollector) Collect(ch chan<- prometheus.Metric) {
	if c.src.Checks != nil {
		open := 0
		seen := map[string]bool{}
		for _, s := range c.src.Checks() {
			if s.IncidentOpen {
				open++
			}
			name := checkLabel(s.Check)
			if seen[name] {
				continue
			}
			seen[name] = true
			state := oneOf(s.State, states)
			for _, st := range states {
				ch <- prometheus.MustNewConstMetric(c.checkState, prometheus.GaugeValue, boolFloat(st == state), name, st)
			}
			if state == other {
				ch <- prometheus.MustNewConstMetric(c.checkState, prometheus.GaugeValue, 1, name, other)
			}
		}
		ch <- prometheus.MustNewConstMetric(c.incidentsOpen, prometheus.GaugeValue, float64(open))
	}
	if c.src.Outbox != nil {
		seen := map[string]bool{}
		for _, s := range c.src.Outbox() {
			name := checkLabel(s.Notifier)
			if seen[name] {
				continue
			}
			seen[name] = true
			ch <- prometheus.MustNewConstMetric(c.outboxPending, prometheus.GaugeValue, float64(s.Pending), name)
			for i, n := range []uint64{s.Delivered, s.Failed, s.Dropped} {
				ch <- prometheus.MustNewConstMetric(c.notifs, prometheus.CounterValue, float64(n), name, notificationResults[i])
			}
		}
	}
	if c.src.DBusConnected != nil {
		ch <- prometheus.MustNewConstMetric(c.dbusConnected, prometheus.GaugeValue, boolFloat(c.src.DBusConnected()))
	}
}

var (
	// nameRE is the form of check and notifier names (agent/config's nameRE),
	// bounded in length.
	nameRE = regexp.MustCompile(`^[A-Za-z0-9._-]{1,128}$`)
	// probeRE is "<index>-<type>".
	probeRE = regexp.MustCompile(`^[0-9]{1,4}-[a-z0-9_]{1,32}$`)
	// unitRE is the form of a systemd unit name (agent/config's unitCharsRE
	// plus '@' of template instances), bounded as systemd bounds it.
	unitRE = regexp.MustCompile(`^[A-Za-z0-9:_.@\\-]{1,256}$`)
	// actionRE is a lowercase word.
	actionRE = regexp.MustCompile(`^[a-z][a-z_-]{0,31}$`)
	// upstreamRE: a host:port, [v6]:port, unix:/path or group name.
	upstreamRE = regexp.MustCompile(`^[A-Za-z0-9._:/\[\]-]{1,200}$`)
)

func checkLabel(s string) string  { return match(s, nameRE) }
func probeLabel(s string) string  { return match(s, probeRE) }
func actionLabel(s string) string { return match(s, actionRE) }

// typeLabel is the type label of a probe label: "tcp" of "0-tcp", when it is
// a kind in probe.Kinds, else "other".
func typeLabel(probeLabel string) string {
	_, kind, ok := strings.Cut(probeLabel, "-")
	if _, known := probe.Kinds[probe.Type(kind)]; !ok || !known {
		return other
	}
	return kind
}

// unitLabel keeps an empty unit empty: a check without a unit.
func unitLabel(s string) string {
	if s == "" {
		return ""
	}
	return match(s, unitRE)
}

func match(s string, re *regexp.Regexp) string {
	if re.MatchString(s) {
		return s
	}
	return other
}

func oneOf(s string, set []string) string {
	for _, v := range set {
		if s == v {
			return s
		}
	}
	return other
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
