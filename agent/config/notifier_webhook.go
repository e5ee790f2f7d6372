package config

import (
	"maps"
	"slices"
	"time"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/webhook"
)

// WebhookNotifier is the table of a "webhook" notifier: it POSTs each
// message to an HTTP(S) endpoint, as JSON (docs/webhook.md) or as a Slack
// message, signed per the Standard Webhooks spec.
type WebhookNotifier struct {
	// URL is the http(s) endpoint (required).
	URL string `toml:"url"`
	// SecretFile is an absolute path to the HMAC-SHA256 signing secret
	// (optional), per the Standard Webhooks spec: "whsec_" and base64, or
	// the raw secret. Read at start-up (ReadSecrets).
	SecretFile string `toml:"secret_file"`
	// SecretCredential names a systemd credential in
	// $CREDENTIALS_DIRECTORY holding the signing secret.
	SecretCredential string `toml:"secret_credential"`
	// Format is the body: "json" (default) or "slack".
	Format webhook.Format `toml:"format"`
	// Timeout bounds one HTTP request (10s).
	Timeout Duration `toml:"timeout"`
	// Headers are extra HTTP request headers, e.g. an Authorization
	// header the receiver wants.
	Headers map[string]string `toml:"headers"`
}

// DefaultWebhookFormat is WebhookNotifier.Format when left out.
const DefaultWebhookFormat = webhook.FormatJSON

// DefaultHTTPTimeout is the Timeout of webhook and alertmanager notifiers
// when left out.
var DefaultHTTPTimeout = Duration{10 * time.Second}

var webhookKind = NotifierKind{New: func() NotifierSettings { return new(WebhookNotifier) }}

func (n *WebhookNotifier) defaults() {
	if n.Format == "" {
		n.Format = DefaultWebhookFormat
	}
	if n.Timeout.Duration == 0 {
		n.Timeout = DefaultHTTPTimeout
	}
}

func (n *WebhookNotifier) validate(v *validator, key string) {
	v.httpURL(key+".url", n.URL)
	v.absPath(key+".secret_file", n.SecretFile)
	if n.SecretFile != "" && n.SecretCredential != "" {
		v.errorf(key+".secret_file", "set only one of secret_file and secret_credential")
	}
	v.credentialName(key+".secret_credential", n.SecretCredential)
	switch n.Format {
	case "", webhook.FormatJSON, webhook.FormatSlack:
	default:
		v.errorf(key+".format", "invalid format %q: want \"json\" or \"slack\"", n.Format)
	}
	v.notNegative(key+".timeout", n.Timeout)
	for _, name := range slices.Sorted(maps.Keys(n.Headers)) {
		if err := webhook.CheckHeader(name, n.Headers[name]); err != nil {
			v.errorf(key+".headers", "%v", err)
		}
	}
}

func (*WebhookNotifier) inlineSecret() (key, instead string) { return "", "" }

func (n *WebhookNotifier) readFiles(v, noCreds *validator, key string) Secrets {
	s, k, ok := v.secret(noCreds, key, "", "secret_file", n.SecretFile, "secret_credential", n.SecretCredential)
	if k == "" || !ok {
		return Secrets{}
	}
	sk, err := webhook.ParseSecret(s)
	if err != nil {
		v.add(key+"."+k, err)
	}
	return Secrets{SigningKey: sk}
}

func (n *WebhookNotifier) build(name string, sec Secrets, _ NotifierEnv) (notify.Notifier, error) {
	return webhook.New(webhook.Config{
		Name:    name,
		URL:     n.URL,
		Secret:  sec.SigningKey,
		Format:  n.Format,
		Timeout: n.Timeout.Duration,
		Headers: n.Headers,
	})
}
