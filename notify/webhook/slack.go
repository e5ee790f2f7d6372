package webhook

import (
	"fmt"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/notify"
)

// slackTimelineMax is how many of the last timeline entries a Slack message
// shows.
const slackTimelineMax = 10

// SlackPayload is the body of a webhook with format "slack": a message for a
// Slack incoming webhook (https://api.slack.com/messaging/webhooks), which
// Mattermost, Rocket.Chat and others also accept. Text is the subject line;
// one attachment, colored by the message kind, holds the details.
type SlackPayload struct {
	// Text is the message's subject, e.g. "[medic] FIRING my-app.service
	// on web1: 127.0.0.1:8080 connection refused, restart did not help".
	Text string `json:"text"`
	// Attachments holds one attachment with the details.
	Attachments []SlackAttachment `json:"attachments,omitempty"`
}

// SlackAttachment is a Slack message attachment (a "secondary attachment"
// in Slack's words).
type SlackAttachment struct {
	// Color is "danger" for firing, "warning" for reminders, "good" for
	// resolved and recovered messages and "#439FE0" for tests.
	Color string `json:"color"`
	// Fallback is the plain-text summary shown where attachments are not.
	Fallback string `json:"fallback"`
	// Text holds the problem, cause, unit state and the timeline, a few
	// lines of Slack mrkdwn.
	Text string `json:"text"`
	// MrkdwnIn is ["text"]: Text is formatted.
	MrkdwnIn []string `json:"mrkdwn_in"`
}

// NewSlackPayload returns the SlackPayload that a webhook with format
// "slack" sends for m. Text from the network (probe errors, journal lines)
// is escaped as Slack asks (&, < and >), so it cannot form links or
// mentions.
func NewSlackPayload(m *notify.Message) *SlackPayload {
	in := &m.Incident
	var b strings.Builder
	fmt.Fprintf(&b, "*Problem:* %s\n", slackEscape(in.Problem))
	if in.Cause != "" {
		fmt.Fprintf(&b, "*Cause:* %s\n", slackEscape(in.Cause))
	}
	if in.Unit != "" {
		fmt.Fprintf(&b, "*Unit:* %s\n", slackEscape(unitLine(in)))
	}
	fmt.Fprintf(&b, "*Incident:* %s, since %s, %d restart%s by medic\n",
		slackEscape(in.ID), in.Since.UTC().Format(time.RFC3339), in.Restarts, plural(in.Restarts))
	if tl := in.Timeline; len(tl) > 0 {
		b.WriteString("*Timeline:*\n```")
		if len(tl) > slackTimelineMax {
			fmt.Fprintf(&b, "(%d earlier entries)\n", len(tl)-slackTimelineMax)
			tl = tl[len(tl)-slackTimelineMax:]
		}
		for i, e := range tl {
			if i > 0 {
				b.WriteByte('\n')
			}
			line := e.At.UTC().Format("2006-01-02 15:04:05Z") + " " + e.What
			if e.Detail != "" {
				line += ": " + e.Detail
			}
			b.WriteString(slackEscape(notify.OneLine(line)))
		}
		b.WriteString("```")
	}
	subject := m.Subject()
	return &SlackPayload{
		Text: slackEscape(subject),
		Attachments: []SlackAttachment{{
			Color:    slackColor(m.Kind),
			Fallback: slackEscape(subject),
			Text:     strings.TrimSuffix(b.String(), "\n"),
			MrkdwnIn: []string{"text"},
		}},
	}
}

// slackDigestMax is how many members a Slack digest lists.
const slackDigestMax = 50

// NewSlackDigestPayload returns the SlackPayload that a webhook with format
// "slack" sends for m, a message of kind notify.Digest: Text is the
// digest's subject, and one attachment lists one line per member (kind,
// unit, problem, cause, since), at most 50, colored "danger" when any
// member is firing or a reminder, else "good".
func NewSlackDigestPayload(m *notify.Message) *SlackPayload {
	var b strings.Builder
	color := "good"
	for i, d := range m.Digest {
		if i == slackDigestMax {
			fmt.Fprintf(&b, "(%d more)\n", len(m.Digest)-slackDigestMax)
			break
		}
		in := &d.Incident
		if d.Kind == notify.Firing || d.Kind == notify.Reminder {
			color = "danger"
		}
		what := in.Unit
		if what == "" {
			what = in.Check
		}
		line := fmt.Sprintf("*%s* %s: %s", strings.ToUpper(string(d.Kind)), slackEscape(notify.OneLine(what)), slackEscape(notify.OneLine(in.Problem)))
		if in.Cause != "" {
			line += " (cause: " + slackEscape(notify.OneLine(in.Cause)) + ")"
		}
		line += ", since " + in.Since.UTC().Format(time.RFC3339)
		b.WriteString(line + "\n")
	}
	subject := m.Subject()
	return &SlackPayload{
		Text: slackEscape(subject),
		Attachments: []SlackAttachment{{
			Color:    color,
			Fallback: slackEscape(subject),
			Text:     strings.TrimSuffix(b.String(), "\n"),
			MrkdwnIn: []string{"text"},
		}},
	}
}

// unitLine says the unit's state in one line, e.g. "my-app.service
// failed/failed, result exit-code, status 1, main PID 0".
func unitLine(in *notify.Incident) string {
	us := &in.UnitState
	s := in.Unit
	if us.ActiveState != "" {
		s += " " + us.ActiveState + "/" + us.SubState
	}
	if us.Result != "" {
		s += ", result " + us.Result
	}
	if us.ExecMainCode != 0 {
		s += fmt.Sprintf(", status %d", us.ExecMainStatus)
	}
	if us.MainPID != 0 {
		s += fmt.Sprintf(", main PID %d", us.MainPID)
	}
	return notify.OneLine(s)
}

func slackColor(k notify.Kind) string {
	switch k {
	case notify.Firing:
		return "danger"
	case notify.Reminder:
		return "warning"
	case notify.Resolved, notify.Recovered:
		return "good"
	}
	return "#439FE0"
}

// slackEscape escapes the three characters Slack's message formatting
// gives a meaning to.
var slackEscape = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
