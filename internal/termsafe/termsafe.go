// Package termsafe makes text from outside medic (a backend's HTTP reason
// phrase, a pause reason, an error from a peer) safe to print on a
// terminal: every character a terminal could act on is replaced by a
// visible escape, so that no sequence can clear, recolour or retitle the
// screen, move the cursor, or reorder what is shown.
//
// Escaped are the C0 controls (U+0000–U+001F, which include ESC, BEL, CR
// and the start of OSC and CSI sequences), DEL, the C1 controls
// (U+0080–U+009F, among them the one-byte CSI and OSC), the Unicode
// bidirectional controls (U+061C, U+200E, U+200F, U+202A–U+202E,
// U+2066–U+2069), the line and paragraph separators U+2028 and U+2029, and
// bytes that are not valid UTF-8. ESC becomes `\x1b`, CR `\r`, U+202E
// `\u202e`, an invalid byte `\xff`: the text stays readable and nothing of
// it is lost. Other text, backslashes included, is left as it is.
package termsafe

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Escape returns s with every control character escaped, newlines and tabs
// included: use it for one line or one table cell.
func Escape(s string) string { return escape(s, false) }

// EscapeLines is Escape, but keeps newlines (LF) as they are: use it for
// text of several lines printed as a block, such as the problems of a
// refused reload, one per line.
func EscapeLines(s string) string { return escape(s, true) }

func escape(s string, keepLF bool) string {
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if needs(r, size, keepLF) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 16)
	b.WriteString(s[:i])
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case !needs(r, size, keepLF):
			b.WriteString(s[i : i+size])
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x80:
			fmt.Fprintf(&b, `\x%02x`, r)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
		i += size
	}
	return b.String()
}

// needs reports whether the rune r, size bytes long in the input, must be
// escaped.
func needs(r rune, size int, keepLF bool) bool {
	switch {
	case r == utf8.RuneError && size == 1:
		return true
	case r == '\n':
		return !keepLF
	case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f:
		return true
	case r == 0x061c, r == 0x200e, r == 0x200f, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x2028, r == 0x2029:
		return true
	}
	return false
}

// Truncate returns s cut to at most max bytes at a character boundary,
// with "…" appended when something was cut (so the result may be up to
// three bytes longer than max).
func Truncate(s string, max int) string {
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}
