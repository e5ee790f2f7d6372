package email

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"
	"unicode/utf8"

	"github.com/wneessen/go-mail"

	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/notify"
)

//go:embed templates/*.tmpl
var templateFS embed.FS

// The templates of one message and of a digest share "details", the body of
// one message below its headline.
var (
	textTmpl       = texttemplate.Must(texttemplate.New("email.txt.tmpl").ParseFS(templateFS, "templates/email.txt.tmpl", "templates/details.txt.tmpl"))
	htmlTmpl       = htmltemplate.Must(htmltemplate.New("email.html.tmpl").ParseFS(templateFS, "templates/email.html.tmpl", "templates/details.html.tmpl"))
	digestTextTmpl = texttemplate.Must(texttemplate.New("digest.txt.tmpl").ParseFS(templateFS, "templates/digest.txt.tmpl", "templates/details.txt.tmpl"))
	digestHTMLTmpl = htmltemplate.Must(htmltemplate.New("digest.html.tmpl").ParseFS(templateFS, "templates/digest.html.tmpl", "templates/details.html.tmpl"))
)

// maxValue caps each piece of text from the network (probe errors, journal
// lines, ...) in the body, in bytes.
const maxValue = 2000

// Render makes the email for m as Notify sends it: From and To from cfg,
// Subject m.Subject(), Date m.At, a Message-ID derived from m.ID, In-Reply-To
// and References naming the incident's thread root, Auto-Submitted,
// Precedence and the X-Medic-* headers, and a multipart/alternative body
// with a text/plain and a text/html part.
//
// A digest (kind notify.Digest) has Message-ID derived from the digest's ID
// and no In-Reply-To, References or X-Medic-Incident: it spans incidents,
// and naming their roots would make mail clients, which take the last
// reference as the parent, file it under one arbitrary incident's thread.
// Its body lists one line per member, then each member's details as in its
// own mail (see Bodies).
//
// Render is deterministic but for the MIME boundary: the same m and cfg give
// the same headers and bodies. It fails when m has no ID, when a body
// template fails, or when cfg's From or To do not parse.
func Render(m *notify.Message, cfg Config) (*mail.Msg, error) {
	if m.ID == "" {
		return nil, errors.New("render email: message has no ID")
	}
	hostname := cfg.Hostname
	text, html, err := Bodies(m)
	if err != nil {
		return nil, err
	}
	msg := mail.NewMsg(mail.WithNoDefaultUserAgent())
	if err := msg.From(cfg.From); err != nil {
		return nil, fmt.Errorf("set From %q: %w", cfg.From, err)
	}
	if err := msg.To(cfg.To...); err != nil {
		return nil, fmt.Errorf("set To: %w", err)
	}
	msg.Subject(m.Subject())
	msg.SetDateWithValue(m.At)
	// Only atext, "." and "@" and no spaces: go-mail writes them unchanged.
	msg.SetGenHeader(mail.HeaderMessageID, MessageID(m.ID, hostname))
	if m.Incident.ID != "" && m.Kind != notify.Digest {
		root := MessageID(m.Incident.ID, hostname)
		msg.SetGenHeader(mail.HeaderInReplyTo, root)
		msg.SetGenHeader(mail.HeaderReferences, root)
		msg.SetGenHeader("X-Medic-Incident", headerText(m.Incident.ID))
	}
	msg.SetGenHeader("Auto-Submitted", "auto-generated")
	msg.SetBulk() // Precedence: bulk, X-Auto-Response-Suppress: All
	msg.SetGenHeader("X-Medic-Kind", headerText(string(m.Kind)))
	if m.Event != "" {
		msg.SetGenHeader("X-Medic-Event", headerText(string(m.Event)))
	}
	ua := "medic"
	if m.Version != "" {
		ua += "/" + m.Version
	}
	msg.SetUserAgent(headerText(ua))
	msg.SetBodyString(mail.TypeTextPlain, text)
	msg.AddAlternativeString(mail.TypeTextHTML, html)
	return msg, nil
}

// MessageID returns the RFC 5322 msg-id "<id@hostname>" for a message or
// incident id: characters that may not appear in a dot-atom are written
// as %XX (and "%" itself as %25), so distinct ids give distinct msg-ids.
// Each half has at most maxAtom bytes: a longer one keeps its start and
// ends in "-" and 16 hex digits of its SHA-256, so that it stays distinct
// and the header line stays within RFC 5322 section 2.1.1 (a msg-id cannot
// be folded).
func MessageID(id, hostname string) string {
	return "<" + atom(id) + "@" + atom(hostname) + ">"
}

