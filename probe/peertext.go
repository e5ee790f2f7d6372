package probe

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPeerText is the most bytes of text from a probed server that one field
// of a Result carries: a status line's reason phrase, a Location header. A
// server's text goes from the Result into status replies, logs, the state
// file, mails and webhooks, so it is bounded here, where it is read (a 5 MB
// reason phrase once became a 35 MB webhook and a 35 MB state file).
const MaxPeerText = 512

// MaxErrText is the most bytes of a failed Result's Err text: the target,
// which comes from the configuration, and at most MaxPeerText bytes of what
// the server sent.
const MaxErrText = 2 * MaxPeerText

// MaxHeaderRead is the most bytes of response headers (the status line
// included) an HTTP probe reads; a server that sends more fails the probe.
// nginx itself refuses upstream response headers past 4 or 8 KiB
// (proxy_buffer_size), so a health endpoint never comes near it.
const MaxHeaderRead = 64 << 10

// PeerText returns s fit to be carried and shown: every control character
// (C0, DEL, C1, and the line and paragraph separators U+2028 and U+2029)
// and every byte that is not UTF-8 is replaced by U+FFFD, and text longer
// than MaxPeerText bytes is cut there (at a character's boundary) and
// marked "…[N bytes cut]".
func PeerText(s string) string { return bound(s, MaxPeerText) }

// bound is PeerText with max bytes.
func bound(s string, max int) string {
	clean := utf8.ValidString(s)
	for _, r := range s {
		if !clean || !safeRune(r) {
			clean = false
			break
		}
	}
	if clean && len(s) <= max {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), max) + 32)
	for i, r := range s {
		if !safeRune(r) {
			r = utf8.RuneError
		}
		if b.Len()+utf8.RuneLen(r) > max {
			b.WriteString("…[" + strconv.Itoa(len(s)-i) + " bytes cut]")
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// safeRune says whether r may stay in peer text: no control character, no
// line terminator, no invalid byte (which ranging over a string yields as
// utf8.RuneError, itself harmless to keep).
func safeRune(r rune) bool {
	return !unicode.IsControl(r) && r != '\u2028' && r != '\u2029'
}

// boundedError is a probe's error whose text was made fit to show (bounded
// to MaxErrText, control characters replaced). It unwraps to the error it
// stands for, so errors.Is and errors.As still read the cause.
type boundedError struct {
	err  error
	text string
}

func (e *boundedError) Error() string { return e.text }
func (e *boundedError) Unwrap() error { return e.err }

// boundErr returns err, or err wrapped so that its text is bounded and
// clean when it is not already.
func boundErr(err error) error {
	if err == nil {
		return nil
	}
	text := err.Error()
	if b := bound(text, MaxErrText); b != text {
		return &boundedError{err: err, text: b}
	}
	return err
}
