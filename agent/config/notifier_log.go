package config

import "github.com/medic-watchdog/medic/notify"

// LogNotifier is the table of a "log" notifier: it writes each message to
// medic's own log (the journal under systemd) and has no keys of its own.
type LogNotifier struct{}

var logKind = NotifierKind{New: func() NotifierSettings { return new(LogNotifier) }}

func (*LogNotifier) defaults()                                   {}
func (*LogNotifier) validate(*validator, string)                 {}
func (*LogNotifier) inlineSecret() (key, instead string)         { return "", "" }
func (*LogNotifier) readFiles(_, _ *validator, _ string) Secrets { return Secrets{} }

func (*LogNotifier) build(name string, _ Secrets, env NotifierEnv) (notify.Notifier, error) {
	return notify.NewLog(name, env.Log), nil
}