// Bounds on the header values Render builds from outside text (IDs,
// versions, the host's name; the Subject has notify.MaxSubjectRunes), so
// that every header line stays well within RFC 5322 section 2.1.1's 998
// characters.
const (
	// maxAtom caps each half of a msg-id, in bytes.
	maxAtom = 200
	// maxHeaderText caps X-Medic-* and User-Agent, in characters.
	maxHeaderText = 200
)

// atom encodes s as RFC 5322 dot-atom-text of at most maxAtom bytes.
func atom(s string) string {
	if s == "" {
		return "unknown"
	}
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() <= maxAtom; i++ {
		c := s[i]
		dotOK := c == '.' && i > 0 && i < len(s)-1 && s[i-1] != '.'
		if isAtext(c) && c != '%' || dotOK {
			b.WriteByte(c)
			continue
		}
		fmt.Fprintf(&b, "%%%02X", c)
	}
	a := b.String()
	if len(a) <= maxAtom {
		return a
	}
	sum := sha256.Sum256([]byte(s))
	tail := "-" + hex.EncodeToString(sum[:8])
	cut := maxAtom - len(tail)
	if i := strings.LastIndexByte(a[cut-2:cut], '%'); i >= 0 {
		cut -= 2 - i // never split a %XX
	}
	return a[:cut] + tail
}

