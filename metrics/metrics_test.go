package metrics

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"
)

func TestObserveProbe(t *testing.T) {
	m := New(Sources{})
	m.ObserveProbe("web", "0-tcp", true, 300*time.Microsecond)
	m.ObserveProbe("web", "1-http", false, 2*time.Second)
	m.ObserveProbe("web", "1-http", true, 40*time.Millisecond)

	const want = `
# HELP medic_probe_success Whether the last run of the probe passed (1) or failed (0).
# TYPE medic_probe_success gauge
medic_probe_success{check="web",probe="0-tcp"} 1
medic_probe_success{check="web",probe="1-http"} 1
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "medic_probe_success"); err != nil {
		t.Error(err)
	}
	m.ObserveProbe("web", "1-http", false, time.Second)
	if got := testutil.ToFloat64(m.probeSuccess.WithLabelValues("web", "1-http")); got != 0 {
		t.Errorf("medic_probe_success after a failure = %v, want 0", got)
	}

	const wantLast = `
# HELP medic_probe_last_duration_seconds How long the last run of the probe took, passed or failed.
# TYPE medic_probe_last_duration_seconds gauge
medic_probe_last_duration_seconds{check="web",probe="0-tcp"} 0.0003
medic_probe_last_duration_seconds{check="web",probe="1-http"} 1
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(wantLast), "medic_probe_last_duration_seconds"); err != nil {
		t.Error(err)
	}

	const wantHist = `
# HELP medic_probe_duration_seconds How long probe runs took, passed or failed, all checks' probes of a type together.
# TYPE medic_probe_duration_seconds histogram
medic_probe_duration_seconds_bucket{type="http",le="0.0001"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.00025"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.0005"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.001"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.0025"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.005"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.01"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.025"} 0
medic_probe_duration_seconds_bucket{type="http",le="0.05"} 1
medic_probe_duration_seconds_bucket{type="http",le="0.1"} 1
medic_probe_duration_seconds_bucket{type="http",le="0.25"} 1
medic_probe_duration_seconds_bucket{type="http",le="0.5"} 1
medic_probe_duration_seconds_bucket{type="http",le="1"} 2
medic_probe_duration_seconds_bucket{type="http",le="2.5"} 3
medic_probe_duration_seconds_bucket{type="http",le="5"} 3
medic_probe_duration_seconds_bucket{type="http",le="10"} 3
medic_probe_duration_seconds_bucket{type="http",le="+Inf"} 3
medic_probe_duration_seconds_sum{type="http"} 3.04
medic_probe_duration_seconds_count{type="http"} 3
medic_probe_duration_seconds_bucket{type="tcp",le="0.0001"} 0
medic_probe_duration_seconds_bucket{type="tcp",le="0.00025"} 0
medic_probe_duration_seconds_bucket{type="tcp",le="0.0005"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.001"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.0025"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.005"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.01"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.025"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.05"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.1"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.25"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="0.5"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="1"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="2.5"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="5"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="10"} 1
medic_probe_duration_seconds_bucket{type="tcp",le="+Inf"} 1
medic_probe_duration_seconds_sum{type="tcp"} 0.0003
medic_probe_duration_seconds_count{type="tcp"} 1
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(wantHist), "medic_probe_duration_seconds"); err != nil {
		t.Error(err)
	}
}

// TestForCheck checks that a CheckObserver records what Metrics.ObserveProbe
// records for the same probes, that an index outside the check's probes and
// a nil CheckObserver record nothing, and that ForgetCheck removes its
// series.
func TestForCheck(t *testing.T) {
	byHandle, byName := New(Sources{}), New(Sources{})
	o := byHandle.ForCheck("web", []string{"0-tcp", "1-http", "2-exploded by a bug"})
	runs := []struct {
		i  int
		ok bool
		d  time.Duration
	}{
		{0, true, 300 * time.Microsecond},
		{1, false, 2 * time.Second},
		{1, true, 40 * time.Millisecond},
		{2, true, time.Millisecond},
	}
	names := []string{"0-tcp", "1-http", "2-exploded by a bug"}
	for _, r := range runs {
		o.ObserveProbe(r.i, r.ok, r.d)
		byName.ObserveProbe("web", names[r.i], r.ok, r.d)
	}
	o.ObserveProbe(3, false, time.Second)  // outside: nothing
	o.ObserveProbe(-1, false, time.Second) // outside: nothing
	(*CheckObserver)(nil).ObserveProbe(0, false, time.Second)

	families := []string{"medic_probe_success", "medic_probe_last_duration_seconds", "medic_probe_duration_seconds"}
	want, err := byName.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text strings.Builder
	for _, mf := range want {
		if slices.Contains(families, mf.GetName()) {
			if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := testutil.GatherAndCompare(byHandle.reg, strings.NewReader(text.String()), families...); err != nil {
		t.Error(err)
	}
	if !strings.Contains(text.String(), `probe="other"`) || !strings.Contains(text.String(), `type="other"`) {
		t.Errorf("a probe name of another form is not recorded as other:\n%s", text.String())
	}

	byHandle.ForgetCheck("web")
	if n := testutil.CollectAndCount(byHandle.probeSuccess) + testutil.CollectAndCount(byHandle.probeLast); n != 0 {
		t.Errorf("%d per-probe series after ForgetCheck(web), want 0", n)
	}
}

func TestObserveRemedy(t *testing.T) {
	m := New(Sources{})
	m.ObserveRemedy("web", "web.service", "restart", "done")
	m.ObserveRemedy("web", "web.service", "restart", "done")
	m.ObserveRemedy("web", "web.service", "restart", "timeout")
	m.ObserveRemedy("db", "postgresql@15-main.service", "start", "error")
	// Values that must never become labels: an error text, a URL, a
	// made-up result, a check name that is not a name.
	m.ObserveRemedy("db", "postgresql@15-main.service", "start", `restart web.service: dial unix /run/dbus/system_bus_socket: connect: no such file`)
	m.ObserveRemedy("db", "postgresql@15-main.service", "start", "maintenance")
	m.ObserveRemedy("https://user:pw@example.com/x", "a/b.service", "restart now", "done")

	const want = `
