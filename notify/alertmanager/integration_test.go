package alertmanager

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/amtest"
	"github.com/medic-watchdog/medic/notify"
)

// fresh returns message(kind, event) for an incident that began a minute
// ago, so Alertmanager takes it as current.
func fresh(kind notify.Kind, event notify.Event, start time.Time) *notify.Message {
	m := message(kind, event)
	m.Incident.Since = start
	m.At = start.Add(30 * time.Second)
	if !m.Incident.ResolvedAt.IsZero() {
		m.Incident.ResolvedAt = time.Now().UTC().Truncate(time.Millisecond)
		m.At = m.Incident.ResolvedAt
	}
	return m
}

const checkFilter = `alertname="MedicCheckFailing"`

// TestRealFiringThenResolved posts a firing incident to a real
// Alertmanager, reads it back active with its labels, annotations and
// startsAt, then resolves it: the alert leaves GET /api/v2/alerts and the
// Alertmanager notifies its receiver that it is resolved.
func TestRealFiringThenResolved(t *testing.T) {
	am := amtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newAM(t, Config{URLs: []string{am.URL()}, ExtraLabels: map[string]string{"team": "ops"}, GeneratorURL: "http://web1.example.com/medic"})
	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)

	before := time.Now()
	if retry, err := a.Notify(ctx, fresh(notify.Firing, notify.VerifyFailed, start)); err != nil {
		t.Fatalf("Notify firing = %v, %v", retry, err)
	}
	got, err := am.WaitAlert(ctx, func(al amtest.Alert) bool { return al.Status.State == "active" }, checkFilter, `check="my-app"`)
	if err != nil {
		t.Fatal(err)
	}
	wantLabels := map[string]string{"alertname": "MedicCheckFailing", "check": "my-app", "unit": "my-app.service",
		"instance": "web1", "severity": "critical", "team": "ops"}
	if !mapsEqual(got.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", got.Labels, wantLabels)
	}
	if !got.StartsAt.Equal(start) {
		t.Errorf("startsAt = %s, want %s", got.StartsAt, start)
	}
	if lo, hi := before.Add(4*time.Minute-time.Second), time.Now().Add(4*time.Minute+time.Second); got.EndsAt.Before(lo) || got.EndsAt.After(hi) {
		t.Errorf("endsAt = %s, want about now+4m", got.EndsAt)
	}
	if s := got.Annotations["summary"]; !strings.HasPrefix(s, "FIRING my-app.service on web1: 127.0.0.1:8080 connection refused") {
		t.Errorf("summary = %q", s)
	}
	if got.Annotations["incident"] != "my-app-20261121T080000.123Z" || got.Annotations["event"] != "verify_failed" ||
		!strings.Contains(got.Annotations["description"], "\nCause: backend crashed\n") {
		t.Errorf("annotations = %v", got.Annotations)
	}
	if got.GeneratorURL != "http://web1.example.com/medic" {
		t.Errorf("generatorURL = %q", got.GeneratorURL)
	}
	if _, err := am.WaitNotification(ctx, func(w amtest.WebhookAlert) bool {
		return w.Status == "firing" && w.Labels["check"] == "my-app"
	}); err != nil {
		t.Fatal(err)
	}

	res := fresh(notify.Resolved, notify.EventResolved, start)
	if retry, err := a.Notify(ctx, res); err != nil {
		t.Fatalf("Notify resolved = %v, %v", retry, err)
	}
	w, err := am.WaitNotification(ctx, func(w amtest.WebhookAlert) bool {
		return w.Status == "resolved" && w.Labels["check"] == "my-app"
	})
	if err != nil {
		t.Fatal(err)
	}
	if !w.EndsAt.Equal(res.Incident.ResolvedAt) || !w.StartsAt.Equal(start) {
		t.Errorf("resolved notification: startsAt %s endsAt %s, want %s and %s", w.StartsAt, w.EndsAt, start, res.Incident.ResolvedAt)
	}
	if !strings.HasPrefix(w.Annotations["summary"], "RESOLVED my-app.service") || w.Annotations["event"] != "resolved" {
		t.Errorf("resolved notification annotations = %v", w.Annotations)
	}
	alerts, err := am.Alerts(ctx, checkFilter)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 0 {
		t.Errorf("GET /api/v2/alerts still lists the resolved alert: %+v", alerts)
	}
}

