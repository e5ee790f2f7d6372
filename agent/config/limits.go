package config

import (
	"fmt"
	"time"
)

// Bounds on a configuration file, checked before it is decoded: the TOML
// decoder's time and memory grow with the square of the nesting depth (a
// 24 KB file of inline tables 6,000 deep took 1.5 GB), so a file past them
// is refused before the decoder sees it.
const (
	// MaxFileSize is the largest configuration file medic reads, in bytes
	// (4 MiB; a file with a thousand checks is about 160 KB to 300 KB, so
	// ten thousand checks fit).
	MaxFileSize = 4 << 20
	// MaxDepth is the deepest nesting of tables and arrays a file may
	// have: the pieces of a [table.header], plus those of a dotted key
	// (a.b.c = 1 nests two tables), plus each open [ or { of a value.
	// medic's own keys nest at most 4 deep.
	MaxDepth = 32
)

// MaxWorkers is the largest [agent] workers.
const MaxWorkers = 1024

// Lower bounds of the durations that set how often medic wakes up: below
// them a check would keep a CPU busy (interval = "2ns" took 116 %).
const (
	// MinInterval is the shortest interval (agent and check).
	MinInterval = 100 * time.Millisecond
	// MinRetryInterval is the shortest retry_interval. It applies only
	// while a check fails.
	MinRetryInterval = 10 * time.Millisecond
	// MinTimeout is the shortest probe timeout (agent and check).
	MinTimeout = 10 * time.Millisecond
)

// MaxIncidentHistory is the largest incident_history: `medic incidents`
// reads every kept record, one small file each.
const MaxIncidentHistory = 100_000

// prescan checks the size of data and the nesting depth of the TOML in it
// without decoding it, in one pass and constant memory. It understands
// TOML's strings (basic, literal and multi-line, with escapes) and comments,
// so brackets and dots inside them do not count. It is not a parser: text
// that is not TOML passes when it stays within the bounds, and the decoder
// then reports what is wrong with it. It returns the first bound passed, as
// an Error with the line where it was passed, or nil.
func prescan(data []byte, file string) *Error {
	if len(data) > MaxFileSize {
		line := 1
		for _, c := range data[:MaxFileSize] {
			if c == '\n' {
				line++
			}
		}
		return &Error{File: file, Line: line, Msg: fmt.Sprintf("file too large: more than %d bytes (4 MiB), the most medic reads", MaxFileSize)}
	}
	s := scanner{data: data, line: 1}
	if err := s.scan(); err != "" {
		return &Error{File: file, Line: s.line, Msg: err}
	}
	return nil
}

// frame is an open [ or { of a value, with the extra tables the dotted key
// that opened it nests (pieces minus one).
type frame struct {
	table bool // an inline table ({), else an array ([)
	extra int
}

type scanner struct {
	data  []byte
	i     int
	line  int
	base  int     // pieces of the current [table] header
	open  int     // levels the open frames nest, extra dotted pieces included
	stack []frame // at most MaxDepth deep: scan stops past it
	dots  int     // extra pieces of the key just read, until its value ends
}

func (s *scanner) depth() int { return s.base + s.open + s.dots }

func tooDeep(d int) string {
	return fmt.Sprintf("nested too deep: %d levels of tables and arrays, at most %d", d, MaxDepth)
}

