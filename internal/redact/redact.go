// Package redact holds the one function that makes a URL fit to show:
// probe targets in status, logs, state files and alerts, and notifier
// endpoints in errors all go through URL, so a credential in a URL's
// userinfo or query never reaches any of them.
package redact

import (
	"maps"
	"net/url"
	"slices"
	"strings"
)

// Mask replaces each secret part of a URL.
const Mask = "xxxxx"

// URL returns u as text fit for logs, errors and alerts: userinfo (user
// and password) is replaced by "xxxxx", so are all query values (the keys
// stay, sorted), and the fragment is dropped. With hidePath, every path
// segment after the first is replaced by "xxxxx" too, for the URLs of
// Slack-style incoming webhooks whose path is the secret
// ("https://hooks.slack.com/services/xxxxx").
func URL(u *url.URL, hidePath bool) string {
	var b strings.Builder
	b.WriteString(u.Scheme)
	b.WriteString("://")
	if u.User != nil {
		b.WriteString(Mask + "@")
	}
	b.WriteString(u.Host)
	p := u.EscapedPath()
	if hidePath {
		if i := strings.IndexByte(strings.TrimPrefix(p, "/"), '/'); i >= 0 && len(p) > i+2 {
			p = p[:i+2] + Mask
		}
	}
	b.WriteString(p)
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			b.WriteString("?" + Mask)
		} else {
			for i, k := range slices.Sorted(maps.Keys(q)) {
				if i == 0 {
					b.WriteByte('?')
				} else {
					b.WriteByte('&')
				}
				b.WriteString(url.QueryEscape(k) + "=" + Mask)
			}
		}
	}
	return b.String()
}

// URLString is URL for a URL given as text. Text that does not parse as a
// URL, or parses without a scheme and host (a relative reference such as a
// Location header's "/login?next=..."), keeps only what comes before its
// first '?' or '#', and "xxxxx" for a query; its userinfo cannot be told
// apart and is left as it is only when the text has no '@'.
func URLString(s string) string {
	u, err := url.Parse(s)
	if err == nil && u.Scheme != "" && u.Host != "" {
		return URL(u, false)
	}
	if err == nil && u.Scheme == "" && u.Host == "" && u.User == nil {
		// A relative reference: the path stays, the query is masked.
		out := u.EscapedPath()
		if u.RawQuery != "" {
			q := &url.URL{RawQuery: u.RawQuery}
			out += strings.TrimPrefix(URL(q, false), "://")
		}
		return out
	}
	if i := strings.IndexAny(s, "?#"); i >= 0 {
		s = s[:i]
		if strings.ContainsRune(s, '@') {
			return Mask
		}
		return s + "?" + Mask
	}
	if strings.ContainsRune(s, '@') {
		return Mask
	}
	return s
}
