package agent

import (
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/history"
)

// openHistory returns the incident history of stateDir; its record files
// found unreadable are moved aside and logged, like a check's state file.
func openHistory(stateDir string, log *zap.Logger) *history.Store {
	return history.Open(history.Dir(stateDir), func(msg, file string, err error) {
		log.Error(msg, zap.String("file", file), zap.Error(err))
	})
}

// recordIncident counts an incident that ended (resolved, or medic gave up
// on it) in the metrics and keeps it in the incident history, bounded by
// [agent] incident_history and incident_retention of the configuration in
// force. It runs on the check's runner, inline: one small file written and
// synced (about a millisecond on a local disk, see history's tests), once
// per incident end, and written before the runner saves the check's state
// without the incident, so that SIGKILL in between cannot lose it (the
// incident, restored, ends again and is written again under its ID). A
// failure is logged: medic keeps working without it.
func (a *Agent) recordIncident(r history.Record) {
	a.observer.ObserveIncident(r.Check, string(r.Outcome), r.TimeToRecovery())
	cfg := a.config().Agent
	l := history.Limits{Max: cfg.IncidentHistory, MaxAge: cfg.IncidentRetention.Duration}
	start := time.Now()
	if err := a.history.Put(r, l, a.now()); err != nil {
		a.log.Warn("cannot keep the incident in the history", zap.String("check", r.Check),
			zap.String("incident", r.ID), zap.Error(err))
		return
	}
	a.log.Debug("incident kept in the history", zap.String("check", r.Check), zap.String("incident", r.ID),
		zap.String("outcome", string(r.Outcome)), zap.Duration("write", time.Since(start)))
}
