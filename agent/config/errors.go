package config

import (
	"strconv"
	"strings"
)

// Error is one problem found in a configuration file. Its text reads
//
//	medic.toml:12: check[2].probe[0].address: missing port
//
// File is the path as given to Load or Parse; Line is the 1-based line of the
// key (0 when unknown, and then ":12" is left out); Key is the key path with
// zero-based indexes into arrays of tables (empty when the problem is not
// about one key, and then it is left out too); Msg says what is wrong.
type Error struct {
	File string
	Line int
	Key  string
	Msg  string
}

// Error formats e as "file:line: key: msg", leaving out the parts that are
// unknown.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		if b.Len() > 0 {
			b.WriteByte(':')
		} else {
			b.WriteString("line ")
		}
		b.WriteString(strconv.Itoa(e.Line))
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found in one configuration file, in the order of
// their lines. Load, Parse and Validate return it (never empty) as their
// error; read it with errors.As. Each *Error is also reachable through
// errors.As(err, new(*Error)), which finds the first.
type Errors []*Error

// Error joins the problems, one per line.
func (es Errors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap returns the problems as a slice of errors for errors.Is and errors.As.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}
