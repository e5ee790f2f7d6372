package nginx

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Directive is one directive of an nginx configuration, with the file and
// line it was written on.
type Directive struct {
	// Name is the directive's name, e.g. "proxy_pass".
	Name string
	// Args are its arguments, unquoted.
	Args []string
	// File and Line say where the name was written.
	File string
	Line int
	// Block holds the directives inside its braces; nil when it has none.
	Block []*Directive
}

// Config is a parsed nginx configuration with every include read in place.
type Config struct {
	// File is the main configuration file.
	File string
	// Files are the files read, the main one first, in the order read.
	Files []string
	// Directives are the main context's directives, includes replaced by
	// the directives of the files they name.
	Directives []*Directive
}

// maxIncludeDepth bounds nested includes (a file including itself).
const maxIncludeDepth = 16

// ParseConfig reads the nginx configuration in file and every file it
// includes. Relative include paths are taken from the main file's
// directory, as nginx does when started with -c; include patterns with
// wildcards match in sorted order and may match nothing; an include of a
// single missing file is an error, as in nginx.
//
// It reads the syntax only (directives, arguments, blocks, quotes and
// comments), not the meaning: `nginx -t` remains the judge of a valid
// configuration. Errors name the file and line.
func ParseConfig(file string) (*Config, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, fmt.Errorf("parse nginx config: %w", err)
	}
	c := &Config{File: abs}
	p := &confParser{conf: c, prefix: filepath.Dir(abs)}
	c.Directives, err = p.file(abs, nil)
	if err != nil {
		return nil, fmt.Errorf("parse nginx config: %w", err)
	}
	return c, nil
}

type confParser struct {
	conf   *Config
	prefix string
}

// file parses one file and expands its includes; stack holds the files
// being read, to refuse include loops.
func (p *confParser) file(path string, stack []string) ([]*Directive, error) {
	if slices.Contains(stack, path) || len(stack) >= maxIncludeDepth {
		return nil, fmt.Errorf("%s: include loop: %s", path, strings.Join(append(stack, path), " -> "))
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	p.conf.Files = append(p.conf.Files, path)
	toks, err := tokenize(path, string(data))
	if err != nil {
		return nil, err
	}
	i := 0
	ds, err := parseBlock(path, toks, &i, false)
	if err != nil {
		return nil, err
	}
	return p.expand(ds, append(stack, path))
}

// expand replaces include directives in ds (and its blocks) by the
// directives of the files they name.
func (p *confParser) expand(ds []*Directive, stack []string) ([]*Directive, error) {
	var out []*Directive
	for _, d := range ds {
		if d.Block != nil {
			b, err := p.expand(d.Block, stack)
			if err != nil {
				return nil, err
			}
			d.Block = b
			if d.Block == nil {
				d.Block = []*Directive{}
			}
		}
		if d.Name != "include" || d.Block != nil {
			out = append(out, d)
			continue
		}
		if len(d.Args) != 1 {
			return nil, fmt.Errorf("%s:%d: include takes one argument, not %d", d.File, d.Line, len(d.Args))
		}
		pat := d.Args[0]
		if !filepath.IsAbs(pat) {
			pat = filepath.Join(p.prefix, pat)
		}
		var files []string
		if strings.ContainsAny(pat, "*?[") {
			m, err := filepath.Glob(pat)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: include %s: %w", d.File, d.Line, d.Args[0], err)
			}
			slices.Sort(m)
			files = m
		} else {
			files = []string{pat}
		}
		for _, f := range files {
			if fi, err := os.Stat(f); err == nil && fi.IsDir() {
				continue
			}
			inc, err := p.file(f, stack)
			if err != nil {
				return nil, fmt.Errorf("%s:%d: include %s: %w", d.File, d.Line, d.Args[0], err)
			}
			out = append(out, inc...)
		}
	}
	return out, nil
}

// token is one word or one of ";", "{", "}" with its line; quoted words
// are never punctuation.
type token struct {
	text   string
	line   int
	quoted bool
}

