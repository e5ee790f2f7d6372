// Command testsummary reads `go test -json` output (test2json events) on
// standard input and prints what people need from it, as it comes: one line
// per package (ok, FAIL, or no test files, with its time and counts), the
// whole output of each failed test and of each package that failed outside
// a test (a build error, a panic, a timeout), and at the end the counts of
// packages and tests, the failed tests and the skipped ones with their
// reason. scripts/test pipes `go test -json ./...` through it.
//
//	go test -json ./... | testsummary [-summary FILE]
//
// -summary writes the one-line counts to FILE as well, for scripts/test's
// final summary. It exits 1 when a package or a test failed, else 0. Lines
// that are not JSON events are printed as they are.
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"
)

// event is one line of test2json output (go doc test2json).
type event struct {
	Time        time.Time
	Action      string
	Package     string
	ImportPath  string // of build-output and build-fail events
	Test        string
	Elapsed     float64
	Output      string
	FailedBuild string
}

// maxBuffered bounds the output kept of one test or one package; past it
// only the last maxBuffered bytes are kept.
const maxBuffered = 1 << 20

// buffer keeps the tail of an output stream.
type buffer struct {
	b       []byte
	dropped int
}

func (b *buffer) add(s string) {
	b.b = append(b.b, s...)
	if over := len(b.b) - maxBuffered; over > 0 {
		b.b = append(b.b[:0], b.b[over:]...)
		b.dropped += over
	}
}

func (b *buffer) String() string {
	if b.dropped > 0 {
		return fmt.Sprintf("[... %d bytes of output left out ...]\n%s", b.dropped, b.b)
	}
	return string(b.b)
}

// pkgState is what is known of one package so far.
type pkgState struct {
	output                  buffer             // output outside any test
	tests                   map[string]*buffer // output of each running test
	passed, failed, skipped int
	done                    bool
}

// skip is a skipped test and the last line it logged (its reason).
type skip struct{ name, reason string }

// summary accumulates the events of a whole run.
type summary struct {
	out      io.Writer
	pkgs     map[string]*pkgState
	order    []string
	failed   []string // package: test
	skipped  []skip
	counts   struct{ pkgOK, pkgFail, pkgNoTests, passed, failed, skipped int }
	anyError bool
}

func newSummary(out io.Writer) *summary {
	return &summary{out: out, pkgs: map[string]*pkgState{}}
}

func (s *summary) pkg(name string) *pkgState {
	p := s.pkgs[name]
	if p == nil {
		p = &pkgState{tests: map[string]*buffer{}}
		s.pkgs[name] = p
		s.order = append(s.order, name)
	}
	return p
}

// line handles one line of input.
func (s *summary) line(l []byte) {
	var e event
	if len(l) == 0 || l[0] != '{' || json.Unmarshal(l, &e) != nil || e.Action == "" {
		fmt.Fprintf(s.out, "%s\n", l)
		return
	}
	if e.Action == "build-output" || e.Action == "build-fail" {
		// Build errors come before the package's events, keyed by the
		// import path (with its test variant); fail events name them
		// in FailedBuild.
		name := e.ImportPath
		if i := strings.IndexByte(name, ' '); i >= 0 {
			name = name[:i]
		}
		if e.Action == "build-output" && name != "" {
			s.pkg(name).output.add(e.Output)
		}
		return
	}
	if e.Package == "" {
		return
	}
	p := s.pkg(e.Package)
	if e.Test == "" {
		switch e.Action {
		case "output":
			// go test's own per-package lines (ok, FAIL, PASS) are
			// replaced by ours.
			if !isPackageResult(e.Output) {
				p.output.add(e.Output)
			}
		case "pass", "fail", "skip":
			s.packageDone(e, p)
		}
		return
	}
	switch e.Action {
	case "run":
		p.tests[e.Test] = &buffer{}
	case "output":
		b := p.tests[e.Test]
		if b == nil {
			b = &buffer{}
			p.tests[e.Test] = b
		}
		b.add(e.Output)
	case "pass":
		p.passed++
		s.counts.passed++
		delete(p.tests, e.Test)
	case "skip":
		p.skipped++
		s.counts.skipped++
		s.skipped = append(s.skipped, skip{e.Package + " " + e.Test, skipReason(p.tests[e.Test])})
		delete(p.tests, e.Test)
	case "fail":
		p.failed++
		s.counts.failed++
		s.failed = append(s.failed, e.Package+" "+e.Test)
		s.anyError = true
		// A parent fails after its subtests: its output is its own
		// lines and its summary line; print it all, once.
		if b := p.tests[e.Test]; b != nil {
			fmt.Fprint(s.out, b.String())
		}
		delete(p.tests, e.Test)
	}
}

// isPackageResult reports whether a package-level output line is one of go
// test's result lines.
func isPackageResult(l string) bool {
	t := strings.TrimRight(l, "\n")
	return t == "PASS" || t == "FAIL" || strings.HasPrefix(t, "ok  \t") || strings.HasPrefix(t, "FAIL\t") ||
		strings.HasPrefix(t, "?   \t") || strings.HasPrefix(t, "ok \t")
}

