package statuspage

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/diagnose"
	"github.com/medic-watchdog/medic/history"
	"github.com/medic-watchdog/medic/internal/termsafe"
	"github.com/medic-watchdog/medic/probe"
)

// view is what the template renders. Every string from outside medic
// (problems, diagnoses, timelines, pause reasons) goes through clean
// here, which makes control characters visible (internal/termsafe); the
// template escapes it for HTML.
type view struct {
	Host, Version string
	Started       string
	Uptime        string
	Now           string
	Zone          string
	Refresh       int
	ReloadError   string
	BusError      string

	Checks  []checkRow
	Failing int // checks not healthy
	Open    []openIncident
	Outbox  []outboxRow

	History      []historyRow
	HistoryTotal int // incidents in the window
	HistoryDays  int
	HistoryError string
	Skipped      int // unreadable record files
	Chart        chart
}

type checkRow struct {
	Name, Unit string
	// State is the state shown, Class the style ("ok", "warn", "bad",
	// "paused").
	State, Class string
	Since        string
	SinceTitle   string
	LastProbe    string
	ProbeError   string // the whole error, as a tooltip
	ProbeOK      bool
	Restarts     int
	Budget       int
	Incident     string
	Cause        string
	Paused       string
	Note         string
}

type openIncident struct {
	ID, Check, Unit string
	State, Class    string
	Since           string
	Age             string
	Problem         string
	Restarts        int
	Diagnosis       *diagnosisView
	Timeline        []timelineRow
	// TimelineNote says why there is no timeline.
	TimelineNote string
}

type diagnosisView struct {
	At          string
	Cause       string
	Summary     string
	Hint        string
	Checklist   []checkItem
	Secondary   []string
	Unavailable []string
}

type checkItem struct {
	Mark, Name, Status, Evidence string
}

type timelineRow struct {
	At, What, Detail string
}

type outboxRow struct {
	Notifier        string
	Pending, Failed int
	LastError       string
	Dropped         uint64
}

type historyRow struct {
	ID, Check, Unit  string
	Opened, Resolved string
	TTR              string
	Restarts         int
	Cause            string
	Alerts           string
	GaveUp           bool
}

// timeLayout is how the page shows times (in the zone the view names).
const timeLayout = "2006-01-02 15:04:05"

// build gathers the page's data from src at now.
func build(src Sources, now time.Time) view {
	r := src.Report()
	v := view{
		Host: clean(r.Host), Version: clean(r.Version), Started: stamp(r.Started), Uptime: CompactDuration(now.Sub(r.Started)),
		Now: stamp(now), Zone: now.Local().Format("MST -0700"), Refresh: RefreshSeconds,
		ReloadError: clean(r.ReloadError), BusError: clean(r.BusError), HistoryDays: int(HistoryWindow / (24 * time.Hour)),
	}
	for _, c := range r.Checks {
		row := rowOf(c, r.Started, now)
		if row.Class != "ok" {
			v.Failing++
		}
		v.Checks = append(v.Checks, row)
		if c.Incident != "" {
			v.Open = append(v.Open, openOf(src, c, row, now))
		}
	}
	for _, o := range r.Outbox {
		if o.Pending > 0 || o.Failed > 0 || o.Dropped > 0 {
			v.Outbox = append(v.Outbox, outboxRow{Notifier: clean(o.Notifier), Pending: o.Pending, Failed: o.Failed,
				LastError: clean(o.LastError), Dropped: o.Dropped})
		}
	}
	if src.History != nil {
		recs, bad, err := src.History()
		if err != nil {
			v.HistoryError = clean(err.Error())
		}
		v.Skipped = len(bad)
		from := now.Add(-HistoryWindow)
		var recent []history.Record
		for _, rec := range recs {
			if !rec.Ended().Before(from) {
				recent = append(recent, rec)
			}
		}
		v.HistoryTotal = len(recent)
		for i := range recent[:min(len(recent), MaxHistoryRows)] {
			v.History = append(v.History, historyRowOf(&recent[i]))
		}
		v.Chart = makeChart(recent)
	}
	return v
}

// rowOf is the table row of one check.
func rowOf(c agent.Status, started, now time.Time) checkRow {
	since := c.Since
	if since.IsZero() {
		since = started // never changed: in this state since medic started
	}
	row := checkRow{
		Name: clean(c.Check), Unit: clean(orDash(c.Unit)), State: clean(c.State), Class: stateClass(c.State),
		Since: CompactDuration(now.Sub(since)), SinceTitle: stamp(since),
		Restarts: c.Restarts, Budget: c.BudgetLeft, Incident: clean(c.Incident), Note: clean(c.StateNote),
	}
	switch {
	case c.LastProbe.IsZero():
		row.LastProbe = "not yet probed"
	case c.LastOK:
		row.LastProbe, row.ProbeOK = "ok", true
	default:
		row.LastProbe, row.ProbeError = clean(probe.ShortProblem(c.LastError)), clean(c.LastError)
	}
	if c.Diagnosis != nil && c.Diagnosis.Primary.Cause != "" {
		row.Cause = clean(string(c.Diagnosis.Primary.Cause))
	}
	if p := c.Paused; p != nil {
		row.Class = "paused"
		row.State += " (paused)"
		row.Paused = "remediation paused until " + stamp(p.Until)
		if p.Reason != "" {
			row.Paused += ": " + clean(p.Reason)
		}
	}
	if c.RemedyError != "" {
		row.Note = strings.TrimPrefix(row.Note+"; ", "; ") + "remedy not carried out: " + clean(c.RemedyError)
	}
	return row
}

