package config

import (
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/medic-watchdog/medic/probe"
)

// HTTPProbe is the table of an "http" probe: it passes when a request to
// URL (http:// or https://) gets an expected status and, when ExpectBody is
// set, a body containing it (probe.HTTP).
type HTTPProbe struct {
	// URL is the absolute http:// or https:// URL.
	URL string `toml:"url"`
	// Method is the HTTP request method; empty means GET.
	Method string `toml:"method"`
	// Headers are added to the request; "Host" sets the Host header.
	Headers map[string]string `toml:"headers"`
	// ExpectStatus lists the accepted status codes: integers such as 200
	// or strings such as "200-299" or "2xx". Empty means 200-299. Read the
	// parsed form with StatusRanges.
	ExpectStatus []any `toml:"expect_status"`
	// ExpectBody, when set, must occur in the first 64 KiB of the body.
	ExpectBody string `toml:"expect_body"`
	// TLSSkipVerify turns certificate verification off for an https URL.
	TLSSkipVerify bool `toml:"tls_skip_verify"`
	// CAFile is an absolute path to a PEM bundle of extra roots for https.
	CAFile string `toml:"ca_file"`
	// ServerName overrides the name used for SNI and verification (https).
	ServerName string `toml:"server_name"`
}

var httpProbeKind = ProbeKind{Type: probe.TypeHTTP, Table: func(p *Probe) ProbeSettings { return &p.HTTPProbe }}

// methodRE matches an RFC 9110 token: a method or a header name.
var methodRE = regexp.MustCompile(`^[!#$%&'*+.^_` + "`" + `|~0-9A-Za-z-]+$`)

func (h *HTTPProbe) validate(v *validator, key string) {
	https := false
	switch {
	case h.URL == "":
		v.errorf(key+".url", "missing url: want an http:// or https:// URL")
	default:
		if msg := checkHTTPURL(h.URL); msg != "" {
			v.errorf(key+".url", "%s", msg)
		} else {
			https = strings.HasPrefix(strings.ToLower(h.URL), "https:")
		}
	}
	if h.Method != "" && !methodRE.MatchString(h.Method) {
		v.errorf(key+".method", "invalid method %q", h.Method)
	}
	for name, val := range h.Headers {
		if !methodRE.MatchString(name) {
			v.errorf(key+".headers", "invalid header name %q", name)
		}
		if strings.ContainsAny(val, "\r\n\x00") {
			v.errorf(key+".headers", "header %q: value contains a line break or NUL", name)
		}
	}
	for i, s := range h.ExpectStatus {
		if _, err := parseStatus(s); err != nil {
			v.errorf(fmt.Sprintf("%s.expect_status[%d]", key, i), "%v", err)
		}
	}
	if h.URL != "" && !https {
		for _, f := range []struct {
			name string
			set  bool
		}{{"tls_skip_verify", h.TLSSkipVerify}, {"ca_file", h.CAFile != ""}, {"server_name", h.ServerName != ""}} {
			if f.set {
				v.errorf(key+"."+f.name, "only used with an https:// URL")
			}
		}
	}
	if h.CAFile != "" && !filepath.IsAbs(h.CAFile) {
		v.errorf(key+".ca_file", "%q is not an absolute path", h.CAFile)
	}
}

func (h *HTTPProbe) spec(string) probe.Spec {
	ranges, _ := h.StatusRanges()
	var headers map[string]string
	if len(h.Headers) > 0 {
		headers = maps.Clone(h.Headers)
	}
	return probe.Spec{HTTP: probe.HTTPOptions{
		URL:                h.URL,
		Method:             h.Method,
		Headers:            headers,
		ExpectStatus:       ranges,
		ExpectBody:         h.ExpectBody,
		InsecureSkipVerify: h.TLSSkipVerify,
		CAFile:             h.CAFile,
		ServerName:         h.ServerName,
	}}
}

// StatusRanges parses ExpectStatus. It returns the ranges that parse and,
// when some do not, an error naming each of those.
func (h HTTPProbe) StatusRanges() ([]probe.StatusRange, error) {
	var (
		out  []probe.StatusRange
		errs []error
	)
	for i, v := range h.ExpectStatus {
		r, err := parseStatus(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("expect_status[%d]: %w", i, err))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// parseStatus parses one expect_status entry: an integer code or a string
// probe.ParseStatusRange accepts.
func parseStatus(v any) (probe.StatusRange, error) {
	switch v := v.(type) {
	case int64:
		return parseStatusCode(int(v))
	case int:
		return parseStatusCode(v)
	case string:
		r, err := probe.ParseStatusRange(v)
		if err != nil {
			return r, fmt.Errorf("invalid status %q: want a code like 200, a range like \"200-299\" or a class like \"2xx\" (100-599)", v)
		}
		return r, nil
	}
	return probe.StatusRange{}, fmt.Errorf("invalid status %v: want a code like 200, a range like \"200-299\" or a class like \"2xx\"", v)
}

func parseStatusCode(c int) (probe.StatusRange, error) {
	if c < 100 || c > 599 {
		return probe.StatusRange{}, fmt.Errorf("invalid status %d: want a code in 100-599", c)
	}
	return probe.StatusRange{Min: c, Max: c}, nil
}

// CheckHTTPURL returns what is wrong with an http probe's URL, as Validate
// reports it (with any credential in it redacted), or "" when it is an
// absolute http:// or https:// URL with a host and a valid port.
func CheckHTTPURL(raw string) string { return checkHTTPURL(raw) }
