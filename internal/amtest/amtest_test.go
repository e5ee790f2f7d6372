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

// TestCluster forms a cluster of two peers, posts an alert to both by hand
// and sees one notification, from one peer, then kills that peer.
func TestCluster(t *testing.T) {
	t.Parallel()
	c := StartCluster(t, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	names := map[string]bool{}
	for _, p := range c.Peers {
		if p.ClusterAddr() == "" {
			t.Errorf("%s: no cluster address", p.URL())
		}
		st, err := p.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		names[st.Cluster.Name] = true
		var addrs []string
		for _, peer := range st.Cluster.Peers {
			addrs = append(addrs, peer.Address)
		}
		t.Logf("%s: cluster %s, peers %v", p.URL(), st.Cluster.Status, addrs)
	}
	if len(names) != 2 {
		t.Errorf("peer names %v, want two different ones", names)
	}

	start := time.Now().UTC().Truncate(time.Second).Add(-time.Minute)
	body := fmt.Sprintf(`[{"labels":{"alertname":"AmtestCluster"},"startsAt":%q,"endsAt":%q}]`,
		start.Format(time.RFC3339), time.Now().Add(time.Hour).Format(time.RFC3339))
	for _, p := range c.Peers {
		if code, b := post(t, p, body); code != http.StatusOK {
			t.Fatalf("post to %s: %d %s", p.URL(), code, b)
		}
	}
	firing := func(a WebhookAlert) bool { return a.Status == "firing" && a.Labels["alertname"] == "AmtestCluster" }
	n, _, err := c.Receiver().Wait(ctx, firing)
	if err != nil {
		t.Fatal(err)
	}
	sender := c.Sender(n)
	if sender == nil {
		t.Fatalf("notification from %q, none of %v", n.ExternalURL, c.URLs())
	}
	// The other peer waits PeerTimeout, then finds the notification in
	// the gossiped log and sends nothing.
	time.Sleep(PeerTimeout + 2*GroupInterval)
	if got := c.Receiver().Count(firing); got != 1 {
		t.Errorf("%d firing notifications from a cluster of two, want 1: %+v", got, c.Receiver().Notifications())
	}

	sender.Kill()
	if sender.Running() {
		t.Error("killed peer still running")
	}
	for _, p := range c.Peers {
		if p != sender && !p.Running() {
			t.Errorf("peer %s stopped with the other", p.URL())
		}
	}
}