// openOf is the open incident of check c, with the timeline its state file
// holds.
func openOf(src Sources, c agent.Status, row checkRow, now time.Time) openIncident {
	o := openIncident{ID: clean(c.Incident), Check: row.Name, Unit: row.Unit, State: row.State, Class: row.Class,
		Problem: row.LastProbe, Restarts: c.Restarts}
	if c.LastOK {
		o.Problem = "" // recovering: the last probe passed
	}
	dg := c.Diagnosis
	if src.OpenIncident == nil {
		o.TimelineNote = "timeline not available"
	} else if in, err := src.OpenIncident(c.Check); err != nil {
		o.TimelineNote = "timeline not available: " + clean(err.Error())
	} else if in == nil || in.ID != c.Incident {
		o.TimelineNote = "timeline not saved yet"
	} else {
		o.Since, o.Age = stamp(in.Since), CompactDuration(now.Sub(in.Since))
		o.Restarts = in.Restarts
		if in.Problem != "" {
			o.Problem = clean(in.Problem)
		}
		if dg == nil {
			dg = in.Diagnosis
		}
		for _, e := range in.Timeline {
			o.Timeline = append(o.Timeline, timelineRow{At: stampMilli(e.At), What: clean(e.What), Detail: clean(e.Detail)})
		}
	}
	if dg != nil {
		o.Diagnosis = diagnosisOf(dg)
	}
	return o
}

func diagnosisOf(dg *diagnose.Diagnosis) *diagnosisView {
	d := &diagnosisView{At: stamp(dg.At), Cause: clean(string(dg.Primary.Cause)), Summary: clean(dg.Primary.Summary), Hint: clean(dg.Primary.Hint)}
	for _, it := range dg.Checklist {
		d.Checklist = append(d.Checklist, checkItem{Mark: it.Status.Mark(), Name: clean(it.Name), Status: itemClass(it.Status), Evidence: clean(it.Evidence)})
	}
	for _, f := range dg.Secondary {
		s := clean(string(f.Cause)) + ": " + clean(f.Summary)
		if f.Hint != "" {
			s += " (fix: " + clean(f.Hint) + ")"
		}
		d.Secondary = append(d.Secondary, s)
	}
	for _, u := range dg.Unavailable {
		d.Unavailable = append(d.Unavailable, clean(u))
	}
	return d
}

func historyRowOf(r *history.Record) historyRow {
	h := historyRow{ID: clean(r.ID), Check: clean(r.Check), Unit: clean(orDash(r.Unit)), Opened: stamp(r.Since),
		Restarts: r.Restarts, Cause: clean(orDash(r.Cause)), Alerts: "quiet", TTR: "-"}
	if r.Escalated {
		h.Alerts = "escalated"
	}
	if r.Outcome == history.Resolved {
		h.Resolved, h.TTR = stamp(r.ResolvedAt), ttr(r.TimeToRecovery())
	} else {
		h.Resolved, h.GaveUp = "gave up", true
	}
	return h
}

// stateClass is the style of a policy state.
func stateClass(state string) string {
	switch state {
	case "healthy":
		return "ok"
	case "restarting", "verifying":
		return "warn"
	}
	return "bad"
}

// itemClass is the style of a checklist outcome.
func itemClass(s diagnose.Status) string {
	switch s {
	case diagnose.Pass:
		return "pass"
	case diagnose.Fail:
		return "fail"
	case diagnose.Unchecked:
		return "unknown"
	}
	return "na"
}

// clean makes control characters visible (newlines, ESC, bidirectional
// overrides): text from backends cannot reorder or hide what the page
// shows. HTML escaping is the template's.
func clean(s string) string { return termsafe.Escape(s) }

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// stamp formats t in the local zone, "-" when zero.
func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(timeLayout)
}

func stampMilli(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format(timeLayout + ".000")
}

// CompactDuration prints d in its two largest units, e.g. "3d4h", "2h5m",
// "4m10s", "12s"; "0s" for less than a second or a negative d (clocks of
// two hosts). The page and `medic status` show ages with it.
func CompactDuration(d time.Duration) string {
	if d < time.Second {
		return "0s"
	}
	s := int64(d / time.Second)
	days, hours, mins, secs := s/86400, s/3600%24, s/60%60, s%60
	switch {
	case days > 0:
		return fmt.Sprintf("%dd%dh", days, hours)
	case hours > 0:
		return fmt.Sprintf("%dh%dm", hours, mins)
	case mins > 0:
		return fmt.Sprintf("%dm%ds", mins, secs)
	}
	return strconv.FormatInt(secs, 10) + "s"
}

// ttr is a time to recovery: to the millisecond under a second, to the
// tenth of a second under a minute, to the second above.
func ttr(d time.Duration) string {
	if d < time.Second {
		return d.Round(time.Millisecond).String()
	}
	if d < time.Minute {
		return d.Round(100 * time.Millisecond).String()
	}
	return CompactDuration(d)
}
