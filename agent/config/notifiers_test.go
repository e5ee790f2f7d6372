package config

import (
	"reflect"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap/zaptest"
)

// TestNotifierKeysOfTheKind: a [[notifier]] table may set the common keys
// and its kind's; another kind's key says which kinds read it, an unknown
// key suggests the nearest of the kind's, and an unknown type lists the
// known ones.
func TestNotifierKeysOfTheKind(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []string
	}{
		{"another kind's key", "[[notifier]]\nname = \"l\"\ntype = \"log\"\nhost = \"smtp.example.com\"\n",
			[]string{`m.toml:4: notifier[0].host: not used by a log notifier (only by email)`}},
		{"a key of two other kinds", "[[notifier]]\nname = \"e\"\ntype = \"email\"\nhost = \"h\"\nfrom = \"m@example.com\"\nto = [\"o@example.com\"]\nurl = \"http://x/\"\n",
			[]string{`m.toml:7: notifier[0].url: not used by an email notifier (only by alertmanager, webhook)`}},
		{"misspelt key", "[[notifier]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"http://x/\"\nformt = \"slack\"\n",
			[]string{`m.toml:5: notifier[0].formt: unknown key; did you mean "format"?`}},
		{"unknown type", "[[notifier]]\nname = \"p\"\ntype = \"pager\"\nhost = \"h\"\n",
			[]string{`m.toml:3: notifier[0].type: unknown notifier type "pager": want "alertmanager", "email", "log" or "webhook"`}},
		{"missing type", "[[notifier]]\nname = \"p\"\n",
			[]string{`m.toml:1: notifier[0].type: missing notifier type: want "alertmanager", "email", "log" or "webhook"`}},
		{"second table", "[[notifier]]\nname = \"l\"\ntype = \"log\"\n\n[[notifier]]\nname = \"a\"\ntype = \"alertmanager\"\nurl = \"http://x/\"\nformat = \"json\"\n",
			[]string{`m.toml:9: notifier[1].format: not used by an alertmanager notifier (only by webhook)`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := problems(t, tt.text); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}

// TestNotifierRegistry: every kind has its own table, and Build makes a
// notifier of every kind from its defaults.
func TestNotifierRegistry(t *testing.T) {
	if got, want := NotifierTypes(), []NotifierType{NotifierAlertmanager, NotifierEmail, NotifierLog, NotifierWebhook}; !slices.Equal(got, want) {
		t.Errorf("NotifierTypes() = %q, want %q", got, want)
	}
	for _, typ := range NotifierTypes() {
		s := notifierKinds[typ].New()
		if reflect.TypeOf(s).Kind() != reflect.Pointer {
			t.Errorf("%s: New() = %T, want a pointer to the kind's table", typ, s)
		}
		for _, k := range tomlKeys(s) {
			if slices.Contains(tomlKeys(Notifier{}), k) {
				t.Errorf("%s: key %q is also a common key", typ, k)
			}
		}
	}
	src := `[[notifier]]
name = "log"
type = "log"

[[notifier]]
name = "mail"
type = "email"
host = "smtp.example.com"
from = "medic@example.com"
to = ["ops@example.com"]

[[notifier]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9/hook"

[[notifier]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093"
`
	cfg, err := Parse([]byte(src), "m.toml")
	if err != nil {
		t.Fatal(err)
	}
	secrets, err := cfg.ReadSecrets()
	if err != nil {
		t.Fatal(err)
	}
	for i, nc := range cfg.Notifiers {
		n, err := nc.Build(secrets[i], NotifierEnv{Host: "web1", Log: zaptest.NewLogger(t)})
		if err != nil || n.Name() != nc.Name {
			t.Errorf("Build(%s) = %v, %v; want a notifier named %s", nc.Type, n, err, nc.Name)
		}
	}
	if _, err := (&Notifier{Name: "x", Type: "pager"}).Build(Secrets{}, NotifierEnv{}); err == nil {
		t.Error("Build of an unknown type succeeded")
	}
	// A Notifier built in code without Settings gets its kind's defaults.
	if _, err := (&Notifier{Name: "x", Type: NotifierLog}).Build(Secrets{}, NotifierEnv{}); err != nil {
		t.Errorf("Build of a log notifier without Settings: %v", err)
	}
}

// digest parses per notifier; it is off by default.
func TestNotifierDigest(t *testing.T) {
	src := `[[notifier]]
name = "ops-email"
type = "email"
host = "smtp.example.com"
from = "medic@example.com"
to = ["ops@example.com"]
digest = "30s"

[[notifier]]
name = "log"
type = "log"
`
	cfg, err := Parse([]byte(src), "digest.toml")
	if err != nil {
		t.Fatalf("Parse: %v", err)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := cfg.Notifiers[0].Digest.Duration; got != 30*time.Second {
		t.Errorf("email digest = %s, want 30s", got)
	}
	if got := cfg.Notifiers[1].Digest.Duration; got != 0 {
		t.Errorf("log digest = %s, want the default 0 (off)", got)
	}
}

// TestNotifierDefaults: each kind fills the keys left out with its defaults.
func TestNotifierDefaults(t *testing.T) {
	src := `[[notifier]]
name = "smtps"
type = "email"
host = "smtp.example.com"
tls = "tls"
username = "u"
password_credential = "smtp-password"
from = "Medic <medic@example.com>"
to = ["a@example.com", "b@example.com"]

[[notifier]]
name = "plain"
type = "email"
host = "localhost"
from = "medic@example.com"
to = ["root@localhost"]

[[notifier]]
name = "hook"
type = "webhook"
url = "http://127.0.0.1:9000/hook"

[[notifier]]
name = "am"
type = "alertmanager"
url = "http://127.0.0.1:9093"
`
	cfg, err := Parse([]byte(src), "")
	if err != nil {
		t.Fatal(err)
	}
	smtps, plain := cfg.Notifiers[0].Settings.(*EmailNotifier), cfg.Notifiers[1].Settings.(*EmailNotifier)
	if smtps.Port != 465 || smtps.TLS != "tls" {
		t.Errorf("implicit TLS: port %d tls %q, want 465 tls", smtps.Port, smtps.TLS)
	}
	if plain.Port != 587 || plain.TLS != "starttls" {
		t.Errorf("defaults: port %d tls %q, want 587 starttls", plain.Port, plain.TLS)
	}
	if hook := cfg.Notifiers[2].Settings.(*WebhookNotifier); hook.Format != "json" {
		t.Errorf("webhook format %q, want json", hook.Format)
	}
	if hook := cfg.Notifiers[2].Settings.(*WebhookNotifier); hook.Timeout != DefaultHTTPTimeout {
		t.Errorf("webhook timeout %s, want %s", hook.Timeout, DefaultHTTPTimeout)
	}
	if am := cfg.Notifiers[3].Settings.(*AlertmanagerNotifier); am.Severity != DefaultSeverity || am.ResendInterval != DefaultResendInterval || am.Timeout != DefaultHTTPTimeout {
		t.Errorf("alertmanager = %+v, want severity %q, resend_interval %s, timeout %s", am, DefaultSeverity, DefaultResendInterval, DefaultHTTPTimeout)
	}
}
