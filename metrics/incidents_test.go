package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestObserveIncident counts incidents by outcome and observes the time
// to recovery of resolved ones only, per check; ForgetCheck drops both.
func TestObserveIncident(t *testing.T) {
	m := New(Sources{})
	m.ObserveIncident("web", "resolved", 1500*time.Millisecond)
	m.ObserveIncident("web", "gave_up", 0)
	m.ObserveIncident("web", "resolved", 20*time.Minute)
	m.ObserveIncident("db", "bogus", time.Second)

	const want = `
# HELP medic_incidents_total Incidents that ended, per check: outcome resolved when the check was healthy again, gave_up each time medic gave up (such an incident counts as resolved too once it is).
# TYPE medic_incidents_total counter
medic_incidents_total{check="db",outcome="other"} 1
medic_incidents_total{check="web",outcome="gave_up"} 1
medic_incidents_total{check="web",outcome="resolved"} 2
# HELP medic_time_to_recovery_seconds Time from the first failed probe of an incident to the check healthy again, per check.
# TYPE medic_time_to_recovery_seconds histogram
medic_time_to_recovery_seconds_bucket{check="web",le="0.1"} 0
medic_time_to_recovery_seconds_bucket{check="web",le="0.5"} 0
medic_time_to_recovery_seconds_bucket{check="web",le="1"} 0
medic_time_to_recovery_seconds_bucket{check="web",le="2"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="5"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="10"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="30"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="60"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="300"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="900"} 1
medic_time_to_recovery_seconds_bucket{check="web",le="3600"} 2
medic_time_to_recovery_seconds_bucket{check="web",le="+Inf"} 2
medic_time_to_recovery_seconds_sum{check="web"} 1201.5
medic_time_to_recovery_seconds_count{check="web"} 2
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "medic_incidents_total", "medic_time_to_recovery_seconds"); err != nil {
		t.Error(err)
	}
	m.ForgetCheck("web")
	if n := testutil.CollectAndCount(m.ttr) + testutil.CollectAndCount(m.incidents); n != 1 {
		t.Errorf("%d series after ForgetCheck(web), want db's counter alone", n)
	}
}
