package agent

import (
	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/notify"
)

// BuildNotifiers builds one notifier per [[notifier]] of cfg, keyed by name.
// Only the "log" kind delivers in this version; the email, webhook and
// alertmanager kinds are accepted by the configuration and, until they are
// implemented, deliver to the log with a warning at start-up so that no event
// is silently dropped.
func BuildNotifiers(cfg *config.Config, log *zap.Logger) map[string]notify.Notifier {
	out := make(map[string]notify.Notifier, len(cfg.Notifiers))
	for _, nc := range cfg.Notifiers {
		if nc.Type != "log" {
			log.Warn("notifier kind not implemented yet; its events go to the log",
				zap.String("notifier", nc.Name), zap.String("type", nc.Type))
		}
		out[nc.Name] = notify.NewLog(nc.Name, log)
	}
	return out
}