# HELP medic_remediations_total Remedies medic carried out on a check's unit, by action and systemd job result.
# TYPE medic_remediations_total counter
medic_remediations_total{action="restart",check="web",result="done",unit="web.service"} 2
medic_remediations_total{action="restart",check="web",result="timeout",unit="web.service"} 1
medic_remediations_total{action="start",check="db",result="error",unit="postgresql@15-main.service"} 1
medic_remediations_total{action="start",check="db",result="other",unit="postgresql@15-main.service"} 2
medic_remediations_total{action="other",check="other",result="done",unit="other"} 1
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "medic_remediations_total"); err != nil {
		t.Error(err)
	}
}

func TestObserveReload(t *testing.T) {
	m := New(Sources{})
	names := []string{"medic_config_last_reload_successful", "medic_config_last_reload_success_timestamp_seconds"}
	if n, err := testutil.GatherAndCount(m.reg, names...); err != nil || n != 0 {
		t.Fatalf("before any reload: %d series, err %v; want none", n, err)
	}

	m.ObserveReload(true, time.Unix(1700000000, 500_000_000))
	m.ObserveReload(false, time.Unix(1700000100, 0))
	const want = `
# HELP medic_config_last_reload_successful Whether the last configuration load succeeded (1) or failed and the previous configuration stays in use (0).
# TYPE medic_config_last_reload_successful gauge
medic_config_last_reload_successful 0
# HELP medic_config_last_reload_success_timestamp_seconds When the last successful configuration load happened, in seconds since the Unix epoch.
# TYPE medic_config_last_reload_success_timestamp_seconds gauge
medic_config_last_reload_success_timestamp_seconds 1.7000000005e+09
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	m.ObserveReload(true, time.Unix(1700000200, 0))
	const want2 = `
# HELP medic_config_last_reload_successful Whether the last configuration load succeeded (1) or failed and the previous configuration stays in use (0).
# TYPE medic_config_last_reload_successful gauge
medic_config_last_reload_successful 1
# HELP medic_config_last_reload_success_timestamp_seconds When the last successful configuration load happened, in seconds since the Unix epoch.
# TYPE medic_config_last_reload_success_timestamp_seconds gauge
medic_config_last_reload_success_timestamp_seconds 1.7000002e+09
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want2), names...); err != nil {
		t.Error(err)
	}
}

