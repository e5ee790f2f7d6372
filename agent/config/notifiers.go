package config

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/BurntSushi/toml"
	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/notify"
)

// NotifierType is the type key of a [[notifier]] table: which kind of
// notifier it is.
type NotifierType string

// The notifier types; notifierKinds maps each to its kind.
const (
	NotifierLog          NotifierType = "log"
	NotifierEmail        NotifierType = "email"
	NotifierWebhook      NotifierType = "webhook"
	NotifierAlertmanager NotifierType = "alertmanager"
)

// Notifier is one [[notifier]] table: the keys every kind has, and in
// Settings the keys of its kind.
type Notifier struct {
	// Name is what checks' escalate.notify refers to; required, unique,
	// made of letters, digits, '.', '_' and '-'.
	Name string `toml:"name"`
	// Type is "log", "email", "webhook" or "alertmanager": it selects the
	// kind, whose keys the table may set besides these.
	Type NotifierType `toml:"type"`
	// Digest groups messages (log, email, webhook; default 0, off): when
	// more than 0, the messages that become pending within this window
	// after the oldest waiting one are delivered as one digest (at most
	// 100). Not for alertmanager, which groups alerts itself.
	Digest Duration `toml:"digest"`
	// Settings are the keys of the kind, with its defaults applied:
	// *LogNotifier, *EmailNotifier, *WebhookNotifier or
	// *AlertmanagerNotifier. nil when Type names no kind.
	Settings NotifierSettings `toml:"-"`
}

// NotifierSettings is the table of one kind of notifier: the keys of a
// [[notifier]] table that only that kind reads. The implementations are
// this package's *LogNotifier, *EmailNotifier, *WebhookNotifier and
// *AlertmanagerNotifier.
type NotifierSettings interface {
	// defaults sets the keys the file left out (or set to zero) to their
	// defaults; a default may depend on another key.
	defaults()
	// validate reports every problem of the table at key ("notifier[0]")
	// to v. It touches no file.
	validate(v *validator, key string)
	// inlineSecret returns the key of a secret written in the file itself
	// and the keys that read it from elsewhere instead, or "" when the
	// table has none.
	inlineSecret() (key, instead string)
	// readFiles reads the secret and certificate files the table names,
	// reporting problems to v and, for a credential while
	// $CREDENTIALS_DIRECTORY is not set, to noCreds.
	readFiles(v, noCreds *validator, key string) Secrets
	// build returns the notifier named name, of these settings.
	build(name string, sec Secrets, env NotifierEnv) (notify.Notifier, error)
}

// NotifierKind is one kind of notifier.
type NotifierKind struct {
	// New returns the kind's empty table, to decode a [[notifier]] into.
	New func() NotifierSettings
	// NoDigest, when not "", is the problem with a digest key on a
	// notifier of this kind: it groups messages by other means.
	NoDigest string
}

// notifierKinds is the registry of notifier kinds, by type key. Each kind
// lives in its own file (notifier_<type>.go) with its table, defaults,
// validation, files and constructor.
var notifierKinds = map[NotifierType]NotifierKind{
	NotifierLog:          logKind,
	NotifierEmail:        emailKind,
	NotifierWebhook:      webhookKind,
	NotifierAlertmanager: alertmanagerKind,
}

// NotifierTypes returns the known notifier types, sorted.
func NotifierTypes() []NotifierType {
	return slices.Sorted(maps.Keys(notifierKinds))
}

// NotifierEnv is what building a notifier takes besides its table and its
// secrets.
type NotifierEnv struct {
	// Host is the name of this machine, as messages show it.
	Host string
	// Log is the logger of notifiers that log (log, alertmanager).
	Log *zap.Logger
}

// Build returns the notifier n describes, with the secrets read for it
// (Config.ReadSecrets). It fails for a type no kind has, and as the kind's
// constructor fails (a configuration Validate accepts passes).
func (n *Notifier) Build(sec Secrets, env NotifierEnv) (notify.Notifier, error) {
	s, err := n.settings()
	if err != nil {
		return nil, err
	}
	if env.Log == nil {
		env.Log = zap.NewNop()
	}
	return s.build(n.Name, sec, env)
}

