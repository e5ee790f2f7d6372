package notify

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// TestSubjectIsBounded: a problem of any length (a 200 KB HTTP reason
// phrase, with or without spaces, or multi-byte text) gives a subject of at
// most MaxSubjectRunes characters that ends in SubjectMarker; a short one
// is left whole.
func TestSubjectIsBounded(t *testing.T) {
	head := "[medic] FIRING my-app.service on web1: "
	for _, tc := range []struct {
		name, problem string
		wantCut       bool
	}{
		{"short", "127.0.0.1:8080 connection refused", false},
		{"200 KB phrase", "http://127.0.0.1:8080/health: 502 " + strings.Repeat("Bad Gateway ", 200<<10/12), true},
		{"200 KB word", strings.Repeat("x", 200<<10), true},
		{"multi-byte", strings.Repeat("é☃", 1000), true},
		{"CR and LF", strings.Repeat("a\r\nBcc: x@example.com\r\n", 100), true},
		{"invalid UTF-8", strings.Repeat("\xff", 1000), true},
		// Exactly at the bound: the whole subject, with its outcome.
		{"at the bound", strings.Repeat("y", MaxSubjectRunes-utf8.RuneCountInString(head+", restart did not help")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := sampleMessage(Firing, VerifyFailed)
			m.Incident.Problem = tc.problem
			s := m.Subject()
			if n := utf8.RuneCountInString(s); n > MaxSubjectRunes {
				t.Errorf("subject has %d characters, want at most %d", n, MaxSubjectRunes)
			}
			if strings.ContainsAny(s, "\r\n") {
				t.Errorf("subject %q holds CR or LF", s)
			}
			if !strings.HasPrefix(s, head) {
				t.Errorf("subject %q does not start %q", s, head)
			}
			if got := strings.HasSuffix(s, SubjectMarker); got != tc.wantCut {
				t.Errorf("subject %q ends in %q: %v, want %v", s, SubjectMarker, got, tc.wantCut)
			}
			if !tc.wantCut && s != OneLine(head+tc.problem+", restart did not help") {
				t.Errorf("subject %q, want it whole", s)
			}
		})
	}
}

// TestDigestSubjectIsBounded: a digest's subject, whose host comes from a
// member, is bounded too.
func TestDigestSubjectIsBounded(t *testing.T) {
	a := sampleMessage(Firing, VerifyFailed)
	a.Incident.Host = strings.Repeat("h", 10_000)
	s := NewDigest([]*Message{a}).Subject()
	if n := utf8.RuneCountInString(s); n > MaxSubjectRunes || !strings.HasSuffix(s, SubjectMarker) {
		t.Errorf("digest subject of %d characters %q, want at most %d ending in %q", n, s, MaxSubjectRunes, SubjectMarker)
	}
}
