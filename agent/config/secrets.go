package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/medic-watchdog/medic/probe"
)

// errNoCredentialsDirectory: a credential is named but
// $CREDENTIALS_DIRECTORY is not set. systemd sets it for a service with
// LoadCredential=, so `medic run` under medic.service has it; a shell that
// runs `medic check-config` usually does not.
var errNoCredentialsDirectory = errors.New("$CREDENTIALS_DIRECTORY is not set")

// Secrets is what one [[notifier]] reads from files when medic starts.
type Secrets struct {
	// Password is the SMTP password (email), from password,
	// password_file or password_credential without a trailing newline;
	// "" when none is set.
	Password string
	// RootCAs are the system roots plus the certificates of ca_file
	// (email); nil when ca_file is not set.
	RootCAs *x509.CertPool
	// SigningKey is the webhook's HMAC key, read from secret_file or
	// secret_credential and decoded by webhook.ParseSecret; nil when
	// neither is set.
	SigningKey []byte
}

// ReadSecrets reads the secret and certificate files that the notifiers of c
// name (password_file, password_credential, ca_file, secret_file,
// secret_credential) and returns one Secrets per notifier, in file order.
// It is what `medic run` builds the notifiers from, and CheckFiles, which
// `medic check-config` calls, reads the same files the same way, so the
// two refuse the same files.
//
// When any of them cannot be read or does not hold what it must (a PEM
// certificate, a webhook secret), it returns nil and Errors with one *Error
// per such key, with the file and line of the key:
//
//	medic.toml:14: notifier[0].password_file: read secret file: open /etc/medic/smtp-password: no such file or directory
//
// A credential is the file named by it in $CREDENTIALS_DIRECTORY
// (systemd.exec(5), LoadCredential=); naming one while the variable is not
// set is an error too. Secrets never appear in errors.
func (c *Config) ReadSecrets() ([]Secrets, error) {
	v := &validator{file: c.File, loc: c.loc}
	out := c.readSecrets(v, v)
	if len(v.errs) > 0 {
		sortErrors(v.errs)
		return nil, v.errs
	}
	return out, nil
}

// CheckFiles reports every file named in c that `medic run` reads at
// start-up and could not use: the notifiers' files, read as ReadSecrets
// reads them, and the ca_file of each probe, checked by building the probe
// with probe.New as the agent does. err is Errors, as ReadSecrets returns,
// or nil.
//
// Unlike ReadSecrets, a credential named while $CREDENTIALS_DIRECTORY is
// not set is not an error but one of warnings: the service gets the
// variable from systemd, the shell that checks the file usually does not.
func (c *Config) CheckFiles() (warnings Errors, err error) {
	v := &validator{file: c.File, loc: c.loc}
	w := &validator{file: c.File, loc: c.loc}
	c.readSecrets(v, w)
	for i, ch := range c.Checks {
		for j, p := range ch.Probes {
			if _, err := probe.New(p.Spec()); err != nil {
				key := fmt.Sprintf("check[%d].probe[%d]", i, j)
				var pe *fs.PathError
				if p.CAFile != "" && errors.As(err, &pe) && pe.Path == p.CAFile {
					key += ".ca_file"
				}
				v.add(key, err)
			}
		}
	}
	sortErrors(w.errs)
	if len(v.errs) == 0 {
		return w.errs, nil
	}
	sortErrors(v.errs)
	return w.errs, v.errs
}

// readSecrets reads the secrets of every notifier. Problems go to v;
// credentials that cannot be read because $CREDENTIALS_DIRECTORY is not
// set go to noCreds.
func (c *Config) readSecrets(v, noCreds *validator) []Secrets {
	out := make([]Secrets, len(c.Notifiers))
	for i, n := range c.Notifiers {
		if s, err := n.settings(); err == nil {
			out[i] = s.readFiles(v, noCreds, fmt.Sprintf("notifier[%d]", i))
		}
	}
	return out
}

// add records err as the problem of key.
func (v *validator) add(key string, err error) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.loc.line(key), Key: key, Msg: err.Error()})
}

// secret returns the inline value, or the content of file, or of the
// systemd credential named credential, without a trailing newline; the key
// it came from ("" for inline or none); and whether it could be read. A
// file that cannot be read is recorded under its key, in noCreds when it
// is a credential and $CREDENTIALS_DIRECTORY is not set.
func (v *validator) secret(noCreds *validator, key, inline, fileKey, file, credKey, credential string) (value, from string, ok bool) {
	switch {
	case inline != "":
		return inline, "", true
	case credential != "":
		dir := os.Getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			if noCreds == v {
				v.add(key+"."+credKey, fmt.Errorf("read credential %q: %w (add LoadCredential=%s:... to medic.service)", credential, errNoCredentialsDirectory, credential))
			} else {
				noCreds.add(key+"."+credKey, fmt.Errorf("credential %q not checked: %w here; medic.service gets it from systemd (LoadCredential=%s:...)", credential, errNoCredentialsDirectory, credential))
			}
			return "", credKey, false
		}
		b, err := os.ReadFile(filepath.Join(dir, credential))
		if err != nil {
			v.add(key+"."+credKey, fmt.Errorf("read credential %q: %w", credential, err))
			return "", credKey, false
		}
		return strings.TrimRight(string(b), "\r\n"), credKey, true
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			v.add(key+"."+fileKey, fmt.Errorf("read secret file: %w", err))
			return "", fileKey, false
		}
		return strings.TrimRight(string(b), "\r\n"), fileKey, true
	}
	return "", "", true
}

// certPool returns the system roots plus the PEM certificates in file, or
// nil after recording why it cannot.
func (v *validator) certPool(key, file string) *x509.CertPool {
	pem, err := os.ReadFile(file)
	if err != nil {
		v.add(key, fmt.Errorf("read certificate file: %w", err))
		return nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil {
		roots = x509.NewCertPool()
	}
	if !roots.AppendCertsFromPEM(pem) {
		v.add(key, fmt.Errorf("read certificate file %s: no PEM certificate in it", file))
		return nil
	}
	return roots
}
