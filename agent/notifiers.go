package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"reflect"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/notify"
)

// BuildNotifiers builds one notifier per [[notifier]] of cfg, in file order.
// It reads the secrets the notifiers name (password_file, secret_file, or a
// systemd credential from $CREDENTIALS_DIRECTORY) with cfg.ReadSecrets, as
// `medic check-config` does, and fails with its config.Errors, naming every
// key and file that is wrong, when one cannot be used. Secrets never
// appear in errors. Notifiers that need a background loop (alertmanager's
// resends) implement Runner; the caller starts it.
//
// A notifier with digest > 0 is wrapped by notify.WithDigest, so it
// implements notify.Digester and the outbox delivers its messages as
// digests; nothing else is needed from the caller. Alertmanager notifiers
// are never wrapped (validation rejects digest for them), so they keep
// implementing Runner.
func BuildNotifiers(cfg *config.Config, host string, log *zap.Logger) ([]notify.Notifier, error) {
	set, err := BuildNotifierSet(cfg, host, log, nil)
	if err != nil {
		return nil, err
	}
	return set.Notifiers(), nil
}

// NotifierSet is the notifiers built from one configuration, remembered
// with the [[notifier]] table and secrets each was built from, so that a
// reload rebuilds only the notifiers that changed (an unchanged
// alertmanager notifier keeps its alerts and its resend loop).
type NotifierSet struct {
	built []builtNotifier
}

type builtNotifier struct {
	conf config.Notifier
	sec  config.Secrets
	n    notify.Notifier
}

// BuildNotifierSet builds the notifiers of cfg as BuildNotifiers does,
// taking from prev (nil for none) each notifier whose [[notifier]] table
// and secrets did not change. It fails as BuildNotifiers does, and then
// nothing of prev is changed or stopped.
func BuildNotifierSet(cfg *config.Config, host string, log *zap.Logger, prev *NotifierSet) (*NotifierSet, error) {
	secrets, err := cfg.ReadSecrets()
	if err != nil {
		return nil, err
	}
	set := &NotifierSet{built: make([]builtNotifier, 0, len(cfg.Notifiers))}
	var errs []error
	for i, nc := range cfg.Notifiers {
		if b, ok := prev.find(nc, secrets[i]); ok {
			set.built = append(set.built, b)
			continue
		}
		n, err := nc.Build(secrets[i], config.NotifierEnv{Host: host, Log: log})
		if err != nil {
			errs = append(errs, fmt.Errorf("notifier[%d] %q: %w", i, nc.Name, err))
			continue
		}
		if _, runs := n.(Runner); !runs {
			n = notify.WithDigest(n, nc.Digest.Duration)
		}
		set.built = append(set.built, builtNotifier{conf: nc, sec: secrets[i], n: n})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return set, nil
}

// Notifiers returns the notifiers of s, in file order.
func (s *NotifierSet) Notifiers() []notify.Notifier {
	if s == nil {
		return nil
	}
	out := make([]notify.Notifier, len(s.built))
	for i, b := range s.built {
		out[i] = b.n
	}
	return out
}

// find returns the notifier of s built from exactly nc and sec.
func (s *NotifierSet) find(nc config.Notifier, sec config.Secrets) (builtNotifier, bool) {
	if s == nil {
		return builtNotifier{}, false
	}
	for _, b := range s.built {
		if reflect.DeepEqual(b.conf, nc) && sameSecrets(b.sec, sec) {
			return b, true
		}
	}
	return builtNotifier{}, false
}

func sameSecrets(a, b config.Secrets) bool {
	if a.Password != b.Password || !bytes.Equal(a.SigningKey, b.SigningKey) {
		return false
	}
	if a.RootCAs == nil || b.RootCAs == nil {
		return a.RootCAs == b.RootCAs
	}
	return a.RootCAs.Equal(b.RootCAs)
}

// Runner is a notifier with a background loop, run until ctx ends.
type Runner interface {
	Run(ctx context.Context)
}