func (t token) is(punct string) bool { return !t.quoted && t.text == punct }

// tokenize splits nginx configuration text into tokens, as nginx's
// ngx_conf_read_token does: "#" starts a comment at the start of a word,
// single and double quotes group (with \" \' \\ \t \r \n escapes), "${...}"
// stays within a word.
func tokenize(file, s string) ([]token, error) {
	var toks []token
	line := 1
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\n':
			line++
			i++
		case c == ' ' || c == '\t' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == ';' || c == '{' || c == '}':
			toks = append(toks, token{text: string(c), line: line})
			i++
		case c == '"' || c == '\'':
			start := line
			var b strings.Builder
			i++
			closed := false
			for i < len(s) {
				ch := s[i]
				if ch == '\\' && i+1 < len(s) {
					switch s[i+1] {
					case '"', '\'', '\\':
						b.WriteByte(s[i+1])
					case 't':
						b.WriteByte('\t')
					case 'r':
						b.WriteByte('\r')
					case 'n':
						b.WriteByte('\n')
					default:
						b.WriteByte('\\')
						b.WriteByte(s[i+1])
					}
					if s[i+1] == '\n' {
						line++
					}
					i += 2
					continue
				}
				if ch == c {
					i++
					closed = true
					break
				}
				if ch == '\n' {
					line++
				}
				b.WriteByte(ch)
				i++
			}
			if !closed {
				return nil, fmt.Errorf("%s:%d: unterminated quoted string", file, start)
			}
			toks = append(toks, token{text: b.String(), line: start, quoted: true})
		default:
			start := i
			for i < len(s) {
				ch := s[i]
				if ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n' || ch == ';' || ch == '}' {
					break
				}
				if ch == '{' {
					if i > start && s[i-1] == '$' {
						// ${var}: up to the closing brace.
						j := strings.IndexByte(s[i:], '}')
						if j < 0 {
							return nil, fmt.Errorf("%s:%d: unterminated ${", file, line)
						}
						i += j + 1
						continue
					}
					break
				}
				if ch == '\\' && i+1 < len(s) {
					i++
				}
				i++
			}
			toks = append(toks, token{text: s[start:i], line: line})
		}
	}
	return toks, nil
}

// parseBlock reads directives from toks[*i:] up to the closing brace (when
// inner) or the end.
func parseBlock(file string, toks []token, i *int, inner bool) ([]*Directive, error) {
	var ds []*Directive
	for *i < len(toks) {
		t := toks[*i]
		switch {
		case t.is("}"):
			if !inner {
				return nil, fmt.Errorf("%s:%d: unexpected \"}\"", file, t.line)
			}
			*i++
			return ds, nil
		case t.is(";") || t.is("{"):
			return nil, fmt.Errorf("%s:%d: unexpected %q", file, t.line, t.text)
		}
		d := &Directive{Name: t.text, File: file, Line: t.line}
		*i++
		for {
			if *i >= len(toks) {
				return nil, fmt.Errorf("%s:%d: directive %q is not terminated by \";\"", file, d.Line, d.Name)
			}
			a := toks[*i]
			*i++
			if a.is(";") {
				break
			}
			if a.is("}") {
				return nil, fmt.Errorf("%s:%d: unexpected \"}\" in directive %q", file, a.line, d.Name)
			}
			if a.is("{") {
				b, err := parseBlock(file, toks, i, true)
				if err != nil {
					return nil, err
				}
				if b == nil {
					b = []*Directive{}
				}
				d.Block = b
				break
			}
			d.Args = append(d.Args, a.text)
		}
		ds = append(ds, d)
	}
	if inner {
		return nil, fmt.Errorf("%s: unexpected end of file, expecting \"}\"", file)
	}
	return ds, nil
}

// Upstream is an upstream{} block.
type Upstream struct {
	// Name is the group's name, which proxy_pass and the *_pass
	// directives refer to.
	Name string
	// Context is "http" or "stream".
	Context string
	// Servers are its server directives, in order.
	Servers []UpstreamServer
	File    string
	Line    int
}