// headerText makes s one line of at most maxHeaderText characters; a
// longer s is cut and ends in "…".
func headerText(s string) string {
	s = notify.OneLine(s)
	if utf8.RuneCountInString(s) <= maxHeaderText {
		return s
	}
	var n int
	for i := range s {
		if n == maxHeaderText-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s
}

// isAtext reports whether c is an RFC 5322 atext character.
func isAtext(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}

// Bodies renders the text/plain and text/html bodies of the email for m.
// The body of a digest starts with its subject and one line per member
// (kind, unit, since, problem, cause), then gives each member's details as
// its own mail would, under a "=== n/N" heading.
func Bodies(m *notify.Message) (text, html string, err error) {
	var (
		v      any = newView(m)
		tt         = textTmpl
		ht         = htmlTmpl
		tb, hb bytes.Buffer
	)
	if m.Kind == notify.Digest {
		v, tt, ht = newDigestView(m), digestTextTmpl, digestHTMLTmpl
	}
	if err := tt.Execute(&tb, v); err != nil {
		return "", "", fmt.Errorf("render text body: %w", err)
	}
	if err := ht.Execute(&hb, v); err != nil {
		return "", "", fmt.Errorf("render html body: %w", err)
	}
	return tb.String(), hb.String(), nil
}

// digestView is what the digest templates see.
type digestView struct {
	Subject   string
	Headline  string
	Resolved  bool // every member is resolved or recovered
	Count     int
	Rows      []digestRow
	Members   []digestMember
	Why       string
	Host      string
	Version   string
	MessageID string
}

// digestRow is the summary line of one member.
type digestRow struct {
	Kind, Unit, Since, Problem, Cause string
	// KindPad and UnitPad are Kind and Unit padded to the column's width.
	KindPad, UnitPad string
	Resolved         bool
}

// digestMember is one member's details, numbered from 1.
type digestMember struct {
	N int
	V *view
}

func newDigestView(m *notify.Message) *digestView {
	v := &digestView{
		Subject:   m.Subject(),
		Headline:  clean(strings.TrimPrefix(m.Subject(), "[medic] ")),
		Resolved:  true,
		Count:     len(m.Digest),
		Host:      clean(m.Incident.Host),
		Version:   clean(m.Version),
		MessageID: clean(m.ID),
		Why: "medic sent this digest because the notifier sets digest: the messages that become pending " +
			"within that window after the first one go out in one mail. Each message keeps its own ID, " +
			"shown with its details; later messages of these incidents come in the next digest.",
	}
	kindW, unitW := 0, 0
	for i, d := range m.Digest {
		mv := newView(d)
		v.Members = append(v.Members, digestMember{N: i + 1, V: mv})
		unit := d.Incident.Unit
		if unit == "" {
			unit = d.Incident.Check
		}
		row := digestRow{
			Kind: mv.Kind, Unit: clean(unit), Since: stamp(d.Incident.Since),
			Problem: clean(d.Incident.Problem), Cause: clean(d.Incident.Cause), Resolved: mv.Resolved,
		}
		v.Resolved = v.Resolved && mv.Resolved
		kindW = max(kindW, utf8.RuneCountInString(row.Kind))
		unitW = max(unitW, utf8.RuneCountInString(row.Unit))
		v.Rows = append(v.Rows, row)
	}
	for i := range v.Rows {
		r := &v.Rows[i]
		r.KindPad = r.Kind + strings.Repeat(" ", kindW-utf8.RuneCountInString(r.Kind))
		r.UnitPad = r.Unit + strings.Repeat(" ", unitW-utf8.RuneCountInString(r.Unit))
	}
	return v
}

// field is one "key: value" line.
type field struct {
	Key, Value string
	// Pad is "Key:" padded with spaces so that the values of a section
	// line up in the plain text.
	Pad string
}

// checkRow is one checklist item: a ✓, ✗ or ? mark, its name and evidence.
type checkRow struct {
	Mark, Name, Evidence string
	// Pad is Name padded to the checklist's width.
	Pad string
	OK  bool
}

type timelineRow struct {
	At, What, Detail string
	// Pad is What padded to the section's width.
	Pad string
}

// view is what the templates see. Everything in it is already one line
// (notify.OneLine), capped in length; html/template escapes it for HTML.
type view struct {
	Subject  string
	Kind     string // FIRING, RESOLVED, ...
	Resolved bool
	Headline string
	Facts    []field
	Timeline []timelineRow
	Unit     []field
	Journal  []string
	// Diagnosis: the primary cause in words, its fix, the checklist and
	// secondary findings; empty when the incident was not diagnosed.
	Diagnosis  []field
	Checklist  []checkRow
	Findings   []string
	Unavail    []string
	Why        string
	Host       string
	Version    string
	IncidentID string
	MessageID  string
}

func newView(m *notify.Message) *view {
	in := &m.Incident
	v := &view{
		Subject:    m.Subject(),
		Kind:       strings.ToUpper(string(m.Kind)),
		Resolved:   m.Kind == notify.Resolved || m.Kind == notify.Recovered,
		Host:       clean(in.Host),
		Version:    clean(m.Version),
		IncidentID: clean(in.ID),
		MessageID:  clean(m.ID),
	}
	if m.Kind == notify.Reminder {
		v.Kind = "FIRING (reminder)"
	}
	what := in.Unit
	if what == "" {
		what = in.Check
	}
	v.Headline = clean(fmt.Sprintf("%s on %s: %s", what, in.Host, headline(m)))

	facts := []field{
		{Key: "Check", Value: clean(in.Check)},
		{Key: "Unit", Value: clean(in.Unit)},
		{Key: "Target", Value: clean(in.Target)},
		{Key: "Problem", Value: clean(in.Problem)},
	}
	if in.Cause != "" {
		facts = append(facts, field{Key: "Cause", Value: clean(in.Cause)})
	}
	if in.Paused != "" {
		facts = append(facts, field{Key: "Paused", Value: clean(in.Paused)})
	}
	if !in.Since.IsZero() {
		since := stamp(in.Since)
		if in.ResolvedAt.IsZero() && !m.At.IsZero() {
			since += " (for " + duration(m.At.Sub(in.Since)) + ")"
		}
		facts = append(facts, field{Key: "Since", Value: since})
	}
	if !in.ResolvedAt.IsZero() {
		facts = append(facts,
			field{Key: "Resolved", Value: stamp(in.ResolvedAt)},
			field{Key: "Outage", Value: "lasted " + duration(in.ResolvedAt.Sub(in.Since))})
	}
	facts = append(facts, field{Key: "Restarts", Value: strconv.Itoa(in.Restarts) + " by medic"})
	v.Facts = pad(facts)

	width := 0
	for _, e := range in.Timeline {
		width = max(width, utf8.RuneCountInString(clean(e.What)))
	}
	for _, e := range in.Timeline {
		w := clean(e.What)
		v.Timeline = append(v.Timeline, timelineRow{
			At: stamp(e.At), What: w, Detail: clean(e.Detail),
			Pad: w + strings.Repeat(" ", width-utf8.RuneCountInString(w)),
		})
	}

	if us := in.UnitState; us != (notify.UnitState{}) {
		unit := []field{
			{Key: "ActiveState", Value: clean(us.ActiveState)},
			{Key: "SubState", Value: clean(us.SubState)},
			{Key: "Result", Value: clean(us.Result)},
		}
		if s := diagnose.MainExit(us.ExecMainCode, us.ExecMainStatus); s != "" {
			unit = append(unit, field{Key: "Main process", Value: s})
		}
		unit = append(unit, field{Key: "NRestarts", Value: strconv.FormatUint(uint64(us.NRestarts), 10)})
		pid := "none"
		if us.MainPID != 0 {
			pid = strconv.FormatUint(uint64(us.MainPID), 10)
		}
		unit = append(unit, field{Key: "MainPID", Value: pid})
		if !us.Since.IsZero() {
			unit = append(unit, field{Key: "State since", Value: stamp(us.Since)})
		}
		v.Unit = pad(unit)
	}
	for _, l := range in.Journal {
		v.Journal = append(v.Journal, clean(l))
	}
	if dg := in.Diagnosis; dg != nil && dg.Primary.Cause != "" {
		v.Diagnosis = pad([]field{
			{Key: "Cause", Value: clean(string(dg.Primary.Cause))},
			{Key: "Finding", Value: clean(dg.Primary.Summary)},
			{Key: "Fix", Value: clean(dg.Primary.Hint)},
		})
		width := 0
		for _, it := range dg.Checklist {
			width = max(width, utf8.RuneCountInString(it.Name))
		}
		for _, it := range dg.Checklist {
			mark := it.Status.Mark()
			v.Checklist = append(v.Checklist, checkRow{
				Mark: mark, Name: clean(it.Name), Evidence: clean(it.Evidence), OK: it.Status == diagnose.Pass,
				Pad: it.Name + strings.Repeat(" ", width-utf8.RuneCountInString(it.Name)),
			})
		}
		for _, f := range dg.Secondary {
			s := clean(string(f.Cause) + ": " + f.Summary)
			if f.Hint != "" {
				s += clean(" (fix: " + f.Hint + ")")
			}
			v.Findings = append(v.Findings, s)
		}
		for _, u := range dg.Unavailable {
			v.Unavail = append(v.Unavail, clean(u))
		}
	}
	v.Why = why(m)
	return v
}

// headline says in a few words where the incident stands.
func headline(m *notify.Message) string {
	in := &m.Incident
	switch m.Kind {
	case notify.Resolved:
		return "resolved after " + duration(in.ResolvedAt.Sub(in.Since))
	case notify.Recovered:
		return "fixed by restart after " + duration(in.ResolvedAt.Sub(in.Since))
	case notify.Test:
		return "test message"
	}
	s := "FIRING: " + in.Problem
	if e := eventText(m.Event); e != "" {
		s += "; " + e
	}
	return s
}

func eventText(e notify.Event) string {
	switch e {
	case notify.RestartFailed:
		return "the restart job did not finish with result done"
	case notify.RestartRefused:
		return "systemd refused medic's restart for lack of authorization (polkit): nothing was restarted"
	case notify.VerifyFailed:
		return "the restart job was done, but the probes did not pass within verify_timeout"
	case notify.GaveUp:
		return "the restart budget is spent: medic keeps probing but no longer restarts"
	case notify.Flapping:
		return "the check keeps failing again after restarts (flapping)"
	case notify.Unremediated:
		return "the check fails and its remedy action is none"
	}
	return ""
}

// why is the footer: why this mail was sent.
func why(m *notify.Message) string {
	in := &m.Incident
	switch m.Kind {
	case notify.Firing:
		return "medic sent this mail because the incident is firing: " + eventText(m.Event) +
			". It sends a reminder every repeat_interval while the incident is open, and one mail when it is resolved."
	case notify.Reminder:
		return "medic sent this reminder because the incident is still open, repeat_interval after the last mail about it."
	case notify.Resolved:
		return "medic sent this mail because the incident is resolved: the check is healthy again. The outage lasted " +
			duration(in.ResolvedAt.Sub(in.Since)) + "."
	case notify.Recovered:
		return "medic sent this mail because a restart fixed the check without escalation and the check sets notify_on_recovery."
	case notify.Test:
		return "medic sent this test mail because someone ran `medic notify test`; it belongs to no real incident."
	}
	return "medic sent this mail (kind " + clean(string(m.Kind)) + ", event " + clean(string(m.Event)) + ")."
}

func pad(fs []field) []field {
	width := 0
	for _, f := range fs {
		width = max(width, len(f.Key)+1)
	}
	for i := range fs {
		k := fs[i].Key + ":"
		fs[i].Pad = k + strings.Repeat(" ", width-len(k))
	}
	return fs
}

// clean makes text from the network safe for the body: one line without
// control characters (which also keeps terminal escapes out of a mail read
// in a terminal), at most maxValue bytes.
func clean(s string) string {
	s = strings.TrimSpace(notify.OneLine(s))
	if len(s) > maxValue {
		cut := maxValue
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Format(time.RFC3339)
}

func duration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	return d.Round(time.Second).String()
}