func TestForgetCheck(t *testing.T) {
	m := New(Sources{})
	m.ObserveProbe("web", "0-tcp", true, time.Millisecond)
	m.ObserveProbe("db", "0-tcp", true, time.Millisecond)
	m.ObserveRemedy("web", "web.service", "restart", "done")
	m.ObserveRemedy("db", "db.service", "restart", "done")

	m.ForgetCheck("web")
	m.ForgetCheck("never-seen") // no-op

	for _, name := range []string{"medic_probe_success", "medic_probe_last_duration_seconds", "medic_remediations_total"} {
		mfs, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		var checks []string
		for _, mf := range mfs {
			if mf.GetName() != name {
				continue
			}
			for _, s := range mf.GetMetric() {
				for _, l := range s.GetLabel() {
					if l.GetName() == "check" {
						checks = append(checks, l.GetValue())
					}
				}
			}
		}
		if strings.Join(checks, ",") != "db" {
			t.Errorf("%s after ForgetCheck(web): checks %q, want only db", name, checks)
		}
	}
}

func TestSources(t *testing.T) {
	connected := true
	m := New(Sources{
		Checks: func() []CheckState {
			return []CheckState{
				{Check: "web", State: "healthy"},
				{Check: "db", State: "gave_up", IncidentOpen: true},
				{Check: "cache", State: "failing", IncidentOpen: true},
				{Check: "odd", State: "exploded: see http://x/y"},
				{Check: "web", State: "failing"}, // duplicate: skipped
			}
		},
		Outbox: func() []OutboxStat {
			return []OutboxStat{
				{Notifier: "mail", Pending: 3, Delivered: 10, Failed: 1, Dropped: 2},
				{Notifier: "hook", Pending: 0, Delivered: 5},
			}
		},
		DBusConnected: func() bool { return connected },
	})

	const want = `
# HELP medic_check_state The policy state of each check: 1 for its current state, 0 for the others.
# TYPE medic_check_state gauge
medic_check_state{check="web",state="healthy"} 1
medic_check_state{check="web",state="failing"} 0
medic_check_state{check="web",state="restarting"} 0
medic_check_state{check="web",state="verifying"} 0
medic_check_state{check="web",state="gave_up"} 0
medic_check_state{check="web",state="paused"} 0
medic_check_state{check="db",state="healthy"} 0
medic_check_state{check="db",state="failing"} 0
medic_check_state{check="db",state="restarting"} 0
medic_check_state{check="db",state="verifying"} 0
medic_check_state{check="db",state="gave_up"} 1
medic_check_state{check="db",state="paused"} 0
medic_check_state{check="cache",state="healthy"} 0
medic_check_state{check="cache",state="failing"} 1
medic_check_state{check="cache",state="restarting"} 0
medic_check_state{check="cache",state="verifying"} 0
medic_check_state{check="cache",state="gave_up"} 0
medic_check_state{check="cache",state="paused"} 0
medic_check_state{check="odd",state="healthy"} 0
medic_check_state{check="odd",state="failing"} 0
medic_check_state{check="odd",state="restarting"} 0
medic_check_state{check="odd",state="verifying"} 0
medic_check_state{check="odd",state="gave_up"} 0
medic_check_state{check="odd",state="paused"} 0
medic_check_state{check="odd",state="other"} 1
# HELP medic_incidents_open Number of checks with an open incident.
# TYPE medic_incidents_open gauge
medic_incidents_open 2
# HELP medic_outbox_pending Messages waiting in a notifier's outbox for delivery.
# TYPE medic_outbox_pending gauge
medic_outbox_pending{notifier="mail"} 3
medic_outbox_pending{notifier="hook"} 0
# HELP medic_notifications_total Messages handled by a notifier's outbox: delivered, failed for good, or dropped by the outbox bound.
# TYPE medic_notifications_total counter
medic_notifications_total{notifier="mail",result="delivered"} 10
medic_notifications_total{notifier="mail",result="failed"} 1
medic_notifications_total{notifier="mail",result="dropped"} 2
medic_notifications_total{notifier="hook",result="delivered"} 5
medic_notifications_total{notifier="hook",result="failed"} 0
medic_notifications_total{notifier="hook",result="dropped"} 0
# HELP medic_dbus_connected Whether medic is connected to the systemd manager over D-Bus (1) or not (0).
# TYPE medic_dbus_connected gauge
medic_dbus_connected 1
`
	names := []string{"medic_check_state", "medic_incidents_open", "medic_outbox_pending", "medic_notifications_total", "medic_dbus_connected"}
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}

	connected = false
	const want2 = `
# HELP medic_dbus_connected Whether medic is connected to the systemd manager over D-Bus (1) or not (0).
# TYPE medic_dbus_connected gauge
medic_dbus_connected 0
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want2), "medic_dbus_connected"); err != nil {
		t.Error(err)
	}
}

func TestNilSources(t *testing.T) {
	m := New(Sources{})
	names := []string{"medic_check_state", "medic_incidents_open", "medic_outbox_pending", "medic_notifications_total", "medic_dbus_connected"}
	n, err := testutil.GatherAndCount(m.reg, names...)
	if err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("nil sources gave %d series, want 0", n)
	}
}

func TestLabelSanitizing(t *testing.T) {
	tests := []struct {
		name, in, want string
		f              func(string) string
	}{
		{"check", "my-app.v2_x", "my-app.v2_x", checkLabel},
		{"check", "", "other", checkLabel},
		{"check", "a b", "other", checkLabel},
		{"check", strings.Repeat("x", 129), "other", checkLabel},
		{"probe", "0-tcp", "0-tcp", probeLabel},
		{"probe", "12-http", "12-http", probeLabel},
		{"probe", "http://127.0.0.1:8080/healthz", "other", probeLabel},
		{"probe", "tcp", "other", probeLabel},
		{"unit", "web.service", "web.service", unitLabel},
		{"unit", "getty@tty1.service", "getty@tty1.service", unitLabel},
		{"unit", `dev-disk-by\x2dlabel-root.device`, `dev-disk-by\x2dlabel-root.device`, unitLabel},
		{"unit", "", "", unitLabel},
		{"unit", "/etc/systemd/system/web.service", "other", unitLabel},
		{"action", "restart", "restart", actionLabel},
		{"action", "Restart!", "other", actionLabel},
	}
	for _, tt := range tests {
		if got := tt.f(tt.in); got != tt.want {
			t.Errorf("%s label of %q = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestObserveUpstreamError(t *testing.T) {
	m := New(Sources{})
	m.ObserveUpstreamError("127.0.0.1:8080", 111)
	m.ObserveUpstreamError("127.0.0.1:8080", 111)
	m.ObserveUpstreamError("unix:/run/app.sock", 13)
	m.ObserveUpstreamError(`http://evil "quoted"`, 2)
	for _, c := range []struct {
		upstream, errno string
		want            float64
	}{{"127.0.0.1:8080", "111", 2}, {"unix:/run/app.sock", "13", 1}, {"other", "2", 1}} {
		if got := testutil.ToFloat64(m.upstreamErrs.WithLabelValues(c.upstream, c.errno)); got != c.want {
			t.Errorf("upstream %s errno %s = %v, want %v", c.upstream, c.errno, got, c.want)
		}
	}
}

// TestUpstreamSeriesAreBounded feeds 100,000 distinct upstreams and
// errnos: the series stay within MaxUpstreamSeries (plus "other") times
// the known errnos (plus "other").
func TestUpstreamSeriesAreBounded(t *testing.T) {
	m := New(Sources{})
	for i := range 100_000 {
		m.ObserveUpstreamError(fmt.Sprintf("10.%d.%d.%d:80", i>>16, (i>>8)&255, i&255), i%1000)
	}
	n := testutil.CollectAndCount(m.upstreamErrs)
	if limit := (MaxUpstreamSeries + 1) * (len(KnownErrnos) + 1); n > limit {
		t.Errorf("%d series, want at most %d", n, limit)
	}
	if got := testutil.ToFloat64(m.upstreamErrs.WithLabelValues("other", "other")); got == 0 {
		t.Error("nothing counted as upstream other, errno other")
	}
	if got := testutil.ToFloat64(m.upstreamErrs.WithLabelValues("10.0.0.1:80", "1")); got != 0 {
		t.Errorf("an unknown errno got its own series")
	}
	t.Logf("%d series after 100,000 distinct upstreams", n)
}