// skipReason is the last line a skipped test logged before "--- SKIP",
// without the file:line prefix.
func skipReason(b *buffer) string {
	if b == nil {
		return ""
	}
	var last string
	for _, l := range strings.Split(b.String(), "\n") {
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "=== ") || strings.HasPrefix(t, "--- SKIP") {
			continue
		}
		last = t
	}
	if i := strings.Index(last, ".go:"); i >= 0 {
		if j := strings.Index(last[i:], ": "); j >= 0 {
			last = last[i+j+2:]
		}
	}
	return last
}

func (s *summary) packageDone(e event, p *pkgState) {
	if p.done {
		return
	}
	p.done = true
	counts := fmt.Sprintf("%d passed", p.passed)
	if p.failed > 0 {
		counts += fmt.Sprintf(", %d failed", p.failed)
	}
	if p.skipped > 0 {
		counts += fmt.Sprintf(", %d skipped", p.skipped)
	}
	switch {
	case e.Action == "skip" || (e.Action == "pass" && p.passed+p.failed+p.skipped == 0 && strings.Contains(p.output.String(), "no tests to run")):
		s.counts.pkgNoTests++
	case e.Action == "pass":
		s.counts.pkgOK++
		fmt.Fprintf(s.out, "ok    %s %.1fs (%s)\n", e.Package, e.Elapsed, counts)
	default:
		s.counts.pkgFail++
		s.anyError = true
		// Tests still running when the package failed did not finish
		// (a panic, a timeout): they failed, with what they printed.
		var running []string
		for name := range p.tests {
			running = append(running, name)
		}
		sort.Strings(running)
		for _, name := range running {
			fmt.Fprint(s.out, p.tests[name].String())
			fmt.Fprintf(s.out, "--- FAIL: %s (did not finish)\n", name)
			p.failed++
			s.counts.failed++
			s.failed = append(s.failed, e.Package+" "+name+" (did not finish)")
		}
		if out := p.output.String(); strings.TrimSpace(out) != "" {
			fmt.Fprint(s.out, out)
		}
		why := counts
		if e.FailedBuild != "" {
			why = "build failed"
		}
		fmt.Fprintf(s.out, "FAIL  %s %.1fs (%s)\n", e.Package, e.Elapsed, why)
	}
}

// finish prints the summary and returns its one-line form.
func (s *summary) finish() string {
	// A package with no end event (go test killed) counts as failed.
	for _, name := range s.order {
		if p := s.pkgs[name]; !p.done {
			s.packageDone(event{Action: "fail", Package: name}, p)
		}
	}
	c := s.counts
	line := fmt.Sprintf("packages: %d ok, %d failed, %d without tests; tests: %d passed, %d failed, %d skipped",
		c.pkgOK, c.pkgFail, c.pkgNoTests, c.passed, c.failed, c.skipped)
	fmt.Fprintln(s.out)
	if len(s.skipped) > 0 {
		fmt.Fprintf(s.out, "skipped (%d):\n", len(s.skipped))
		const show = 40
		for i, sk := range s.skipped {
			if i == show {
				fmt.Fprintf(s.out, "  ... and %d more\n", len(s.skipped)-show)
				break
			}
			if sk.reason != "" {
				fmt.Fprintf(s.out, "  %s: %s\n", sk.name, sk.reason)
			} else {
				fmt.Fprintf(s.out, "  %s\n", sk.name)
			}
		}
	}
	if failed := leafFailures(s.failed); len(failed) > 0 {
		fmt.Fprintf(s.out, "failed (%d):\n", len(failed))
		for _, f := range failed {
			fmt.Fprintf(s.out, "  %s\n", f)
		}
	}
	fmt.Fprintln(s.out, line)
	return line
}

// leafFailures drops the tests that failed only because a subtest did
// (TestA when TestA/b failed too).
func leafFailures(failed []string) []string {
	var out []string
	for _, f := range failed {
		parent := false
		for _, g := range failed {
			if strings.HasPrefix(g, f+"/") {
				parent = true
				break
			}
		}
		if !parent {
			out = append(out, f)
		}
	}
	return out
}

func main() {
	summaryFile := flag.String("summary", "", "also write the one-line counts to this file")
	flag.Parse()
	s := newSummary(os.Stdout)
	r := bufio.NewReaderSize(os.Stdin, 64<<10)
	for {
		l, err := r.ReadBytes('\n')
		if len(l) > 0 {
			s.line([]byte(strings.TrimRight(string(l), "\r\n")))
		}
		if err != nil {
			if err != io.EOF {
				fmt.Fprintln(os.Stderr, "testsummary:", err)
				s.anyError = true
			}
			break
		}
	}
	line := s.finish()
	if *summaryFile != "" {
		if err := os.WriteFile(*summaryFile, []byte(line+"\n"), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "testsummary:", err)
			os.Exit(1)
		}
	}
	if s.anyError {
		os.Exit(1)
	}
}
