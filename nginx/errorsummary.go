package nginx

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/internal/safefile"
)

// DefaultErrorLog is the error log nginx writes to when its configuration
// has no error_log directive, as Debian's and Ubuntu's packages set it up.
const DefaultErrorLog = "/var/log/nginx/error.log"

// DefaultPrefix is nginx's prefix on Debian, Ubuntu and RHEL (nginx -V:
// --prefix=/usr/share/nginx): relative error_log paths are taken from it.
const DefaultPrefix = "/usr/share/nginx"

// MaxErrorTail bounds how much of one error log ReadTail reads: its last
// 1 MiB. Older lines are not counted (ErrorSummary.Partial says so).
const MaxErrorTail = 1 << 20

// maxErrorLine caps one line of the error log; nginx itself writes at most
// NGX_MAX_ERROR_STR (2048) bytes a line, so longer ones are not nginx's.
const maxErrorLine = 64 << 10

// ErrorLog is a file an error_log directive writes to.
type ErrorLog struct {
	// Path is the file's absolute path.
	Path string
	// Level is the lowest severity written there ("error" when the
	// directive names none, as in nginx): "debug", "info", "notice",
	// "warn", "error", "crit", "alert" or "emerg".
	Level string
	// File and Line say where the directive was written; "" and 0 for
	// DefaultErrorLog.
	File string
	Line int
}

// Logs reports whether nginx writes upstream errors of severity level (an
// UpstreamError.Level: "error" for refused and timed-out connections,
// "crit" for unix sockets) to this file.
func (l ErrorLog) Logs(level string) bool {
	return severity(level) >= severity(l.Level)
}

// severities are nginx's log levels, lowest first (ngx_log.c).
var severities = []string{"debug", "info", "notice", "warn", "error", "crit", "alert", "emerg"}

func severity(level string) int {
	if i := slices.Index(severities, level); i >= 0 {
		return i
	}
	return slices.Index(severities, "error")
}

// ErrorLogs returns the files the configuration's error_log directives
// write to, in any context (main, http, server, location, stream, mail),
// each file once, in the order written (nginx's core module: "error_log
// file [level]"). Relative paths are taken from prefix (nginx's -p,
// DefaultPrefix when ""). Without any error_log directive it returns
// DefaultErrorLog. Destinations that are no file (stderr, syslog:...,
// memory:...) are listed in skipped, each with the directive's file:line.
func (c *Config) ErrorLogs(prefix string) (logs []ErrorLog, skipped []string) {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	found := false
	walk(c.Directives, nil, func(d *Directive, _ []*Directive) {
		if d.Name != "error_log" || d.Block != nil || len(d.Args) == 0 {
			return
		}
		found = true
		dest := d.Args[0]
		switch {
		case dest == "stderr", strings.HasPrefix(dest, "syslog:"), strings.HasPrefix(dest, "memory:"):
			skipped = append(skipped, fmt.Sprintf("error_log %s (%s:%d) is not a file", dest, d.File, d.Line))
			return
		}
		if !filepath.IsAbs(dest) {
			dest = filepath.Join(prefix, dest)
		}
		dest = filepath.Clean(dest)
		level := "error"
		if len(d.Args) > 1 {
			level = d.Args[1]
		}
		for i := range logs {
			if logs[i].Path == dest {
				// The same file at several levels: it holds the lowest.
				if severity(level) < severity(logs[i].Level) {
					logs[i].Level = level
				}
				return
			}
		}
		logs = append(logs, ErrorLog{Path: dest, Level: level, File: d.File, Line: d.Line})
	})
	if !found {
		logs = []ErrorLog{{Path: DefaultErrorLog, Level: "error"}}
	}
	return logs, skipped
}

// ErrorCount is how often nginx's error log reported upstream errors of
// one errno for one address (or, for "no live upstreams", one upstream
// group).
type ErrorCount struct {
	// Addr is the address, as UpstreamError.Addr ("127.0.0.1:8080",
	// "unix:/run/app.sock"); "" for a group's "no live upstreams".
	Addr string
	// Group is the upstream group of "no live upstreams"; "" otherwise.
	Group string
	// Errno is the error number (111 connection refused, 13 permission
	// denied, 110 timed out ...); 0 for "no live upstreams".
	Errno int
	// Kind is KindConnectFailed, KindTimedOut or KindNoLiveUpstreams.
	Kind string
	// Text is the errno's text as nginx wrote it ("Connection refused"),
	// or "no live upstreams".
	Text string
	// Count is the number of lines.
	Count int
	// First and Last are the times of the first and the last line, in the
	// local time zone (nginx writes local time).
	First, Last time.Time
}

// PartialLog is an error log of which only the last MaxErrorTail bytes
// were read, and whose first line read is younger than the summary's
// Since: errors between Since and From are not counted.
type PartialLog struct {
	Path string
	From time.Time
}

// ErrorSummary counts the upstream errors (ParseErrorLine) of nginx's
// error logs written at or after Since, by address and errno. The zero
// value is not usable: see NewErrorSummary.
type ErrorSummary struct {
	// Since is the oldest time counted.
	Since time.Time
	// Read are the files read (ReadTail), in order.
	Read []string
	// Partial are the files whose tail did not reach back to Since.
	Partial []PartialLog

	counts map[countKey]*ErrorCount
}

type countKey struct {
	addr, group string
	errno       int
}