// UpstreamServer is one server directive of an upstream{} block.
type UpstreamServer struct {
	// Addr is the address as written: "127.0.0.1:8080", "app:8080",
	// "app" (port 80), "unix:/run/app.sock".
	Addr string
	// Weight is weight=N; 0 when not set (nginx's default is 1).
	Weight int
	// MaxFails is max_fails=N; nil when not set (nginx's default is 1).
	MaxFails *int
	// FailTimeout is fail_timeout as written ("30s"); "" when not set
	// (nginx's default is 10s).
	FailTimeout string
	// Backup servers get requests only when the others are unavailable;
	// Down ones never.
	Backup, Down bool
	// Params are all the parameters after the address, as written.
	Params []string
	File   string
	Line   int
}

// Target is a proxy_pass, fastcgi_pass, uwsgi_pass, grpc_pass, scgi_pass
// or memcached_pass directive.
type Target struct {
	// Directive is the directive's name, e.g. "proxy_pass".
	Directive string
	// Value is its argument as written: "http://127.0.0.1:8080/",
	// "http://unix:/run/app.sock:/", "http://backend", "127.0.0.1:9000".
	Value string
	// Context is "http" or "stream".
	Context string
	// Server is the first server_name of the enclosing server{} (or its
	// first listen when it has none); Location the enclosing location.
	Server, Location string
	// Network is "tcp" or "unix" when the target is one address; "" when
	// it names an upstream group or cannot be resolved.
	Network string
	// Address is host:port for tcp (the scheme's default port added when
	// none is written: 80 for http, 443 for https) or the socket's path for
	// unix.
	Address string
	// Upstream is the upstream group the target names, if it names one.
	Upstream string
	// Unresolved says why the target has neither an address nor a group,
	// e.g. "uses variables".
	Unresolved string
	File       string
	Line       int
}

// passDirectives are the directives that send a request to a backend.
var passDirectives = []string{"proxy_pass", "fastcgi_pass", "uwsgi_pass", "grpc_pass", "scgi_pass", "memcached_pass"}

// Upstreams returns the upstream{} blocks of the http and stream contexts.
func (c *Config) Upstreams() []Upstream {
	var out []Upstream
	walk(c.Directives, nil, func(d *Directive, parents []*Directive) {
		if d.Name != "upstream" || d.Block == nil || len(d.Args) != 1 || len(parents) != 1 {
			return
		}
		u := Upstream{Name: d.Args[0], Context: parents[0].Name, File: d.File, Line: d.Line}
		for _, s := range d.Block {
			if s.Name != "server" || len(s.Args) == 0 {
				continue
			}
			u.Servers = append(u.Servers, parseUpstreamServer(s))
		}
		out = append(out, u)
	})
	return out
}

func parseUpstreamServer(d *Directive) UpstreamServer {
	s := UpstreamServer{Addr: d.Args[0], Params: d.Args[1:], File: d.File, Line: d.Line}
	for _, p := range d.Args[1:] {
		k, v, _ := strings.Cut(p, "=")
		switch k {
		case "weight":
			s.Weight, _ = strconv.Atoi(v)
		case "max_fails":
			if n, err := strconv.Atoi(v); err == nil {
				s.MaxFails = &n
			}
		case "fail_timeout":
			s.FailTimeout = v
		case "backup":
			s.Backup = true
		case "down":
			s.Down = true
		}
	}
	return s
}

// Targets returns every proxy_pass and *_pass directive of the http and
// stream contexts, resolved against the upstream groups of their context.
func (c *Config) Targets() []Target {
	groups := map[string]bool{}
	for _, u := range c.Upstreams() {
		groups[u.Context+"\x00"+u.Name] = true
	}
	var out []Target
	walk(c.Directives, nil, func(d *Directive, parents []*Directive) {
		if !slices.Contains(passDirectives, d.Name) || d.Block != nil || len(d.Args) == 0 || len(parents) == 0 {
			return
		}
		ctx := parents[0].Name
		if ctx != "http" && ctx != "stream" {
			return
		}
		t := Target{Directive: d.Name, Value: d.Args[0], Context: ctx, File: d.File, Line: d.Line}
		for _, p := range parents[1:] {
			switch p.Name {
			case "server":
				t.Server = serverName(p)
			case "location":
				t.Location = strings.Join(p.Args, " ")
			}
		}
		resolveTarget(&t, func(name string) bool { return groups[ctx+"\x00"+name] })
		out = append(out, t)
	})
	return out
}