// TestRealTwoAlertmanagers: every Alertmanager of a cluster gets the alert
// directly.
func TestRealTwoAlertmanagers(t *testing.T) {
	am1, am2 := amtest.Start(t), amtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newAM(t, Config{URLs: []string{am1.URL(), am2.URL()}})
	if retry, err := a.Notify(ctx, fresh(notify.Firing, notify.GaveUp, time.Now().Add(-time.Minute))); err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	for _, am := range []*amtest.Server{am1, am2} {
		if _, err := am.WaitAlert(ctx, func(al amtest.Alert) bool { return al.Labels["check"] == "my-app" }, checkFilter); err != nil {
			t.Errorf("%s: %v", am.URL(), err)
		}
	}

	// One of them down: the other still accepts, so Notify succeeds, and
	// Run's re-sends keep reaching the live one.
	am2.Stop()
	if retry, err := a.Notify(ctx, fresh(notify.Reminder, notify.GaveUp, time.Now().Add(-time.Minute))); err != nil {
		t.Errorf("Notify with one Alertmanager down = %v, %v; want nil", retry, err)
	}
}

// TestRealRunResends runs Run with a short ResendInterval against a real
// Alertmanager: the active alert's endsAt moves forward with each re-send.
func TestRealRunResends(t *testing.T) {
	am := amtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newAM(t, Config{URLs: []string{am.URL()}, ResendInterval: 200 * time.Millisecond, ResolvedResendFor: time.Second})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()

	if _, err := a.Notify(ctx, fresh(notify.Firing, notify.GaveUp, time.Now().Add(-time.Minute))); err != nil {
		t.Fatal(err)
	}
	first, err := am.WaitAlert(ctx, func(amtest.Alert) bool { return true }, checkFilter)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(first.EndsAt); d <= 0 || d > 800*time.Millisecond+time.Second {
		t.Errorf("endsAt %s is %s away, want about 4×200ms", first.EndsAt, d)
	}
	// Without Run the alert would expire 800ms after the Notify; it must
	// stay active well past that, its endsAt moving forward.
	time.Sleep(1500 * time.Millisecond)
	later, err := am.WaitAlert(ctx, func(al amtest.Alert) bool { return al.EndsAt.After(first.EndsAt) }, checkFilter)
	if err != nil {
		t.Fatal(err)
	}
	if later.Status.State != "active" || !later.StartsAt.Equal(first.StartsAt) {
		t.Errorf("re-sent alert = %+v, want active with the same startsAt %s", later, first.StartsAt)
	}
	t.Logf("endsAt moved from %s to %s", first.EndsAt.Format(time.RFC3339Nano), later.EndsAt.Format(time.RFC3339Nano))

	// Resolved: Run re-sends it for ResolvedResendFor, then forgets it.
	if _, err := a.Notify(ctx, fresh(notify.Resolved, notify.EventResolved, first.StartsAt)); err != nil {
		t.Fatal(err)
	}
	if _, err := am.WaitNotification(ctx, func(w amtest.WebhookAlert) bool { return w.Status == "resolved" }); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		a.mu.Lock()
		n := len(a.alerts)
		a.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Run still re-sends %d alerts 5s after a resolve with ResolvedResendFor 1s", n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestRealDownAndInvalid: a stopped Alertmanager's URL refuses connections
// (retry); an alert the real Alertmanager finds invalid — a resolve time
// before the incident's start — is rejected with 400 (no retry).
func TestRealDownAndInvalid(t *testing.T) {
	am := amtest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newAM(t, Config{URLs: []string{am.URL()}})

	bad := fresh(notify.Resolved, notify.EventResolved, time.Now().Add(-time.Minute))
	bad.Incident.ResolvedAt = bad.Incident.Since.Add(-time.Hour)
	retry, err := a.Notify(ctx, bad)
	var se *StatusError
	if err == nil || retry || !errors.As(err, &se) || se.StatusCode != 400 {
		t.Fatalf("Notify of an alert ending before it starts = %v, %v; want a 400 without retry", retry, err)
	}
	if want := "post alerts to " + am.URL() + ": 400 Bad Request: start time must be before end time"; err.Error() != want {
		t.Errorf("err = %q, want %q", err, want)
	}

	am.Stop()
	next := fresh(notify.Firing, notify.GaveUp, time.Now().Add(-time.Minute))
	next.Incident.ID = "my-app-next"
	retry, err = a.Notify(ctx, next)
	if err == nil || !retry {
		t.Fatalf("Notify to a stopped Alertmanager = %v, %v; want retry and an error", retry, err)
	}
	if !strings.HasPrefix(err.Error(), "post alerts to "+am.URL()+": ") || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("err = %v, want it to name %s", err, am.URL())
	}
}
