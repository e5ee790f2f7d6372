package outbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/outbox"
	"github.com/medic-watchdog/medic/notify/webhook"
)

// TestWebhookRetriedUntilAccepted runs the outbox with the real webhook
// notifier against an endpoint that answers 500 twice, then 200: the
// receiver accepts the message exactly once, and every attempt carries the
// same webhook-id.
func TestWebhookRetriedUntilAccepted(t *testing.T) {
	var (
		mu       sync.Mutex
		ids      []string
		accepted int
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.Header.Get("webhook-id"))
		if len(ids) <= 2 {
			http.Error(w, "database is down", http.StatusInternalServerError)
			return
		}
		accepted++
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()

	wh, err := webhook.New(webhook.Config{Name: "hook", URL: srv.URL, Secret: []byte("0123456789abcdef0123456789"), Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.Open(outbox.Options{Dir: t.TempDir(), Backoff: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond}, []notify.Notifier{wh})
	if err != nil {
		t.Fatal(err)
	}
	m := &notify.Message{ID: "my-app-20261121T080000.000Z.1", Kind: notify.Firing, Event: notify.VerifyFailed, At: time.Now(),
		Incident: notify.Incident{ID: "my-app-20261121T080000.000Z", Check: "my-app", Unit: "my-app.service", Since: time.Now()}}
	if err := ob.Enqueue("hook", m); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ob.Run(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := ob.Stats()[0]
		if st.Delivered == 1 && st.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not delivered within 10s: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // room for a wrong extra attempt
	cancel()
	<-done

	mu.Lock()
	defer mu.Unlock()
	if accepted != 1 || len(ids) != 3 {
		t.Errorf("receiver saw %d attempts and accepted %d, want 3 attempts and 1 accepted", len(ids), accepted)
	}
	for _, id := range ids {
		if id != m.ID {
			t.Errorf("webhook-id %q, want %q on every attempt", id, m.ID)
		}
	}
}

// TestWebhookDigest runs the outbox with the real webhook notifier and a
// digest window: 20 messages enqueued at once reach the receiver as one
// POST of type "digest" holding the 20 in order; the receiver answers 503
// once, and the retry carries the same webhook-id and body.
func TestWebhookDigest(t *testing.T) {
	var (
		mu     sync.Mutex
		ids    []string
		bodies [][]byte
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		ids = append(ids, r.Header.Get("webhook-id"))
		bodies = append(bodies, b)
		if len(ids) == 1 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	wh, err := webhook.New(webhook.Config{Name: "hook", URL: srv.URL, Format: "json"})
	if err != nil {
		t.Fatal(err)
	}
	ob, err := outbox.Open(outbox.Options{Dir: t.TempDir(), Backoff: 20 * time.Millisecond, BackoffMax: 50 * time.Millisecond},
		[]notify.Notifier{notify.WithDigest(wh, 50*time.Millisecond)})
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i := range 20 {
		in := fmt.Sprintf("app%02d-20261121T080000.000Z", i)
		m := &notify.Message{ID: in + ".1", Kind: notify.Firing, Event: notify.VerifyFailed, At: time.Now(),
			Incident: notify.Incident{ID: in, Check: "app", Unit: "app.service", Host: "web1", Since: time.Now()}}
		if err := ob.Enqueue("hook", m); err != nil {
			t.Fatal(err)
		}
		want = append(want, m.ID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ob.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}

	mu.Lock()
	defer mu.Unlock()
	if len(ids) != 2 || ids[0] != ids[1] || !strings.HasPrefix(ids[0], "digest-app00-20261121T080000.000Z.1+20-") {
		t.Errorf("webhook-ids %q, want one digest id, twice", ids)
	}
	if !bytes.Equal(bodies[0], bodies[1]) {
		t.Errorf("retried body differs")
	}
	var p webhook.DigestPayload
	if err := json.Unmarshal(bodies[1], &p); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range p.Messages {
		got = append(got, m.MessageID)
	}
	if p.Type != "digest" || p.MessageID != ids[0] || !slices.Equal(got, want) {
		t.Errorf("digest %s %s with %v, want the 20 in order", p.Type, p.MessageID, got)
	}
	if st := ob.Stats()[0]; st.Delivered != 20 || st.Pending != 0 {
		t.Errorf("Stats = %+v", st)
	}
}
