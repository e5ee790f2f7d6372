package notify

import (
	"context"

	"go.uber.org/zap"
)

// Log is a notifier that writes each message as one structured log line at
// warn level (info for resolved, recovered and test messages). The
// message's own ID is in the "notification_id" field (NOTIFICATION_ID in
// the journal, as on the agent's "incident firing" line), never in the
// journal's MESSAGE_ID: that one names kinds of event (logging.Field) and
// is set by the agent when it opens or resolves the incident, so a
// delivery does not count as a second event. A digest is written as one
// line per member, each with a "digest" field holding the digest's ID. It
// never fails.
type Log struct {
	name string
	log  *zap.Logger
}

var _ Notifier = (*Log)(nil)

// IDField is the log field that carries a message's own ID
// ("<incident>.<seq>") in medic's log lines.
const IDField = "notification_id"

// NewLog returns a Log notifier called name that writes to log.
func NewLog(name string, log *zap.Logger) *Log {
	return &Log{name: name, log: log.With(zap.String("notifier", name))}
}

// Name returns the notifier's name.
func (l *Log) Name() string { return l.name }

// Notify logs m. It always returns (false, nil).
func (l *Log) Notify(_ context.Context, m *Message) (bool, error) {
	if m.Kind == Digest {
		for _, d := range m.Digest {
			l.logOne(d, zap.String("digest", m.ID))
		}
		return false, nil
	}
	l.logOne(m)
	return false, nil
}

func (l *Log) logOne(m *Message, extra ...zap.Field) {
	in := &m.Incident
	fields := []zap.Field{
		zap.String("kind", string(m.Kind)),
		zap.String("event", string(m.Event)),
		zap.String(IDField, m.ID),
		zap.String("incident", in.ID),
		zap.String("check", in.Check),
		zap.String("unit", in.Unit),
		zap.String("problem", in.Problem),
		zap.Time("since", in.Since),
		zap.Int("restarts", in.Restarts),
		zap.String("active_state", in.UnitState.ActiveState),
		zap.String("result", in.UnitState.Result),
	}
	if in.Cause != "" {
		fields = append(fields, zap.String("cause", in.Cause))
	}
	fields = append(fields, extra...)
	if m.Kind == Firing || m.Kind == Reminder {
		l.log.Warn(m.Subject(), fields...)
	} else {
		l.log.Info(m.Subject(), fields...)
	}
}