// NewErrorSummary returns an empty summary of the errors written at or
// after since.
func NewErrorSummary(since time.Time) *ErrorSummary {
	return &ErrorSummary{Since: since, counts: map[countKey]*ErrorCount{}}
}

// Add counts line when it is an upstream error (ParseErrorLine) written
// at or after s.Since, and reports whether it did.
func (s *ErrorSummary) Add(line string) bool {
	e, ok := ParseErrorLine(line)
	if !ok || e.Time.Before(s.Since) {
		return false
	}
	k := countKey{addr: e.Addr, errno: e.Errno}
	if e.Kind == KindNoLiveUpstreams {
		k = countKey{group: e.Group}
	}
	c := s.counts[k]
	if c == nil {
		c = &ErrorCount{Addr: k.addr, Group: k.group, Errno: e.Errno, Kind: e.Kind, Text: errnoText(e), First: e.Time}
		s.counts[k] = c
	}
	c.Count++
	if e.Time.Before(c.First) {
		c.First = e.Time
	}
	if e.Time.After(c.Last) {
		c.Last = e.Time
	}
	return true
}

// errnoText is the text after "(N: " in e's message, up to ")": nginx
// writes strerror(3) there.
func errnoText(e UpstreamError) string {
	if e.Kind == KindNoLiveUpstreams {
		return "no live upstreams"
	}
	marker := "(" + strconv.Itoa(e.Errno) + ": "
	i := strings.Index(e.Message, marker)
	if i < 0 {
		return ""
	}
	t := e.Message[i+len(marker):]
	if j := strings.IndexByte(t, ')'); j >= 0 {
		t = t[:j]
	}
	return t
}

// ReadTail counts the upstream errors in the last MaxErrorTail bytes of
// the error log at path (a line cut by that bound is skipped). The file
// must be a regular file, not a symbolic link (internal/safefile). When
// more than the bound was left unread and the first line read is younger
// than s.Since, the file is listed in s.Partial. Errors: the file cannot
// be opened or read ("read error log PATH: ..."); an error matching
// fs.ErrNotExist when it does not exist.
func (s *ErrorSummary) ReadTail(path string) error {
	f, err := safefile.Open(path)
	if err != nil {
		return fmt.Errorf("read error log %s: %w", path, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("read error log %s: %w", path, err)
	}
	start := max(fi.Size()-MaxErrorTail, 0)
	skipFirst := false
	if start > 0 {
		// The tail starts mid-line unless the byte before it ends one.
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, start-1); err != nil {
			return fmt.Errorf("read error log %s: %w", path, err)
		}
		skipFirst = b[0] != '\n'
	}
	r := bufio.NewReaderSize(io.NewSectionReader(f, start, MaxErrorTail), 32<<10)
	first := true
	handle := func(line []byte, tooLong bool) {
		if skipFirst {
			skipFirst = false
			return
		}
		if first && start > 0 {
			if t, ok := lineTime(line); ok && t.After(s.Since) {
				s.Partial = append(s.Partial, PartialLog{Path: path, From: t})
			}
		}
		first = false
		if !tooLong {
			s.Add(string(line))
		}
	}
	var line []byte
	tooLong := false
	for {
		chunk, err := r.ReadSlice('\n')
		if len(line)+len(chunk) > maxErrorLine {
			tooLong = true // not nginx's: skipped, its start kept for lineTime
		} else {
			line = append(line, chunk...)
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil && err != io.EOF {
			return fmt.Errorf("read error log %s: %w", path, err)
		}
		if len(line) > 0 {
			handle(line, tooLong)
		}
		line, tooLong = line[:0], false
		if err == io.EOF {
			break
		}
	}
	s.Read = append(s.Read, path)
	return nil
}

// lineTime reads the time an error log line starts with.
func lineTime(line []byte) (time.Time, bool) {
	if len(line) < 19 || bytes.IndexByte(line[:19], '\n') >= 0 {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation("2006/01/02 15:04:05", string(line[:19]), time.Local)
	return t, err == nil
}

// Counts returns the counts of addr (as UpstreamError.Addr; see
// NormalizeAddr), most frequent first, then by errno.
func (s *ErrorSummary) Counts(addr string) []ErrorCount {
	var out []ErrorCount
	for k, c := range s.counts {
		if k.addr == addr && k.group == "" {
			out = append(out, *c)
		}
	}
	sortCounts(out)
	return out
}

// NoLive returns the "no live upstreams" count of the upstream group, or
// false when the logs had none.
func (s *ErrorSummary) NoLive(group string) (ErrorCount, bool) {
	c := s.counts[countKey{group: group}]
	if c == nil {
		return ErrorCount{}, false
	}
	return *c, true
}

// All returns every count, by address (groups last), most frequent
// first.
func (s *ErrorSummary) All() []ErrorCount {
	out := make([]ErrorCount, 0, len(s.counts))
	for _, c := range s.counts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b ErrorCount) int {
		if (a.Group == "") != (b.Group == "") {
			if a.Group == "" {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.Addr+a.Group, b.Addr+b.Group); c != 0 {
			return c
		}
		return compareCounts(a, b)
	})
	return out
}

func sortCounts(cs []ErrorCount) { slices.SortFunc(cs, compareCounts) }

func compareCounts(a, b ErrorCount) int {
	if a.Count != b.Count {
		return b.Count - a.Count
	}
	return a.Errno - b.Errno
}
