package config

import (
	"regexp"
	"strconv"
	"strings"
)

// locator finds the line of a key path such as "check[2].probe[0].address" in
// TOML source text. It tracks [table] and [[array.of.tables]] headers, counts
// the elements of each array of tables, and records every "key = value" line.
// It is not a TOML parser: it is good enough for files people write by hand,
// and the decoder has already rejected malformed ones.
type locator struct {
	lines map[string]int // key path -> 1-based line
	order []locEntry     // every recorded key path, in file order
	// byPlain indexes order by the path without indexes; built on the
	// first find, so that a file with thousands of checks and an error in
	// each is not searched from the top for every error.
	byPlain map[string][]locEntry
}

type locEntry struct {
	path string
	line int
}

// newLocator scans src.
func newLocator(src []byte) *locator {
	l := &locator{lines: map[string]int{}}
	var (
		cur       string             // indexed path of the current table
		lastIndex = map[string]int{} // indexed path of an array of tables -> index of its last element
		depth     int                // open [ and { of a value spanning lines
		mlString  string             // closing delimiter of an open multi-line string
	)
	for i, raw := range strings.Split(string(src), "\n") {
		n := i + 1
		line := raw
		if mlString != "" {
			end := strings.Index(line, mlString)
			if end < 0 {
				continue
			}
			line = line[end+len(mlString):]
			mlString = ""
			depth, mlString = scanValue(line, depth)
			continue
		}
		if depth > 0 {
			depth, mlString = scanValue(line, depth)
			continue
		}
		t := strings.TrimSpace(line)
		switch {
		case t == "" || t[0] == '#':
			continue
		case strings.HasPrefix(t, "[["):
			end := strings.Index(t, "]]")
			if end < 0 {
				continue
			}
			parent, last := resolve(splitKey(t[2:end]), lastIndex)
			arr := join(parent, last)
			idx := 0
			if j, ok := lastIndex[arr]; ok {
				idx = j + 1
			}
			lastIndex[arr] = idx
			cur = arr + "[" + strconv.Itoa(idx) + "]"
			l.add(cur, n)
		case t[0] == '[':
			end := strings.Index(t, "]")
			if end < 0 {
				continue
			}
			parent, last := resolve(splitKey(t[1:end]), lastIndex)
			cur = join(parent, last)
			l.add(cur, n)
		default:
			eq := indexOutsideQuotes(t, '=')
			if eq < 0 {
				continue
			}
			pieces := splitKey(t[:eq])
			if len(pieces) == 0 {
				continue
			}
			l.add(join(cur, strings.Join(pieces, ".")), n)
			depth, mlString = scanValue(t[eq+1:], 0)
		}
	}
	return l
}

func (l *locator) add(path string, line int) {
	if _, ok := l.lines[path]; !ok {
		l.lines[path] = line
	}
	l.order = append(l.order, locEntry{path, line})
}

// line returns the line of key, or of its nearest enclosing key or table that
// the source names (for example the [[check]] header of a key the check does
// not set), or 0.
func (l *locator) line(key string) int {
	if l == nil {
		return 0
	}
	for key != "" {
		if n, ok := l.lines[key]; ok {
			return n
		}
		key = parentKey(key)
	}
	return 0
}

// keep forgets the key paths for which want is false.
func (l *locator) keep(want func(path string) bool) {
	if l == nil {
		return
	}
	var order []locEntry // a new array: the old one is as long as the file
	for _, e := range l.order {
		if want(e.path) {
			order = append(order, e)
		}
	}
	l.order = order
	l.lines = make(map[string]int, len(order))
	for _, e := range order {
		if _, ok := l.lines[e.path]; !ok {
			l.lines[e.path] = e.line
		}
	}
	l.byPlain = nil
}

// find returns every recorded key path that, with its indexes removed, equals
// plain (e.g. "check.probe.adress" matches "check[1].probe[0].adress").
func (l *locator) find(plain string) []locEntry {
	if l == nil {
		return nil
	}
	if l.byPlain == nil {
		l.byPlain = make(map[string][]locEntry)
		for _, e := range l.order {
			p := stripIndexes(e.path)
			l.byPlain[p] = append(l.byPlain[p], e)
		}
	}
	return l.byPlain[plain]
}

var indexRE = regexp.MustCompile(`\[\d+\]`)

// stripIndexes removes the "[n]" parts of a key path.
func stripIndexes(path string) string { return indexRE.ReplaceAllString(path, "") }

// parentKey returns the path one level up: "a[1].b" -> "a[1]" -> "a" -> "".
func parentKey(key string) string {
	if strings.HasSuffix(key, "]") {
		if i := strings.LastIndexByte(key, '['); i >= 0 {
			return key[:i]
		}
	}
	if i := strings.LastIndexByte(key, '.'); i >= 0 {
		return key[:i]
	}
	return ""
}

// resolve turns the pieces of a table header into the indexed path of its
// parent (each piece that names an array of tables gets the index of its
// last element) and its last piece.
func resolve(pieces []string, lastIndex map[string]int) (parent, last string) {
	if len(pieces) == 0 {
		return "", ""
	}
	for _, p := range pieces[:len(pieces)-1] {
		parent = join(parent, p)
		if j, ok := lastIndex[parent]; ok {
			parent += "[" + strconv.Itoa(j) + "]"
		}
	}
	return parent, pieces[len(pieces)-1]
}

func join(a, b string) string {
	switch {
	case a == "":
		return b
	case b == "":
		return a
	}
	return a + "." + b
}

// splitKey splits a dotted TOML key into its pieces, unquoting quoted ones.
func splitKey(s string) []string {
	var (
		out   []string
		piece strings.Builder
		quote byte
	)
	flush := func() {
		if p := strings.TrimSpace(piece.String()); p != "" {
			out = append(out, p)
		}
		piece.Reset()
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0:
			if c == '\\' && quote == '"' && i+1 < len(s) {
				i++
				piece.WriteByte(s[i])
			} else if c == quote {
				quote = 0
			} else {
				piece.WriteByte(c)
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '.':
			flush()
		case c == ' ' || c == '\t':
		default:
			piece.WriteByte(c)
		}
	}
	flush()
	return out
}

// indexOutsideQuotes returns the index of the first c in s that is not inside
// a quoted string, or -1.
func indexOutsideQuotes(s string, c byte) int {
	var quote byte
	for i := 0; i < len(s); i++ {
		switch {
		case quote != 0:
			if s[i] == '\\' && quote == '"' {
				i++
			} else if s[i] == quote {
				quote = 0
			}
		case s[i] == '"' || s[i] == '\'':
			quote = s[i]
		case s[i] == '#':
			return -1
		case s[i] == c:
			return i
		}
	}
	return -1
}

// scanValue scans (part of) a value, starting with depth open brackets, and
// returns the brackets still open at its end and, when a multi-line string
// stays open, its closing delimiter.
func scanValue(s string, depth int) (int, string) {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '#':
			return depth, ""
		case '[', '{':
			depth++
		case ']', '}':
			if depth > 0 {
				depth--
			}
		case '"', '\'':
			delim := string(c)
			if strings.HasPrefix(s[i:], strings.Repeat(delim, 3)) {
				delim = strings.Repeat(delim, 3)
			}
			j := i + len(delim)
			for j < len(s) {
				if c == '"' && s[j] == '\\' {
					j += 2
					continue
				}
				if strings.HasPrefix(s[j:], delim) {
					break
				}
				j++
			}
			if j >= len(s) {
				if len(delim) == 3 {
					return depth, delim
				}
				return depth, ""
			}
			i = j + len(delim) - 1
		}
	}
	return depth, ""
}