// scan runs over the whole text and returns what bound was passed, or "".
func (s *scanner) scan() string {
	atLineStart := true
	for s.i < len(s.data) {
		c := s.data[s.i]
		if atLineStart && len(s.stack) == 0 {
			switch c {
			case ' ', '\t', '\r':
				s.i++
				continue
			case '\n':
				s.i++
				s.line++
				continue
			case '#':
				s.comment()
				continue
			case '[':
				if msg := s.header(); msg != "" {
					return msg
				}
				continue
			}
			atLineStart = false
			s.dots = 0
			if msg := s.key(); msg != "" {
				return msg
			}
			continue
		}
		switch c {
		case '\n':
			s.i++
			s.line++
			if len(s.stack) == 0 {
				atLineStart = true
			}
		case '#':
			s.comment()
		case '"', '\'':
			s.str()
		case '[', '{':
			s.i++
			s.stack = append(s.stack, frame{table: c == '{', extra: s.dots})
			s.open += 1 + s.dots
			s.dots = 0
			if d := s.depth(); d > MaxDepth {
				return tooDeep(d)
			}
			if c == '{' {
				if msg := s.key(); msg != "" {
					return msg
				}
			}
		case ']', '}':
			s.i++
			if n := len(s.stack); n > 0 {
				s.open -= 1 + s.stack[n-1].extra
				s.stack = s.stack[:n-1]
			}
			s.dots = 0
		case ',':
			s.i++
			s.dots = 0
			if n := len(s.stack); n > 0 && s.stack[n-1].table {
				if msg := s.key(); msg != "" {
					return msg
				}
			}
		default:
			s.i++
		}
	}
	return ""
}

// key reads a key up to its '=' (or an empty inline table's '}', or the end
// of the line), counting its dotted pieces into s.dots.
func (s *scanner) key() string {
	for s.i < len(s.data) {
		switch c := s.data[s.i]; c {
		case '=':
			s.i++
			return ""
		case '}', '\n', '#':
			return "" // the caller handles them
		case '"', '\'':
			s.str()
		case '.':
			s.i++
			s.dots++
			if d := s.depth(); d > MaxDepth {
				return tooDeep(d)
			}
		default:
			s.i++
		}
	}
	return ""
}

// header reads a [table] or [[array.of.tables]] header and sets s.base to
// its pieces.
func (s *scanner) header() string {
	s.i++ // [
	if s.i < len(s.data) && s.data[s.i] == '[' {
		s.i++
	}
	pieces := 1
	for s.i < len(s.data) {
		switch c := s.data[s.i]; c {
		case ']':
			s.i++
			if s.i < len(s.data) && s.data[s.i] == ']' {
				s.i++
			}
			s.base = pieces
			s.open, s.dots = 0, 0
			return ""
		case '\n':
			return "" // malformed; the decoder says so
		case '"', '\'':
			s.str()
		case '.':
			s.i++
			pieces++
			if pieces > MaxDepth {
				return tooDeep(pieces)
			}
		default:
			s.i++
		}
	}
	return ""
}

// comment skips to the end of the line.
func (s *scanner) comment() {
	for s.i < len(s.data) && s.data[s.i] != '\n' {
		s.i++
	}
}

// str skips a string starting at s.i: basic ("..."), literal ('...') or
// multi-line (three quotes of either kind), counting the lines it spans. An
// unterminated single-line string ends at the end of its line.
func (s *scanner) str() {
	q := s.data[s.i]
	if s.i+2 < len(s.data) && s.data[s.i+1] == q && s.data[s.i+2] == q {
		s.i += 3
		for s.i < len(s.data) {
			c := s.data[s.i]
			switch {
			case c == '\\' && q == '"':
				s.i++
				if s.i < len(s.data) && s.data[s.i] == '\n' {
					s.line++
				}
				s.i++
			case c == q && s.i+2 < len(s.data) && s.data[s.i+1] == q && s.data[s.i+2] == q:
				s.i += 3
				// Up to two more quotes belong to the string's content.
				for k := 0; k < 2 && s.i < len(s.data) && s.data[s.i] == q; k++ {
					s.i++
				}
				return
			default:
				if c == '\n' {
					s.line++
				}
				s.i++
			}
		}
		return
	}
	s.i++
	for s.i < len(s.data) {
		c := s.data[s.i]
		switch {
		case c == '\n':
			return
		case c == '\\' && q == '"':
			s.i += 2
			if s.i <= len(s.data) && s.data[s.i-1] == '\n' {
				s.i-- // an escaped newline is not valid; let the newline count
			}
		case c == q:
			s.i++
			return
		default:
			s.i++
		}
	}
}
