package amtest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"syscall"
	"testing"
	"time"
)

func post(t *testing.T, s *Server, body string) (int, string) {
	t.Helper()
	resp, err := http.Post(s.URL()+"/api/v2/alerts", "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatalf("post alerts: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// TestStart posts an alert by hand, reads it back, resolves it and sees the
// resolved notification, then stops the Alertmanager.
func TestStart(t *testing.T) {
	s := Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	start := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	alert := func(end time.Time) string {
		return fmt.Sprintf(`[{"labels":{"alertname":"AmtestProbe","check":"x"},"annotations":{"summary":"hi"},"startsAt":%q,"endsAt":%q}]`,
			start.Format(time.RFC3339), end.Format(time.RFC3339Nano))
	}
	if code, body := post(t, s, alert(time.Now().Add(time.Hour))); code != http.StatusOK {
		t.Fatalf("post firing alert: %d %s", code, body)
	}
	a, err := s.WaitAlert(ctx, func(a Alert) bool { return a.Status.State == "active" }, `alertname="AmtestProbe"`)
	if err != nil {
		t.Fatal(err)
	}
	if !a.StartsAt.Equal(start) || a.Annotations["summary"] != "hi" || a.Labels["check"] != "x" {
		t.Errorf("alert read back = %+v, want startsAt %s, summary hi, check x", a, start)
	}
	if _, err := s.WaitNotification(ctx, func(a WebhookAlert) bool {
		return a.Status == "firing" && a.Labels["alertname"] == "AmtestProbe"
	}); err != nil {
		t.Fatal(err)
	}

	if code, body := post(t, s, alert(time.Now().Add(-time.Second))); code != http.StatusOK {
		t.Fatalf("post resolved alert: %d %s", code, body)
	}
	if _, err := s.WaitNotification(ctx, func(a WebhookAlert) bool {
		return a.Status == "resolved" && a.Labels["alertname"] == "AmtestProbe"
	}); err != nil {
		t.Fatal(err)
	}
	alerts, err := s.Alerts(ctx, `alertname="AmtestProbe"`)
	if err != nil {
		t.Fatal(err)
	}
	if len(alerts) != 0 {
		t.Errorf("resolved alert still listed: %+v", alerts)
	}

	// An alert that ends before it starts is what a real Alertmanager
	// rejects with 400.
	if code, body := post(t, s, alert(start.Add(-time.Hour))); code != http.StatusBadRequest {
		t.Errorf("post alert ending before its start: %d %s, want 400", code, body)
	} else {
		t.Logf("400 body: %s", body)
	}

	pid := s.PID()
	s.Stop()
	s.Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("alertmanager PID %d still exists after Stop", pid)
	}
	if _, err := s.Alerts(ctx); err == nil {
		t.Error("Alerts after Stop: no error")
	}
}
