package logging

import (
	"strconv"
	"strings"

	"go.uber.org/zap/zapcore"
)

// entryWriter writes one entry with its fields, already turned into text.
type entryWriter interface {
	writeEntry(ent zapcore.Entry, fields []kv) error
}

// flatCore is a zapcore.Core that turns fields into an ordered list of
// key/value strings (see flatEncoder) and hands each entry to an
// entryWriter. Fields given to With are encoded once and accumulate.
type flatCore struct {
	zapcore.LevelEnabler
	sep    string // joins the keys of nested objects and namespaces
	prefix string // the open namespace, if any
	fields []kv
	out    entryWriter
}

var _ zapcore.Core = (*flatCore)(nil)

func (c *flatCore) encode(fields []zapcore.Field) *flatEncoder {
	enc := newFlatEncoder(c.prefix, c.sep, c.fields)
	for _, f := range fields {
		f.AddTo(enc)
	}
	return enc
}

func (c *flatCore) With(fields []zapcore.Field) zapcore.Core {
	enc := c.encode(fields)
	clone := *c
	clone.prefix = enc.prefix
	clone.fields = *enc.kvs
	return &clone
}

func (c *flatCore) Check(ent zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(ent.Level) {
		return ce.AddCore(ent, c)
	}
	return ce
}

func (c *flatCore) Write(ent zapcore.Entry, fields []zapcore.Field) error {
	return c.out.writeEntry(ent, *c.encode(fields).kvs)
}

// Sync does nothing: every entry is written with a single write(2) or
// sendmsg(2) and nothing is buffered.
func (c *flatCore) Sync() error { return nil }

// priority returns the syslog priority of a zap level, as journald and
// sd-daemon(3) use it: debug 7, info 6, warn 4, error 3, and 2 (crit) for
// dpanic, panic and fatal.
func priority(l zapcore.Level) int {
	switch {
	case l <= zapcore.DebugLevel:
		return 7
	case l == zapcore.InfoLevel:
		return 6
	case l == zapcore.WarnLevel:
		return 4
	case l == zapcore.ErrorLevel:
		return 3
	default:
		return 2
	}
}

// prefixWriter writes each entry as one line for journald's stream
// transport: the sd-daemon(3) priority prefix ("<6>" for info), the message,
// then the fields as logfmt key=value pairs. There is no timestamp: journald
// stamps each line when it reads it. Newlines and other control characters
// in the message and the values are escaped, so one entry is always one
// line, written with a single Write.
type prefixWriter struct {
	w zapcore.WriteSyncer // locked
}

func (p *prefixWriter) writeEntry(ent zapcore.Entry, fields []kv) error {
	_, err := p.w.Write(p.line(ent, fields))
	return err
}

func (p *prefixWriter) line(ent zapcore.Entry, fields []kv) []byte {
	var b strings.Builder
	b.WriteByte('<')
	b.WriteString(strconv.Itoa(priority(ent.Level)))
	b.WriteByte('>')
	writeEscaped(&b, ent.Message)
	pair := func(k, v string) {
		b.WriteByte(' ')
		b.WriteString(logfmtKey(k))
		b.WriteByte('=')
		b.WriteString(logfmtValue(v))
	}
	if ent.LoggerName != "" {
		pair("logger", ent.LoggerName)
	}
	for _, f := range fields {
		pair(f.key, f.value)
	}
	if ent.Caller.Defined {
		pair("caller", ent.Caller.TrimmedPath())
	}
	if ent.Stack != "" {
		pair("stacktrace", ent.Stack)
	}
	b.WriteByte('\n')
	return []byte(b.String())
}

// writeEscaped writes s with newlines, carriage returns and other control
// characters (but not tabs) escaped as in a Go string literal.
func writeEscaped(b *strings.Builder, s string) {
	for _, r := range s {
		if r == '\t' || !isControl(r) {
			b.WriteRune(r)
			continue
		}
		q := strconv.QuoteRune(r)
		b.WriteString(q[1 : len(q)-1])
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) }

// logfmtKey replaces the characters that would break a key=value pair.
func logfmtKey(k string) string {
	if k == "" {
		return "_"
	}
	return strings.Map(func(r rune) rune {
		if r <= ' ' || r == '=' || r == '"' || isControl(r) {
			return '_'
		}
		return r
	}, k)
}

// logfmtValue quotes v (strconv.Quote) when it is empty or holds a space,
// "=", a quote, a backslash or a control character; otherwise it is written
// as is.
func logfmtValue(v string) string {
	if v == "" || strings.ContainsFunc(v, func(r rune) bool {
		return r <= ' ' || r == '=' || r == '"' || r == '\\' || isControl(r) || r == 0xfffd
	}) {
		return strconv.Quote(v)
	}
	return v
}
