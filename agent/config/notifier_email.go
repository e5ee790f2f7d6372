package config

import (
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/email"
)

// EmailNotifier is the table of an "email" notifier: it mails each message
// through an SMTP server.
type EmailNotifier struct {
	// Host is the SMTP server (required).
	Host string `toml:"host"`
	// Port is the SMTP port: default 587, or 465 when TLS is "tls".
	Port int `toml:"port"`
	// TLS is the SMTP transport security: "starttls" (default; required,
	// not opportunistic), "tls" (implicit TLS) or "none".
	TLS string `toml:"tls"`
	// Username is the SMTP AUTH user; no AUTH when empty.
	Username string `toml:"username"`
	// Password is the SMTP password written inline. Prefer PasswordFile or
	// PasswordCredential; at most one of the three.
	Password string `toml:"password"`
	// PasswordFile is an absolute path to a file holding the SMTP
	// password. Validate does not read it; ReadSecrets does, when medic
	// starts and in `medic check-config`.
	PasswordFile string `toml:"password_file"`
	// PasswordCredential names a systemd credential (LoadCredential=) in
	// $CREDENTIALS_DIRECTORY holding the SMTP password.
	PasswordCredential string `toml:"password_credential"`
	// CAFile is an absolute path to a PEM file of extra roots for
	// verifying the SMTP server's certificate, e.g. an internal CA; the
	// system roots are always trusted.
	CAFile string `toml:"ca_file"`
	// Auth is the SMTP AUTH mechanism: "auto" (default: the best the
	// server offers), "plain", "login" or "cram-md5".
	Auth string `toml:"auth"`
	// ConnectTimeout bounds connecting to the SMTP server (10s).
	ConnectTimeout Duration `toml:"connect_timeout"`
	// Timeout bounds one delivery attempt: the whole SMTP session (30s).
	Timeout Duration `toml:"timeout"`
	// From is the sender address (required).
	From string `toml:"from"`
	// To are the recipient addresses (at least one).
	To []string `toml:"to"`
}

// Defaults of email notifiers, for the keys left out or set to zero.
const (
	DefaultEmailTLS     = email.TLSStartTLS // EmailNotifier.TLS
	DefaultEmailPort    = 587               // EmailNotifier.Port with STARTTLS or none
	DefaultEmailTLSPort = 465               // EmailNotifier.Port with implicit TLS
	DefaultEmailAuth    = email.AuthAuto    // EmailNotifier.Auth
)

// Default timeouts of email notifiers.
var (
	DefaultEmailConnectTimeout = Duration{10 * time.Second} // EmailNotifier.ConnectTimeout
	DefaultEmailTimeout        = Duration{30 * time.Second} // EmailNotifier.Timeout
)

var emailKind = NotifierKind{New: func() NotifierSettings { return new(EmailNotifier) }}

func (n *EmailNotifier) defaults() {
	if n.TLS == "" {
		n.TLS = DefaultEmailTLS
	}
	if n.Port == 0 {
		n.Port = DefaultEmailPort
		if n.TLS == email.TLSImplicit {
			n.Port = DefaultEmailTLSPort
		}
	}
	if n.Auth == "" {
		n.Auth = DefaultEmailAuth
	}
	if n.ConnectTimeout.Duration == 0 {
		n.ConnectTimeout = DefaultEmailConnectTimeout
	}
	if n.Timeout.Duration == 0 {
		n.Timeout = DefaultEmailTimeout
	}
}

func (n *EmailNotifier) validate(v *validator, key string) {
	if n.Host == "" {
		v.errorf(key+".host", "missing SMTP host")
	} else if strings.ContainsAny(n.Host, ":/ ") {
		v.errorf(key+".host", "invalid SMTP host %q: a name or address without port (set port)", n.Host)
	}
	if n.Port < 0 || n.Port > 65535 {
		v.errorf(key+".port", "invalid port %d: want 1-65535", n.Port)
	}
	switch n.TLS {
	case "", email.TLSStartTLS, email.TLSImplicit, email.TLSNone:
	default:
		v.errorf(key+".tls", "invalid tls %q: want \"starttls\", \"tls\" or \"none\"", n.TLS)
	}
	secrets := 0
	for _, s := range []string{n.Password, n.PasswordFile, n.PasswordCredential} {
		if s != "" {
			secrets++
		}
	}
	if secrets > 1 {
		v.errorf(key+".password", "set only one of password, password_file and password_credential")
	}
	if secrets > 0 && n.Username == "" {
		v.errorf(key+".username", "missing username for the password")
	}
	v.absPath(key+".password_file", n.PasswordFile)
	v.credentialName(key+".password_credential", n.PasswordCredential)
	v.absPath(key+".ca_file", n.CAFile)
	switch n.Auth {
	case "", email.AuthAuto, email.AuthPlain, email.AuthLogin, email.AuthCramMD5:
	default:
		v.errorf(key+".auth", "invalid auth %q: want \"auto\", \"plain\", \"login\" or \"cram-md5\"", n.Auth)
	}
	v.notNegative(key+".connect_timeout", n.ConnectTimeout)
	v.notNegative(key+".timeout", n.Timeout)
	if n.From == "" {
		v.errorf(key+".from", "missing sender address")
	} else if _, err := mail.ParseAddress(n.From); err != nil {
		v.errorf(key+".from", "invalid address %q: %v", n.From, err)
	}
	if len(n.To) == 0 {
		v.errorf(key+".to", "missing recipients: want at least one address")
	}
	for i, to := range n.To {
		if _, err := mail.ParseAddress(to); err != nil {
			v.errorf(fmt.Sprintf("%s.to[%d]", key, i), "invalid address %q: %v", to, err)
		}
	}
}

func (n *EmailNotifier) inlineSecret() (key, instead string) {
	if n.Password == "" {
		return "", ""
	}
	return "password", "password_file or password_credential"
}

func (n *EmailNotifier) readFiles(v, noCreds *validator, key string) Secrets {
	var s Secrets
	s.Password, _, _ = v.secret(noCreds, key, n.Password, "password_file", n.PasswordFile, "password_credential", n.PasswordCredential)
	if n.CAFile != "" {
		s.RootCAs = v.certPool(key+".ca_file", n.CAFile)
	}
	return s
}

func (n *EmailNotifier) build(name string, sec Secrets, env NotifierEnv) (notify.Notifier, error) {
	return email.New(email.Config{
		Name:           name,
		Host:           n.Host,
		Port:           n.Port,
		TLS:            n.TLS,
		Username:       n.Username,
		Password:       sec.Password,
		Auth:           n.Auth,
		From:           n.From,
		To:             n.To,
		ConnectTimeout: n.ConnectTimeout.Duration,
		SendTimeout:    n.Timeout.Duration,
		Hostname:       env.Host,
		RootCAs:        sec.RootCAs,
	})
}
