package notify

import (
	"context"

	"go.uber.org/zap"
)

// Log is a notifier that writes each event as one structured log line at
// warn level (info for resolved and recovered events). It never fails.
type Log struct {
	name string
	log  *zap.Logger
}

var _ Notifier = (*Log)(nil)

// NewLog returns a Log notifier called name that writes to log.
func NewLog(name string, log *zap.Logger) *Log {
	return &Log{name: name, log: log.With(zap.String("notifier", name))}
}

// Name returns the notifier's name.
func (l *Log) Name() string { return l.name }

// Notify logs ev. It always returns (false, nil).
func (l *Log) Notify(_ context.Context, ev Event) (bool, error) {
	fields := []zap.Field{
		zap.String("event", string(ev.Kind)),
		zap.String("incident", ev.IncidentID),
		zap.String("check", ev.Check),
		zap.String("unit", ev.Unit),
		zap.String("host", ev.Host),
		zap.String("state", ev.State),
		zap.String("reason", ev.Reason),
		zap.Time("since", ev.Since),
		zap.Int("attempts", ev.Attempts),
	}
	if ev.Kind == Firing {
		l.log.Warn("incident firing", fields...)
	} else {
		l.log.Info("incident "+string(ev.Kind), fields...)
	}
	return false, nil
}
