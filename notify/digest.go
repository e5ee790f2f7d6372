package notify

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Digester is a Notifier whose messages the outbox groups into digests: the
// messages that become pending within DigestWindow after the oldest pending
// one are delivered as one Message of Kind Digest. A window of 0 or less
// delivers each message on its own. WithDigest makes one.
type Digester interface {
	Notifier
	DigestWindow() time.Duration
}

// WithDigest returns n with a digest window: a Digester whose Notify is
// n's. With window <= 0 it returns n itself. The returned notifier has only
// the methods of Digester; Unwrap gives n back for other interfaces n may
// implement.
func WithDigest(n Notifier, window time.Duration) Notifier {
	if window <= 0 {
		return n
	}
	return &digesting{Notifier: n, window: window}
}

// digesting is a Notifier with a digest window.
type digesting struct {
	Notifier
	window time.Duration
}

var _ Digester = (*digesting)(nil)

func (d *digesting) DigestWindow() time.Duration { return d.window }

// Unwrap returns the notifier WithDigest wrapped.
func (d *digesting) Unwrap() Notifier { return d.Notifier }

// DigestWindow returns n's digest window: Digester.DigestWindow when n
// implements it, else 0 (no digests).
func DigestWindow(n Notifier) time.Duration {
	if d, ok := n.(Digester); ok {
		return d.DigestWindow()
	}
	return 0
}

// NewDigest returns the digest message of members, oldest first; it keeps
// the slice, not a copy. Its ID is derived from the members' IDs only, so
// the same members always give the same digest (a retry after a lost
// answer is a duplicate the receiver can drop) and different members a
// different one: "digest-<first member's ID>+<count>-<12 hex digits of the
// SHA-256 of the members' IDs>". At is the newest member's At, Version and
// Incident.Host are the first member's; the rest of Incident is empty.
//
// NewDigest panics when members is empty.
func NewDigest(members []*Message) *Message {
	if len(members) == 0 {
		panic("notify.NewDigest: no members")
	}
	h := sha256.New()
	var at time.Time
	for _, m := range members {
		h.Write([]byte(m.ID))
		h.Write([]byte{'\n'})
		if m.At.After(at) {
			at = m.At
		}
	}
	first := members[0]
	return &Message{
		ID:       fmt.Sprintf("digest-%s+%d-%s", first.ID, len(members), hex.EncodeToString(h.Sum(nil))[:12]),
		Kind:     Digest,
		At:       at,
		Version:  first.Version,
		Incident: Incident{Host: first.Incident.Host},
		Digest:   members,
	}
}

// digestSubject is Subject for a digest, e.g. "[medic] DIGEST 20 incidents
// on web1: 18 firing, 2 resolved", or "[medic] DIGEST 3 messages about 2
// incidents on web1: 2 firing, 1 resolved" when members share incidents.
// Reminders count as "reminder", the other kinds by their name.
func (m *Message) digestSubject() string {
	incidents := map[string]bool{}
	hosts := map[string]bool{}
	counts := map[Kind]int{}
	var order []Kind
	for _, d := range m.Digest {
		incidents[d.Incident.ID] = true
		hosts[d.Incident.Host] = true
		if counts[d.Kind] == 0 {
			order = append(order, d.Kind)
		}
		counts[d.Kind]++
	}
	n := len(m.Digest)
	what := fmt.Sprintf("%d incident%s", n, plural(n))
	if len(incidents) != n {
		what = fmt.Sprintf("%d message%s about %d incident%s", n, plural(n), len(incidents), plural(len(incidents)))
	}
	host := m.Incident.Host
	if len(hosts) > 1 {
		host = fmt.Sprintf("%d hosts", len(hosts))
	}
	var parts []string
	for _, k := range append([]Kind{Firing, Reminder, Resolved, Recovered, Test}, order...) {
		if c := counts[k]; c > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", c, k))
			delete(counts, k)
		}
	}
	s := fmt.Sprintf("[medic] DIGEST %s on %s", what, host)
	if len(parts) > 0 {
		s += ": " + strings.Join(parts, ", ")
	}
	return OneLine(s)
}
