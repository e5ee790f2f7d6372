// Package webhook is medic's webhook notifier: it POSTs each message of an
// incident to an HTTP(S) endpoint, either as a versioned JSON document
// (Payload) or as a Slack incoming-webhook message (SlackPayload), signed
// as the Standard Webhooks specification asks
// (https://www.standardwebhooks.com, spec/standard-webhooks.md).
//
// A Webhook makes one HTTP request per Notify call and says whether a retry
// can help; it never retries on its own. The durable outbox (notify/outbox)
// retries with backoff and jitter, and honors a *notify.RetryAfterError.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/internal/redact"
	"github.com/medic-watchdog/medic/notify"
	"github.com/medic-watchdog/medic/notify/httpsend"
)

// Defaults and limits.
const (
	// DefaultTimeout bounds one attempt when Config.Timeout is 0.
	DefaultTimeout = 10 * time.Second
	// MaxRetryAfter caps the delay a Retry-After header can ask for
	// (notify.MaxRetryAfter).
	MaxRetryAfter = notify.MaxRetryAfter
	// SecretPrefix marks a Standard Webhooks symmetric secret written as
	// text: "whsec_" followed by the base64 of the key.
	SecretPrefix = "whsec_"
)

// The Standard Webhooks request headers. Go sends them in canonical form
// ("Webhook-Id"); HTTP header names are case-insensitive (RFC 9110 section
// 5.1).
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// Format is the body of a Webhook's requests.
type Format string

// The formats, as the configuration's format key spells them.
const (
	// FormatJSON is medic's versioned JSON document (Payload).
	FormatJSON Format = "json"
	// FormatSlack is a Slack incoming-webhook message (SlackPayload).
	FormatSlack Format = "slack"
)

// Config configures a Webhook.
type Config struct {
	// Name is the notifier's name from the configuration.
	Name string
	// URL is the absolute http:// or https:// endpoint.
	URL string
	// Secret is the raw HMAC-SHA256 key; nil sends unsigned requests (no
	// webhook-signature header). ParseSecret reads the usual text forms.
	// The Standard Webhooks spec asks for 24 to 64 random bytes.
	Secret []byte
	// Format is the body: "json" (Payload; the default when "") or
	// "slack" (SlackPayload).
	Format Format
	// Timeout bounds one attempt: connecting, sending and reading the
	// answer (DefaultTimeout when 0).
	Timeout time.Duration
	// Headers are added to every request, e.g. an Authorization header.
	// They may replace User-Agent but not Content-Type, Content-Length,
	// Host, Transfer-Encoding, Connection or the webhook-* headers.
	Headers map[string]string
	// Client sends the requests. When nil, a client like
	// http.DefaultClient is used: proxies from the environment, TLS
	// certificates verified against the system roots. Redirects are never
	// followed, also with a Client given here: a 3xx answer is a failure
	// that a retry cannot fix (the Standard Webhooks spec: update the URL
	// instead).
	Client *http.Client
}

// Webhook is a notify.Notifier that POSTs messages to one URL. It is safe
// for concurrent use.
type Webhook struct {
	name     string
	url      string
	redacted string
	secret   []byte
	format   Format
	timeout  time.Duration
	headers  http.Header
	client   *http.Client
}

var _ notify.Notifier = (*Webhook)(nil)

// reservedHeaders are set by Notify and the HTTP client; Config.Headers
// may not set them.
var reservedHeaders = []string{
	"Connection", "Content-Length", "Content-Type", "Host", "Transfer-Encoding",
	http.CanonicalHeaderKey(HeaderID), http.CanonicalHeaderKey(HeaderTimestamp), http.CanonicalHeaderKey(HeaderSignature),
}

// CheckHeader returns nil when Config.Headers may hold the header name
// with value, and otherwise an error that names the header, never its
// value (it may be a credential): a name that is not an RFC 9110 token, a
// header medic or the HTTP client sets (Content-Type, Content-Length, Host,
// Transfer-Encoding, Connection, webhook-id, webhook-timestamp,
// webhook-signature; in any case), or a value with a control character
// other than tab (CR, LF, NUL, ...). New and the configuration's
// validation both call it.
func CheckHeader(name, value string) error {
	switch {
	case !validHeaderName(name):
		return fmt.Errorf("invalid webhook header name %q", name)
	case slices.Contains(reservedHeaders, http.CanonicalHeaderKey(name)):
		return fmt.Errorf("invalid webhook header %q: set by medic", name)
	case !validHeaderValue(value):
		return fmt.Errorf("invalid webhook header %q: value has control characters", name)
	}
	return nil
}

// New returns a Webhook for cfg, or an error naming every problem of cfg:
// a URL that is not absolute http(s), an unknown format, a negative
// timeout, an empty (non-nil) secret, or an invalid or reserved header.
func New(cfg Config) (*Webhook, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	var redacted string
	switch {
	case err != nil:
		// url.Error's text holds the whole URL; keep only the reason.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		errs = append(errs, fmt.Errorf("parse webhook URL: %w", err))
	case u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		errs = append(errs, errors.New("invalid webhook URL: want an absolute http:// or https:// URL"))
	}
	format := cfg.Format
	switch format {
	case "":
		format = FormatJSON
	case FormatJSON, FormatSlack:
	default:
		errs = append(errs, fmt.Errorf("invalid webhook format %q: want \"json\" or \"slack\"", cfg.Format))
	}
	if err == nil && u != nil {
		redacted = RedactURL(u, format == FormatSlack)
	}
	timeout := cfg.Timeout
	switch {
	case timeout == 0:
		timeout = DefaultTimeout
	case timeout < 0:
		errs = append(errs, fmt.Errorf("invalid webhook timeout %s: want a positive duration", cfg.Timeout))
	}
	if cfg.Secret != nil && len(cfg.Secret) == 0 {
		errs = append(errs, errors.New("invalid webhook secret: empty"))
	}
	headers := make(http.Header, len(cfg.Headers))
	for _, k := range slices.Sorted(maps.Keys(cfg.Headers)) {
		v := cfg.Headers[k]
		if err := CheckHeader(k, v); err != nil {
			errs = append(errs, err)
			continue
		}
		headers.Set(http.CanonicalHeaderKey(k), v)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("webhook %s: %w", cfg.Name, errors.Join(errs...))
	}
	return &Webhook{
		name:     cfg.Name,
		url:      cfg.URL,
		redacted: redacted,
		secret:   bytes.Clone(cfg.Secret),
		format:   format,
		timeout:  timeout,
		headers:  headers,
		client:   httpsend.NoRedirects(cfg.Client),
	}, nil
}

