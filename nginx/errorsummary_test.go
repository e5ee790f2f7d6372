package nginx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestErrorSummarySession counts the upstream errors of a whole log
// written by a real nginx (testdata/errorlog/session.log).
func TestErrorSummarySession(t *testing.T) {
	s := NewErrorSummary(time.Time{})
	if err := s.ReadTail("testdata/errorlog/session.log"); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, c := range s.All() {
		got[c.Addr+c.Group+fmt.Sprintf(" %d", c.Errno)] = fmt.Sprintf("%s ×%d %s-%s", c.Text, c.Count, c.First.Format("15:04:05"), c.Last.Format("15:04:05"))
	}
	want := map[string]string{
		"127.0.0.1:1 111":                 "Connection refused ×3 09:00:41-09:00:43",
		"127.0.0.1:2 111":                 "Connection refused ×1 09:00:43-09:00:43",
		"[::1]:1 111":                     "Connection refused ×1 09:00:41-09:00:41",
		"unix:" + tmp + "/missing.sock 2": "No such file or directory ×1 09:00:41-09:00:41",
		"unix:" + tmp + "/perm.sock 13":   "Permission denied ×1 09:00:43-09:00:43",
		"127.0.0.1:35631 110":             "Connection timed out ×1 09:00:42-09:00:42",
		"127.0.0.1:49549 110":             "Connection timed out ×1 09:00:43-09:00:43",
		"backend 0":                       "no live upstreams ×1 09:00:43-09:00:43",
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: %q, want %q", k, got[k], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("counts %v, want %v", got, want)
	}
	if cs := s.Counts("127.0.0.1:1"); len(cs) != 1 || cs[0].Count != 3 || cs[0].Kind != KindConnectFailed {
		t.Errorf("Counts(127.0.0.1:1) = %+v", cs)
	}
	if c, ok := s.NoLive("backend"); !ok || c.Count != 1 {
		t.Errorf("NoLive(backend) = %+v, %v", c, ok)
	}
	if len(s.Partial) != 0 || len(s.Read) != 1 {
		t.Errorf("read %v, partial %v", s.Read, s.Partial)
	}
}

// TestErrorSummarySince counts only the lines at or after Since.
func TestErrorSummarySince(t *testing.T) {
	since, _ := time.ParseInLocation("2006/01/02 15:04:05", "2026/11/21 09:00:43", time.Local)
	s := NewErrorSummary(since)
	if err := s.ReadTail("testdata/errorlog/session.log"); err != nil {
		t.Fatal(err)
	}
	if cs := s.Counts("127.0.0.1:1"); len(cs) != 1 || cs[0].Count != 2 {
		t.Errorf("Counts(127.0.0.1:1) since 09:00:43 = %+v, want the /group and /php lines only", cs)
	}
	if cs := s.Counts("[::1]:1"); len(cs) != 0 {
		t.Errorf("Counts([::1]:1) since 09:00:43 = %+v, want none", cs)
	}
}

// TestErrorSummaryTail reads only the last MaxErrorTail bytes of a long
// log: the line cut by the bound is skipped, and the log is partial when
// its tail starts after Since.
func TestErrorSummaryTail(t *testing.T) {
	line, err := os.ReadFile("testdata/errorlog/refused.log")
	if err != nil {
		t.Fatal(err)
	}
	older := strings.Replace(string(line), "09:00:41", "08:00:00", 1)
	newer := strings.Replace(string(line), "09:00:41", "09:30:00", 1)
	var b strings.Builder
	for b.Len() < 2*MaxErrorTail {
		b.WriteString(older)
	}
	// A line longer than any of nginx's, then the newest lines.
	b.WriteString(strings.Repeat("x", maxErrorLine+10) + "\n")
	n := 0
	for b.Len() < 3*MaxErrorTail {
		b.WriteString(newer)
		n++
	}
	path := filepath.Join(t.TempDir(), "error.log")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	since, _ := time.ParseInLocation("2006/01/02", "2026/11/21", time.Local)
	s := NewErrorSummary(since)
	if err := s.ReadTail(path); err != nil {
		t.Fatal(err)
	}
	cs := s.Counts("127.0.0.1:1")
	// The tail holds n newer lines, the first of them maybe cut.
	if len(cs) != 1 || cs[0].Count < n-1 || cs[0].Count > n || cs[0].First.Format("15:04") != "09:30" {
		t.Fatalf("counts of the tail: %+v, want %d or %d lines from 09:30", cs, n-1, n)
	}
	if len(s.Partial) != 1 || s.Partial[0].Path != path || s.Partial[0].From.Format("15:04") != "09:30" {
		t.Errorf("partial %+v, want %s from 09:30", s.Partial, path)
	}
}

func TestErrorSummaryUnreadable(t *testing.T) {
	s := NewErrorSummary(time.Time{})
	err := s.ReadTail(filepath.Join(t.TempDir(), "missing.log"))
	if !errors.Is(err, fs.ErrNotExist) || !strings.HasPrefix(err.Error(), "read error log ") {
		t.Errorf("missing log: %v", err)
	}
	dir := t.TempDir()
	link := filepath.Join(dir, "error.log")
	if err := os.Symlink("/etc/passwd", link); err != nil {
		t.Fatal(err)
	}
	if err := s.ReadTail(link); err == nil || !strings.Contains(err.Error(), "symbolic link") {
		t.Errorf("symbolic link: %v", err)
	}
	if len(s.Read) != 0 {
		t.Errorf("read %v", s.Read)
	}
}

func TestConfigErrorLogs(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	text := `error_log /var/log/nginx/main.log warn;
error_log stderr;
events {}
http {
    error_log logs/http.log;
    server {
        error_log /var/log/nginx/main.log info;
        location / { error_log syslog:server=unix:/dev/log; }
    }
}
stream { error_log /var/log/nginx/stream.log crit; }
`
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := ParseConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	logs, skipped := c.ErrorLogs("/opt/nginx")
	var got []string
	for _, l := range logs {
		got = append(got, fmt.Sprintf("%s %s %d", l.Path, l.Level, l.Line))
	}
	want := []string{"/var/log/nginx/main.log info 1", "/opt/nginx/logs/http.log error 5", "/var/log/nginx/stream.log crit 11"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("error logs:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(skipped) != 2 || !strings.Contains(skipped[0], "error_log stderr ("+conf+":2) is not a file") {
		t.Errorf("skipped %q", skipped)
	}
	if logs[2].Logs("error") || !logs[2].Logs("crit") || !logs[0].Logs("error") {
		t.Errorf("Logs: a crit log holds crit only, an info log holds error")
	}

	if err := os.WriteFile(conf, []byte("events {}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err = ParseConfig(conf)
	if err != nil {
		t.Fatal(err)
	}
	if logs, _ := c.ErrorLogs(""); len(logs) != 1 || logs[0].Path != DefaultErrorLog {
		t.Errorf("no error_log: %+v, want %s", logs, DefaultErrorLog)
	}
}
