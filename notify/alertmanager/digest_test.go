package alertmanager

import (
	"context"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

// A digest is taken apart: its members' alerts, each as on its own, in one
// request.
func TestDigestPostsMembers(t *testing.T) {
	r := &recorder{}
	a := newAM(t, Config{URLs: []string{fake(t, r)}, ResendInterval: time.Minute})
	a.now = func() time.Time { return since.Add(time.Minute) }
	firing := message(notify.Firing, notify.VerifyFailed)
	other := message(notify.Firing, notify.GaveUp)
	other.ID, other.Incident.ID, other.Incident.Check, other.Incident.Unit = "worker-1.1", "worker-1", "worker", "worker.service"
	if retry, err := a.Notify(context.Background(), notify.NewDigest([]*notify.Message{firing, other})); err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.posts) != 1 || len(r.posts[0]) != 2 {
		t.Fatalf("posts = %v, want one request with 2 alerts", r.posts)
	}
	for i, want := range []string{"my-app.service", "worker.service"} {
		labels, _ := r.posts[0][i]["labels"].(map[string]any)
		if labels["unit"] != want {
			t.Errorf("alert %d labels = %v, want unit %s", i, labels, want)
		}
	}
}