// Name returns the notifier's name.
func (w *Webhook) Name() string { return w.name }

// Notify POSTs m to the URL, once, within the Timeout, and reports:
//
//   - (false, nil): the endpoint answered 2xx; m is delivered.
//   - (true, err): a retry can help: the connection failed or was reset,
//     the attempt timed out, ctx ended, or the endpoint answered 408, 429
//     or 5xx. When such an answer has a Retry-After header (RFC 9110
//     section 10.2.3, delay-seconds or HTTP-date), err wraps a
//     *notify.RetryAfterError with that delay, at most MaxRetryAfter.
//   - (false, err): a retry cannot help: the endpoint answered 3xx
//     (redirects are not followed), or another 4xx such as 400, 401, 404
//     or 410; or m cannot be sent (no ID).
//
// An error for an HTTP answer is a *StatusError. Error text never holds
// the secret, header values or the URL's userinfo and query values.
//
// Every attempt for one m has the same body and the same webhook-id
// (m.ID); the webhook-timestamp header and the signature are those of the
// attempt.
func (w *Webhook) Notify(ctx context.Context, m *notify.Message) (bool, error) {
	if m == nil {
		return false, errors.New("post webhook: nil message")
	}
	if !validID(m.ID) {
		return false, fmt.Errorf("post webhook %s: invalid message id %q: want printable ASCII without spaces", w.redacted, m.ID)
	}
	body, err := w.render(m)
	if err != nil {
		return false, fmt.Errorf("render webhook body: %w", err)
	}

	header := w.headers.Clone()
	ua := "medic"
	if m.Version != "" {
		ua += "/" + m.Version
	}
	if header.Get("User-Agent") == "" {
		header.Set("User-Agent", ua)
	}
	header.Set("Content-Type", "application/json")
	ts := strconv.FormatInt(time.Now().Unix(), 10)
	header.Set(HeaderID, m.ID)
	header.Set(HeaderTimestamp, ts)
	if w.secret != nil {
		header.Set(HeaderSignature, sign(w.secret, m.ID, ts, body))
	}
	return httpsend.Send(ctx, w.client, httpsend.Request{
		Op:       "post webhook",
		URL:      w.url,
		Redacted: w.redacted,
		Header:   header,
		Body:     body,
		Timeout:  w.timeout,
	})
}

// render returns the request body for m in w's format.
func (w *Webhook) render(m *notify.Message) ([]byte, error) {
	if w.format == FormatSlack {
		if m.Kind == notify.Digest {
			return json.Marshal(NewSlackDigestPayload(m))
		}
		return json.Marshal(NewSlackPayload(m))
	}
	if m.Kind == notify.Digest {
		return json.Marshal(NewDigestPayload(m))
	}
	return json.Marshal(NewPayload(m))
}

// sign returns the webhook-signature header value for one attempt: "v1,"
// and the base64 of HMAC-SHA256(secret, id + "." + timestamp + "." +
// body), the Standard Webhooks symmetric scheme.
func sign(secret []byte, id, ts string, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// StatusError is the error for an HTTP answer that is not 2xx:
// "post webhook https://host/path: 503 Service Unavailable: upstream down".
type StatusError = httpsend.StatusError

// RedactURL returns u as text fit for logs and errors: userinfo (user and
// password) is replaced by "xxxxx", so are all query values, and the
// fragment is dropped. With hidePath, every path segment after the first
// is replaced by "xxxxx" too, for the URLs of Slack-style incoming webhooks
// whose path is the secret ("https://hooks.slack.com/services/xxxxx").
// It is redact.URL, the redaction probe targets get too.
func RedactURL(u *url.URL, hidePath bool) string { return redact.URL(u, hidePath) }

// ParseSecret reads a signing secret as written in a secret file or
// credential. Surrounding white space (a trailing newline) is ignored.
// "whsec_" followed by base64 (standard alphabet, padded or not) is the
// Standard Webhooks serialization of a symmetric key and yields the decoded
// bytes; any other text is the key itself, byte for byte. The error for an
// empty secret or bad base64 never contains the secret.
func ParseSecret(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("parse webhook secret: empty")
	}
	enc, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok {
		return []byte(s), nil
	}
	key, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		key, err = base64.RawStdEncoding.DecodeString(enc)
	}
	if err != nil {
		return nil, fmt.Errorf("parse webhook secret: invalid base64 after %q", SecretPrefix)
	}
	if len(key) == 0 {
		return nil, fmt.Errorf("parse webhook secret: empty key after %q", SecretPrefix)
	}
	return key, nil
}

// validID says whether id can be a webhook-id header value: printable
// ASCII without spaces.
func validID(id string) bool {
	if id == "" {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] <= ' ' || id[i] >= 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName says whether s is an RFC 9110 token (section 5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue says whether s has no control characters but tab.
func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}
