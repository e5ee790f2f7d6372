package agent

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"go.uber.org/zap"

	"github.com/medic-watchdog/medic/agent/config"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/alertmanager"
	"github.com/medic-watchdog/medic/notify/email"
	"github.com/medic-watchdog/medic/notify/webhook"
)

// BuildNotifiers builds one notifier per [[notifier]] of cfg, in file order.
// It reads the secrets the notifiers name (password_file, secret_file, or a
// systemd credential from $CREDENTIALS_DIRECTORY) and fails, naming every
// notifier and file that is wrong, when one cannot be read. Secrets never
// appear in errors. Notifiers that need a background loop (alertmanager's
// resends) implement Runner; the caller starts it.
//
// A notifier with digest > 0 is wrapped by notify.WithDigest, so it
// implements notify.Digester and the outbox delivers its messages as
// digests; nothing else is needed from the caller. Alertmanager notifiers
// are never wrapped (validation rejects digest for them), so they keep
// implementing Runner.
func BuildNotifiers(cfg *config.Config, host string, log *zap.Logger) ([]notify.Notifier, error) {
	out := make([]notify.Notifier, 0, len(cfg.Notifiers))
	var errs []error
	for i, nc := range cfg.Notifiers {
		n, err := buildNotifier(nc, host, log)
		if err != nil {
			errs = append(errs, fmt.Errorf("notifier[%d] %q: %w", i, nc.Name, err))
			continue
		}
		if _, runs := n.(Runner); !runs {
			n = notify.WithDigest(n, nc.Digest.Duration)
		}
		out = append(out, n)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Runner is a notifier with a background loop, run until ctx ends.
type Runner interface {
	Run(ctx context.Context)
}

func buildNotifier(nc config.Notifier, host string, log *zap.Logger) (notify.Notifier, error) {
	switch nc.Type {
	case "log":
		return notify.NewLog(nc.Name, log), nil
	case "email":
		password, err := secret(nc.Password, nc.PasswordFile, nc.PasswordCredential)
		if err != nil {
			return nil, err
		}
		var roots *x509.CertPool
		if nc.CAFile != "" {
			pem, err := os.ReadFile(nc.CAFile)
			if err != nil {
				return nil, fmt.Errorf("read ca_file: %w", err)
			}
			if roots, err = x509.SystemCertPool(); err != nil {
				roots = x509.NewCertPool()
			}
			if !roots.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("read ca_file %s: no PEM certificate in it", nc.CAFile)
			}
		}
		return email.New(email.Config{
			Name:           nc.Name,
			Host:           nc.Host,
			Port:           nc.Port,
			TLS:            nc.TLS,
			Username:       nc.Username,
			Password:       password,
			Auth:           nc.Auth,
			From:           nc.From,
			To:             nc.To,
			ConnectTimeout: nc.ConnectTimeout.Duration,
			SendTimeout:    nc.Timeout.Duration,
			Hostname:       host,
			RootCAs:        roots,
		})
	case "webhook":
		var key []byte
		if nc.SecretFile != "" || nc.SecretCredential != "" {
			s, err := secret("", nc.SecretFile, nc.SecretCredential)
			if err != nil {
				return nil, err
			}
			if key, err = webhook.ParseSecret(s); err != nil {
				return nil, err
			}
		}
		return webhook.New(webhook.Config{
			Name:    nc.Name,
			URL:     nc.URL,
			Secret:  key,
			Format:  nc.Format,
			Timeout: nc.Timeout.Duration,
			Headers: nc.Headers,
		})
	case "alertmanager":
		return alertmanager.New(alertmanager.Config{
			Name:           nc.Name,
			URLs:           append([]string{nc.URL}, nc.URLs...),
			ResendInterval: nc.ResendInterval.Duration,
			Timeout:        nc.Timeout.Duration,
			Severity:       nc.Severity,
		}, log.Named("alertmanager").With(zap.String("notifier", nc.Name)))
	}
	return nil, fmt.Errorf("unknown notifier type %q", nc.Type)
}

// secret returns the inline value, or the content of file, or of the
// systemd credential named credential in $CREDENTIALS_DIRECTORY
// (systemd.exec(5), LoadCredential=), without a trailing newline.
func secret(inline, file, credential string) (string, error) {
	switch {
	case inline != "":
		return inline, nil
	case credential != "":
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return "", fmt.Errorf("read credential %q: $CREDENTIALS_DIRECTORY is not set (add LoadCredential=%s:... to medic.service)", credential, credential)
		}
		file = filepath.Join(dir, credential)
	case file == "":
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}
