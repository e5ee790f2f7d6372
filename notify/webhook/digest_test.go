package webhook_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/webhook"
)

// testDigest groups two incidents behind one shared dependency: my-app
// firing (testMessage without its diagnosis and journal, to keep the
// example short) and worker resolved.
func testDigest() *notify.Message {
	a := testMessage()
	a.Incident.Diagnosis, a.Incident.Journal = nil, nil
	a.Incident.Timeline = a.Incident.Timeline[:1]
	b := testMessage()
	b.ID, b.Kind, b.Event = "worker-20261121T080001.000Z.2", notify.Resolved, notify.EventResolved
	b.Incident.ID, b.Incident.Check, b.Incident.Unit = "worker-20261121T080001.000Z", "worker", "worker.service"
	b.Incident.Target, b.Incident.Problem = "unix:/run/worker.sock", "unix:/run/worker.sock connection refused"
	b.Incident.Cause, b.Incident.Diagnosis, b.Incident.Journal = "", nil, nil
	b.Incident.Since = a.Incident.Since.Add(time.Second)
	b.Incident.ResolvedAt = b.Incident.Since.Add(90 * time.Second)
	b.At = b.Incident.ResolvedAt
	b.Incident.Timeline = []notify.Entry{
		{At: b.Incident.Since, What: "first failed probe", Detail: "dial unix /run/worker.sock: connect: connection refused"},
		{At: b.Incident.ResolvedAt, What: "resolved"},
	}
	b.Incident.UnitState = notify.UnitState{ActiveState: "active", SubState: "running", Result: "success", MainPID: 5151}
	return notify.NewDigest([]*notify.Message{a, b})
}

func TestDigestJSON(t *testing.T) {
	rc := newReceiver(t, http.StatusNoContent, nil, "")
	w := newWebhook(t, webhook.Config{URL: rc.URL, Secret: testSecret(t)})
	d := testDigest()
	for range 2 { // a retry after a lost answer
		if retry, err := w.Notify(context.Background(), d); err != nil || retry {
			t.Fatalf("Notify = %v, %v; want false, nil", retry, err)
		}
	}
	reqs := rc.requests()
	if len(reqs) != 2 {
		t.Fatalf("receiver got %d requests, want 2", len(reqs))
	}
	r := reqs[0]
	if err := verifySignature(testSecretKey(t), r.header, r.body, 5*time.Minute, time.Now()); err != nil {
		t.Errorf("verify signature: %v", err)
	}
	for i, r := range reqs {
		if got := r.header.Get("webhook-id"); got != d.ID {
			t.Errorf("request %d: webhook-id %q, want the digest's ID %q", i, got, d.ID)
		}
	}
	if !bytes.Equal(reqs[0].body, reqs[1].body) {
		t.Errorf("retried digest body differs:\n%s\n%s", reqs[0].body, reqs[1].body)
	}

	var p webhook.DigestPayload
	dec := json.NewDecoder(bytes.NewReader(r.body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("decode digest payload: %v\n%s", err, r.body)
	}
	if p.Version != "1" || p.Type != "digest" || p.MessageID != d.ID ||
		p.Summary != "DIGEST 2 incidents on web1: 1 firing, 1 resolved" || p.Medic != (webhook.Medic{Version: "1.2.3", Host: "web1"}) ||
		!p.Timestamp.Equal(d.Digest[1].At) {
		t.Errorf("digest payload = %+v", p)
	}
	if len(p.Messages) != 2 {
		t.Fatalf("%d messages, want 2", len(p.Messages))
	}
	// Each member is the payload it would have on its own.
	var raw struct {
		Messages []json.RawMessage `json:"messages"`
	}
	if err := json.Unmarshal(r.body, &raw); err != nil {
		t.Fatal(err)
	}
	for i, m := range d.Digest {
		want, err := json.Marshal(webhook.NewPayload(m))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(raw.Messages[i], want) {
			t.Errorf("member %d:\n got %s\nwant %s", i, raw.Messages[i], want)
		}
	}
	if p.Messages[0].MessageID != d.Digest[0].ID || p.Messages[1].Type != webhook.TypeResolved {
		t.Errorf("members = %+v, %+v", p.Messages[0], p.Messages[1])
	}
}

func TestDigestSlack(t *testing.T) {
	d := testDigest()
	d.Digest[0].Incident.Problem = "<!channel> & friends"
	p := webhook.NewSlackDigestPayload(d)
	if p.Text != "[medic] DIGEST 2 incidents on web1: 1 firing, 1 resolved" {
		t.Errorf("text %q", p.Text)
	}
	if len(p.Attachments) != 1 || p.Attachments[0].Color != "danger" {
		t.Fatalf("attachments %+v, want one, danger", p.Attachments)
	}
	lines := strings.Split(p.Attachments[0].Text, "\n")
	want := []string{
		"*FIRING* my-app.service: &lt;!channel&gt; &amp; friends (cause: backend crashed), since 2026-11-21T08:00:00Z",
		"*RESOLVED* worker.service: unix:/run/worker.sock connection refused, since 2026-11-21T08:00:01Z",
	}
	if !slices.Equal(lines, want) {
		t.Errorf("lines\n%q\nwant\n%q", lines, want)
	}
	d.Digest = d.Digest[1:]
	if c := webhook.NewSlackDigestPayload(d).Attachments[0].Color; c != "good" {
		t.Errorf("all resolved: color %q, want good", c)
	}
}

// TestExampleDigest keeps testdata/example-digest.json and
// example-digest-slack.json, the digest examples in docs/webhook.md, equal
// to what medic sends for testDigest (indented); go test -run
// TestExampleDigest -update rewrites them.
func TestExampleDigest(t *testing.T) {
	for format, file := range map[webhook.Format]string{
		"json":  "example-digest.json",
		"slack": "example-digest-slack.json",
	} {
		t.Run(string(format), func(t *testing.T) {
			rc := newReceiver(t, 200, nil, "")
			w := newWebhook(t, webhook.Config{URL: rc.URL, Secret: testSecret(t), Format: format})
			if _, err := w.Notify(context.Background(), testDigest()); err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			if err := json.Indent(&buf, rc.requests()[0].body, "", "  "); err != nil {
				t.Fatal(err)
			}
			buf.WriteByte('\n')
			path := filepath.Join("testdata", file)
			if *update {
				if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -run TestExampleDigest -update)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("payload differs from %s (run go test -run TestExampleDigest -update if intended):\n%s", path, buf.Bytes())
			}
		})
	}
}

// TestDocsShowDigestExamples: docs/webhook.md shows the current digest
// examples.
func TestDocsShowDigestExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "webhook.md"))
	if err != nil {
		t.Fatalf("read docs/webhook.md: %v", err)
	}
	for _, file := range []string{"example-digest.json", "example-digest-slack.json"} {
		example, err := os.ReadFile(filepath.Join("testdata", file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(doc, append([]byte("```json\n"), example...)) {
			t.Errorf("docs/webhook.md does not show testdata/%s; copy it in", file)
		}
	}
}
