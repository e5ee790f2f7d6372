package email

import (
	"bytes"
	"mime"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/medic-watchdog/medic/internal/smtptest"
	"github.com/medic-watchdog/medic/notify"
)

// TestHeaderLinesWithinRFC5322 sends mails built from oversized outside
// text through a real SMTP server: a 200 KB HTTP reason phrase (once with
// spaces, once as one word), an incident ID of 1,000 characters that all
// need %XX in a msg-id, and a long version. Every line the server
// receives, header or body, has at most 998 octets (RFC 5322 section
// 2.1.1), and the Subject is cut to notify.MaxSubjectRunes with its marker.
func TestHeaderLinesWithinRFC5322(t *testing.T) {
	s := authServer(t, smtptest.Options{})
	e := newEmail(t, s, "starttls", nil)
	longID := strings.Repeat("é ", 500)
	for _, tc := range []struct{ name, problem, id string }{
		{"phrase", "http://127.0.0.1:8080/health: 502 " + strings.Repeat("Bad Gateway ", 200<<10/12), "my-app-20261121T080000.123Z"},
		{"word", "http://127.0.0.1:8080/health: 502 " + strings.Repeat("x", 200<<10), longID + "a"},
		{"word again", "http://127.0.0.1:8080/health: 502 " + strings.Repeat("x", 200<<10), longID + "b"},
	} {
		m := sample(notify.Firing, tc.id, "1")
		m.Incident.Problem = tc.problem
		m.Version = strings.Repeat("v", 5000)
		mustNotify(t, e, m)
	}
	got := s.Messages()
	if len(got) != 3 {
		t.Fatalf("server has %d messages, want 3", len(got))
	}
	ids := map[string]bool{}
	for i, r := range got {
		head, body, ok := bytes.Cut(r.Data, []byte("\r\n\r\n"))
		if !ok {
			t.Fatalf("mail %d has no end of header", i)
		}
		for l := range strings.SplitSeq(string(head), "\r\n") {
			if len(l) > 998 {
				t.Errorf("mail %d has a header line of %d octets, RFC 5322 allows 998: %.120q…", i, len(l), l)
			}
		}
		for l := range bytes.SplitSeq(body, []byte("\r\n")) {
			if len(l) > 998 {
				t.Errorf("mail %d has a body line of %d octets, RFC 5322 allows 998", i, len(l))
			}
		}
		if r.Header == nil {
			t.Fatalf("mail %d: parse header: %v", i, r.HeaderErr())
		}
		subj, err := new(mime.WordDecoder).DecodeHeader(r.Header.Get("Subject"))
		if err != nil {
			t.Fatalf("mail %d: decode Subject: %v", i, err)
		}
		if n := utf8.RuneCountInString(subj); n > notify.MaxSubjectRunes || !strings.HasSuffix(subj, notify.SubjectMarker) ||
			!strings.HasPrefix(subj, "[medic] FIRING my-app.service on web1: http://127.0.0.1:8080/health: 502 ") {
			t.Errorf("mail %d: Subject of %d characters %q, want at most %d ending in %q", i, n, subj, notify.MaxSubjectRunes, notify.SubjectMarker)
		}
		id := r.Header.Get("Message-Id")
		if !msgIDRe.MatchString(id) || ids[id] {
			t.Errorf("mail %d: Message-ID %q is not a msg-id or not unique", i, id)
		}
		ids[id] = true
		for _, k := range []string{"In-Reply-To", "References"} {
			if v := r.Header.Get(k); !msgIDRe.MatchString(v) {
				t.Errorf("mail %d: %s %q is not a msg-id", i, k, v)
			}
		}
	}
}
