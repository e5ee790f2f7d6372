package notify

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
)

// members returns firing messages of n incidents, then resolved ones of
// resolved more.
func members(firing, resolved int) []*Message {
	var ms []*Message
	for i := range firing + resolved {
		k, ev := Firing, VerifyFailed
		if i >= firing {
			k, ev = Resolved, EventResolved
		}
		m := sampleMessage(k, ev)
		m.Incident.ID = fmt.Sprintf("app%02d-20261121T080000Z", i)
		m.ID = m.Incident.ID + ".1"
		m.At = m.At.Add(time.Duration(i) * time.Second)
		ms = append(ms, m)
	}
	return ms
}

// sharedIncident: two incidents, the first one firing and resolved.
func sharedIncident() []*Message {
	ms := members(2, 0)
	r := sampleMessage(Resolved, EventResolved)
	r.Incident.ID, r.ID = ms[0].Incident.ID, ms[0].Incident.ID+".2"
	return append(ms, r)
}

func TestDigestSubject(t *testing.T) {
	tests := []struct {
		name string
		ms   []*Message
		want string
	}{
		{"20 at once", members(18, 2), "[medic] DIGEST 20 incidents on web1: 18 firing, 2 resolved"},
		{"one", members(1, 0), "[medic] DIGEST 1 incident on web1: 1 firing"},
		{"shared incident", sharedIncident(), "[medic] DIGEST 3 messages about 2 incidents on web1: 2 firing, 1 resolved"},
		{"kinds in fixed order", []*Message{sampleMessage(Resolved, EventResolved), sampleMessage(Reminder, VerifyFailed), sampleMessage(Firing, GaveUp)},
			"[medic] DIGEST 3 messages about 1 incident on web1: 1 firing, 1 reminder, 1 resolved"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := NewDigest(tt.ms).Subject(); got != tt.want {
				t.Errorf("Subject() = %q, want %q", got, tt.want)
			}
		})
	}
	ms := members(2, 0)
	ms[1].Incident.Host = "web2\r\nBcc: x"
	if got := NewDigest(ms).Subject(); got != "[medic] DIGEST 2 incidents on 2 hosts: 2 firing" {
		t.Errorf("two hosts: %q", got)
	}
}

func TestNewDigest(t *testing.T) {
	ms := members(3, 1)
	d := NewDigest(ms)
	if d.Kind != Digest || len(d.Digest) != 4 || d.Digest[0] != ms[0] || d.Incident.Host != "web1" || d.Version != "1.0.0" {
		t.Errorf("digest = %+v", d)
	}
	if !d.At.Equal(ms[3].At) {
		t.Errorf("At = %v, want the newest member's %v", d.At, ms[3].At)
	}
	if !strings.HasPrefix(d.ID, "digest-"+ms[0].ID+"+4-") || len(d.ID) != len("digest-"+ms[0].ID+"+4-")+12 {
		t.Errorf("ID = %q", d.ID)
	}
	// The same members give the same ID; other members another one, also
	// with the same first member and count.
	if again := NewDigest(members(3, 1)); again.ID != d.ID {
		t.Errorf("same members: ID %q, then %q", d.ID, again.ID)
	}
	other := members(3, 1)
	other[2].ID = "changed.1"
	if NewDigest(other).ID == d.ID {
		t.Error("different members share a digest ID")
	}
	if NewDigest(ms[:3]).ID == d.ID {
		t.Error("a prefix shares the digest ID")
	}
}

func TestWithDigest(t *testing.T) {
	l := NewLog("ops-log", zap.NewNop())
	if n := WithDigest(l, 0); n != Notifier(l) || DigestWindow(n) != 0 {
		t.Errorf("WithDigest(l, 0) = %T, window %s; want l itself", n, DigestWindow(n))
	}
	n := WithDigest(l, 30*time.Second)
	if n.Name() != "ops-log" || DigestWindow(n) != 30*time.Second {
		t.Errorf("WithDigest(l, 30s): name %q, window %s", n.Name(), DigestWindow(n))
	}
	if u, ok := n.(interface{ Unwrap() Notifier }); !ok || u.Unwrap() != Notifier(l) {
		t.Errorf("Unwrap does not give the notifier back")
	}
}

func TestLogNotifierDigest(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	n := WithDigest(NewLog("ops-log", zap.New(core)), time.Minute)
	ms := members(2, 1)
	d := NewDigest(ms)
	if retry, err := n.Notify(context.Background(), d); retry || err != nil {
		t.Fatalf("Notify = %v, %v", retry, err)
	}
	entries := logs.AllUntimed()
	if len(entries) != 3 {
		t.Fatalf("got %d log lines, want one per member", len(entries))
	}
	for i, e := range entries {
		f := e.ContextMap()
		if e.Message != ms[i].Subject() || f[IDField] != ms[i].ID || f["message_id"] != nil || f["digest"] != d.ID || f["notifier"] != "ops-log" {
			t.Errorf("line %d = %q %v", i, e.Message, f)
		}
	}
	if entries[0].Level != zapcore.WarnLevel || entries[2].Level != zapcore.InfoLevel {
		t.Errorf("levels %v, %v; want warn for firing, info for resolved", entries[0].Level, entries[2].Level)
	}
}
