package config

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/alertmanager"
)

// AlertmanagerNotifier is the table of an "alertmanager" notifier: it
// posts incidents as alerts to every Alertmanager of a cluster and keeps
// them alive while they fire.
type AlertmanagerNotifier struct {
	// URL is the base URL of an Alertmanager (required), e.g.
	// "http://127.0.0.1:9093".
	URL string `toml:"url"`
	// URLs are more Alertmanager base URLs: medic posts to every one of
	// URL and URLs directly, as Alertmanager's HA docs ask.
	URLs []string `toml:"urls"`
	// ResendInterval is how often firing alerts are posted again so they
	// do not expire (1m).
	ResendInterval Duration `toml:"resend_interval"`
	// Severity is the severity label of firing alerts ("critical").
	Severity string `toml:"severity"`
	// Timeout bounds one HTTP request (10s).
	Timeout Duration `toml:"timeout"`
}

// Defaults of alertmanager notifiers (and DefaultHTTPTimeout).
const DefaultSeverity = "critical" // AlertmanagerNotifier.Severity

// DefaultResendInterval is AlertmanagerNotifier.ResendInterval when left
// out.
var DefaultResendInterval = Duration{time.Minute}

var alertmanagerKind = NotifierKind{
	New:      func() NotifierSettings { return new(AlertmanagerNotifier) },
	NoDigest: "not used by an alertmanager notifier: Alertmanager groups alerts itself (group_by, group_wait in its route)",
}

func (n *AlertmanagerNotifier) defaults() {
	if n.Timeout.Duration == 0 {
		n.Timeout = DefaultHTTPTimeout
	}
	if n.ResendInterval.Duration == 0 {
		n.ResendInterval = DefaultResendInterval
	}
	if n.Severity == "" {
		n.Severity = DefaultSeverity
	}
}

func (n *AlertmanagerNotifier) validate(v *validator, key string) {
	v.httpURL(key+".url", n.URL)
	for i, u := range n.URLs {
		v.httpURL(fmt.Sprintf("%s.urls[%d]", key, i), u)
	}
	v.notNegative(key+".timeout", n.Timeout)
	v.notNegative(key+".resend_interval", n.ResendInterval)
}

func (*AlertmanagerNotifier) inlineSecret() (key, instead string)         { return "", "" }
func (*AlertmanagerNotifier) readFiles(_, _ *validator, _ string) Secrets { return Secrets{} }

func (n *AlertmanagerNotifier) build(name string, _ Secrets, env NotifierEnv) (notify.Notifier, error) {
	return alertmanager.New(alertmanager.Config{
		Name:           name,
		URLs:           append([]string{n.URL}, n.URLs...),
		ResendInterval: n.ResendInterval.Duration,
		Timeout:        n.Timeout.Duration,
		Severity:       n.Severity,
	}, env.Log.Named("alertmanager").With(zap.String("notifier", name)))
}