// settings returns n.Settings or, for a Notifier built in code without
// them, the defaults of its kind.
func (n *Notifier) settings() (NotifierSettings, error) {
	if n.Settings != nil {
		return n.Settings, nil
	}
	kind, ok := notifierKinds[n.Type]
	if !ok {
		return nil, fmt.Errorf("unknown notifier type %q: want %s", n.Type, knownNotifierTypes())
	}
	s := kind.New()
	s.defaults()
	return s, nil
}

// knownNotifierTypes lists the types for errors: `"a", "b" or "c"`.
func knownNotifierTypes() string { return alternatives(NotifierTypes()) }

// notifier decodes the [[notifier]] table p at key ("notifier[0]"): the
// common keys, then the keys of its kind with their defaults. A key the
// kind does not read is recorded in d.unknown; nothing is checked beyond
// the type for a table whose type names no kind (validation reports it).
// ok is false after a value of the wrong type, recorded in d.errs.
func (d *decoder) notifier(md toml.MetaData, key string, p toml.Primitive) (n Notifier, ok bool) {
	if err := md.PrimitiveDecode(p, &n); err != nil {
		d.decodeError(key, err)
		return n, false
	}
	// Decoding into a map marks every key of the table as decoded, so that
	// the unknown keys of notifiers are found here, per kind, and not by
	// Undecoded.
	var set map[string]any
	if err := md.PrimitiveDecode(p, &set); err != nil {
		d.decodeError(key, err) // not reached: a table decodes into a map
		return n, false
	}
	kind, known := notifierKinds[n.Type]
	if !known {
		return n, true
	}
	s := kind.New()
	if err := md.PrimitiveDecode(p, s); err != nil {
		d.decodeError(key, err)
		return n, false
	}
	s.defaults()
	n.Settings = s
	own := append(tomlKeys(n), tomlKeys(s)...)
	for _, k := range slices.Sorted(maps.Keys(set)) {
		if slices.Contains(own, k) {
			continue
		}
		msg := "unknown key"
		if others := kindsWithKey(k); len(others) > 0 {
			msg = fmt.Sprintf("not used by %s notifier (only by %s)", withArticle(string(n.Type)), strings.Join(others, ", "))
		} else if s := closest(k, own); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		k = key + "." + k
		d.unknown = append(d.unknown, &Error{File: d.file, Line: d.loc.line(k), Key: k, Msg: msg})
	}
	return n, true
}

// kindsWithKey returns the types of the kinds whose table has key, sorted.
func kindsWithKey(key string) []string {
	var out []string
	for _, t := range NotifierTypes() {
		if slices.Contains(tomlKeys(notifierKinds[t].New()), key) {
			out = append(out, string(t))
		}
	}
	return out
}

// notifierKeys returns every key a [[notifier]] table may have, of any
// kind, sorted.
func notifierKeys() []string {
	keys := tomlKeys(Notifier{})
	for _, kind := range notifierKinds {
		keys = append(keys, tomlKeys(kind.New())...)
	}
	slices.Sort(keys)
	return slices.Compact(keys)
}

// withArticle returns "a log" or "an email".
func withArticle(word string) string {
	if word != "" && strings.ContainsRune("aeiou", rune(word[0])) {
		return "an " + word
	}
	return "a " + word
}

// notifier validates the [[notifier]] table n at key: its name, type and
// digest, and the keys of its kind.
func (v *validator) notifier(key string, n *Notifier) {
	v.name(key+".name", "notifier", n.Name)
	kind, ok := notifierKinds[n.Type]
	switch {
	case n.Type == "":
		v.errorf(key+".type", "missing notifier type: want %s", knownNotifierTypes())
		return
	case !ok:
		v.errorf(key+".type", "unknown notifier type %q: want %s", n.Type, knownNotifierTypes())
		return
	}
	switch {
	case kind.NoDigest == "":
		v.notNegative(key+".digest", n.Digest)
	case n.Digest.Duration != 0:
		v.errorf(key+".digest", "%s", kind.NoDigest)
	}
	s, _ := n.settings()
	s.validate(v, key)
}
