package config

// CheckAddress returns what is wrong with a tcp probe's host:port address,
// as Validate reports it ("missing port", `invalid port "99999": want a
// number from 1 to 65535`), or "" when it is valid.
func CheckAddress(addr string) string { return checkHostPort(addr) }

// CheckHTTPURL returns what is wrong with an http probe's URL, as Validate
// reports it (with any credential in it redacted), or "" when it is an
// absolute http:// or https:// URL with a host and a valid port.
func CheckHTTPURL(raw string) string { return checkHTTPURL(raw) }

// CheckSocketPath returns what is wrong with a unix probe's socket path, as
// Validate reports it, or "" when it is absolute and fits in a Unix socket
// address.
func CheckSocketPath(path string) string {
	v := &validator{}
	v.socketPath("", path)
	if len(v.errs) == 0 {
		return ""
	}
	return v.errs[0].Msg
}