// serverName names a server{} by its first server_name other than "_" or
// "", else by its first listen.
func serverName(d *Directive) string {
	var listen string
	for _, c := range d.Block {
		switch {
		case c.Name == "server_name":
			for _, a := range c.Args {
				if a != "_" && a != "" && a != `""` {
					return a
				}
			}
		case c.Name == "listen" && listen == "" && len(c.Args) > 0:
			listen = c.Args[0]
		}
	}
	return listen
}

// resolveTarget fills Network, Address, Upstream or Unresolved of t from
// its Value; isGroup says whether a name is an upstream group.
func resolveTarget(t *Target, isGroup func(string) bool) {
	v := t.Value
	if strings.Contains(v, "$") {
		t.Unresolved = "the address uses variables, known only per request"
		return
	}
	scheme := ""
	if i := strings.Index(v, "://"); i >= 0 {
		scheme, v = strings.ToLower(v[:i]), v[i+3:]
	}
	if p, ok := strings.CutPrefix(v, "unix:"); ok {
		// "unix:/run/app.sock:/uri" (proxy_pass) or "unix:/run/app.sock".
		if i := strings.Index(p, ":"); i >= 0 {
			p = p[:i]
		}
		t.Network, t.Address = "unix", p
		return
	}
	if i := strings.IndexByte(v, '/'); i >= 0 {
		v = v[:i]
	}
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		// No port: an upstream group, or a host with the scheme's port.
		if isGroup(v) {
			t.Upstream = v
			return
		}
		switch {
		case t.Directive == "proxy_pass" && t.Context == "http" && (scheme == "http" || scheme == ""):
			port = "80"
		case t.Directive == "proxy_pass" && scheme == "https", t.Directive == "grpc_pass" && scheme == "grpcs":
			port = "443"
		case t.Directive == "grpc_pass":
			port = "80"
		default:
			t.Unresolved = "no port, and no upstream group of that name"
			return
		}
		host = strings.Trim(v, "[]")
	}
	if host == "" {
		t.Unresolved = "no host"
		return
	}
	t.Network, t.Address = "tcp", net.JoinHostPort(host, port)
}

// ServerAddress returns the network and address of an upstream server:
// "unix" and the path, or "tcp" and host:port with port 80 when none is
// written.
func ServerAddress(addr string) (network, address string, err error) {
	if p, ok := strings.CutPrefix(addr, "unix:"); ok {
		if p == "" {
			return "", "", errors.New("empty unix socket path")
		}
		return "unix", p, nil
	}
	if strings.Contains(addr, "$") {
		return "", "", errors.New("the address uses variables")
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		host, port = strings.Trim(addr, "[]"), "80"
	}
	if host == "" {
		return "", "", fmt.Errorf("no host in %q", addr)
	}
	return "tcp", net.JoinHostPort(host, port), nil
}

// walk calls fn for every directive, depth first, with the blocks it is
// in (outermost first).
func walk(ds []*Directive, parents []*Directive, fn func(d *Directive, parents []*Directive)) {
	for _, d := range ds {
		fn(d, parents)
		if d.Block != nil {
			walk(d.Block, append(slices.Clip(parents), d), fn)
		}
	}
}

// User returns the user nginx's workers run as (the main context's user
// directive), or "" when it is not set.
func (c *Config) User() string {
	for _, d := range c.Directives {
		if d.Name == "user" && len(d.Args) > 0 {
			return d.Args[0]
		}
	}
	return ""
}
