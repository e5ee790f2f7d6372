package alertmanager

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/amtest"
	"github.com/medic-watchdog/medic/notify"
)

// TestRealClusterPeerKilled runs medic's notifier against a real cluster of
// two Alertmanager peers (gossip on loopback) sharing one receiver, as a
// fleet runs it: medic posts every alert to both peers and keeps
// re-sending it (Run). An incident fires; the peer that notified it is
// killed with SIGKILL while the incident is open; the incident resolves.
// The receiver must get exactly one firing notification (the other peer
// found it in the gossiped notification log and kept quiet, re-sends
// included) and exactly one resolved one, from the surviving peer.
func TestRealClusterPeerKilled(t *testing.T) {
	c := amtest.StartCluster(t, 2)
	recv := c.Receiver()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := newAM(t, Config{URLs: c.URLs(), ResendInterval: time.Second, ResolvedResendFor: time.Minute})
	runCtx, stopRun := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { a.Run(runCtx); close(done) }()
	defer func() { stopRun(); <-done }()

	ours := func(status string) func(amtest.WebhookAlert) bool {
		return func(w amtest.WebhookAlert) bool {
			return w.Status == status && w.Labels["alertname"] == AlertName && w.Labels["check"] == "my-app"
		}
	}
	// quiet is how long a duplicate would take to come: the second peer
	// sends PeerTimeout after the first, at its next group flush.
	quiet := amtest.PeerTimeout + 2*amtest.GroupInterval

	start := time.Now().UTC().Add(-time.Minute).Truncate(time.Millisecond)
	if retry, err := a.Notify(ctx, fresh(notify.Firing, notify.GaveUp, start)); err != nil {
		t.Fatalf("Notify firing = %v, %v", retry, err)
	}
	for _, p := range c.Peers {
		if _, err := p.WaitAlert(ctx, func(al amtest.Alert) bool { return al.Status.State == "active" }, checkFilter); err != nil {
			t.Fatalf("peer %s did not get the alert: %v", p.URL(), err)
		}
	}
	n, _, err := recv.Wait(ctx, ours("firing"))
	if err != nil {
		t.Fatal(err)
	}
	sender := c.Sender(n)
	if sender == nil {
		t.Fatalf("firing notification from %q, not a peer of %v", n.ExternalURL, c.URLs())
	}
	time.Sleep(quiet)
	if got := recv.Count(ours("firing")); got != 1 {
		t.Fatalf("%d firing notifications before a peer was killed, want 1: %+v", got, recv.Notifications())
	}

	// The peer that notified dies mid-incident; the survivor knows from
	// the gossiped log that the firing went out.
	t.Logf("killing peer %s (PID %d), which sent the firing notification", sender.URL(), sender.PID())
	sender.Kill()
	survivor := c.Peers[0]
	if survivor == sender {
		survivor = c.Peers[1]
	}
	// A re-send or two reaches only the survivor.
	time.Sleep(2 * time.Second)

	res := fresh(notify.Resolved, notify.EventResolved, start)
	if retry, err := a.Notify(ctx, res); err != nil {
		t.Fatalf("Notify resolved with one peer down = %v, %v; want nil (the survivor accepted it)", retry, err)
	}
	rn, w, err := recv.Wait(ctx, ours("resolved"))
	if err != nil {
		t.Fatal(err)
	}
	if !survivor.Sent(rn) {
		t.Errorf("resolved notification from %q, want the survivor %s", rn.ExternalURL, survivor.URL())
	}
	if !w.StartsAt.Equal(start) || !w.EndsAt.Equal(res.Incident.ResolvedAt) {
		t.Errorf("resolved alert startsAt %s endsAt %s, want %s and %s", w.StartsAt, w.EndsAt, start, res.Incident.ResolvedAt)
	}
	time.Sleep(quiet)

	var got []string
	for _, n := range recv.Notifications() {
		for _, w := range n.Alerts {
			if w.Labels["check"] == "my-app" {
				got = append(got, w.Status+" from "+n.ExternalURL)
			}
		}
	}
	if firing, resolved := recv.Count(ours("firing")), recv.Count(ours("resolved")); firing != 1 || resolved != 1 {
		t.Errorf("receiver got %d firing and %d resolved notifications, want 1 and 1: %v", firing, resolved, got)
	}
	if slices.ContainsFunc(recv.Notifications(), func(n amtest.Notification) bool { return c.Sender(n) == nil }) {
		t.Errorf("a notification from none of the peers: %v", got)
	}
	t.Logf("receiver got: %v", got)
}
