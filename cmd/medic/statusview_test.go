package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/statuspage"

	"golang.org/x/sys/unix"

	"github.com/medic-watchdog/medic/agent"
	"github.com/medic-watchdog/medic/diagnose"
)

// fixedReport is a report of four checks as medic status gets it, at now:
// healthy since medic started (an hour ago), failing with a long HTTP
// error, verifying, and paused.
func fixedReport(now time.Time) *agent.Report {
	return &agent.Report{
		Version: "1.4.2", Host: "web1", Started: now.Add(-time.Hour),
		Checks: []agent.Status{
			{Check: "web", Unit: "web.service", State: "healthy", LastProbe: now, LastOK: true, LastLatency: 1200 * time.Microsecond, BudgetLeft: 3},
			{
				Check: "billing-api", Unit: "billing-api-backend.service", State: "failing", Since: now.Add(-95 * time.Second),
				LastProbe: now, LastError: "http://127.0.0.1:8081/health/ready?deep=1: http_status: GET http://127.0.0.1:8081/health/ready?deep=1: status 503 Service Unavailable, want 200-299",
				Failures: 4, BudgetLeft: 3, Incident: "billing-api-20261121T080000.123Z",
				Diagnosis: &diagnose.Diagnosis{Primary: diagnose.Finding{Cause: diagnose.Crashed, Summary: "billing-api-backend.service crashed"}},
			},
			{
				Check: "app", Unit: "app.service", State: "verifying", Since: now.Add(-3 * time.Second),
				LastProbe: now, LastError: "127.0.0.1:8080: refused: dial tcp 127.0.0.1:8080: connect: connection refused",
				Failures: 1, RestartsInWindow: 1, BudgetLeft: 2, Incident: "app-20261121T080000.123Z",
			},
			{
				Check: "worker", Unit: "worker.service", State: "healthy", Since: now.Add(-26 * time.Hour), LastProbe: now, LastOK: true,
				Paused: &agent.Pause{Until: now.Add(time.Hour), Reason: "deploy"},
			},
		},
	}
}

// table returns the table's lines of a status output: from the CHECK head
// to the first empty line.
func table(t *testing.T, out string) []string {
	t.Helper()
	_, rest, ok := strings.Cut(out, "\n\n")
	if !ok || !strings.HasPrefix(rest, "CHECK") {
		t.Fatalf("no table in:\n%s", out)
	}
	tbl, _, _ := strings.Cut(rest, "\n\n")
	return strings.Split(strings.TrimSuffix(tbl, "\n"), "\n")
}

func TestStatusFitsWidth(t *testing.T) {
	now := time.Date(2026, 11, 21, 9, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		width             int
		wantHeads, noHead []string
		want, notWant     []string
	}{
		{
			width:     80,
			wantHeads: []string{"CHECK", "STATE", "SINCE", "LAST PROBE", "CAUSE"},
			noHead:    []string{"UNIT", "INCIDENT", "BUDGET LEFT", "FAILS", "LATENCY", "RESTARTS"},
			want: []string{
				`(?m)^web +healthy +1h0m +ok`,
				`(?m)^billing-api +failing +1m35s +http://127\.0\.0\.1:8081/h\S*… +backend crashed$`,
				`(?m)^app +verifying +3s +127\.0\.0\.1:8080 conn\S*… +-$`,
				`(?m)^worker +healthy \(paused\) +1d2h +ok`,
			},
			notWant: []string{"dial tcp", "\x1b["},
		},
		{
			width:     200,
			wantHeads: []string{"CHECK", "UNIT", "STATE", "SINCE", "LAST PROBE", "RESTARTS", "CAUSE"},
			want: []string{
				`(?m)^billing-api +billing-api-backend\.service +failing +1m35s +http://127\.0\.0\.1:8081/health/ready\?deep=1 returned 503 Service Unavailable +`,
				`(?m) backend crashed$`,
			},
			notWant: []string{"…", "dial tcp"},
		},
		{
			width:     0, // --wide
			wantHeads: []string{"CHECK", "UNIT", "STATE", "SINCE", "LAST PROBE", "LATENCY", "FAILS", "RESTARTS", "BUDGET LEFT", "INCIDENT", "CAUSE"},
			want:      []string{`billing-api-20261121T080000\.123Z +backend crashed`},
			notWant:   []string{"…"},
		},
	} {
		t.Run(fmt.Sprint(tc.width), func(t *testing.T) {
			var b bytes.Buffer
			if printStatusWith(&b, fixedReport(now), statusOptions{width: tc.width, now: now}) {
				t.Errorf("a failing report printed as healthy")
			}
			out := b.String()
			lines := table(t, out)
			t.Logf("width %d:\n%s", tc.width, strings.Join(lines, "\n"))
			for _, l := range lines {
				if n := utf8.RuneCountInString(l); tc.width > 0 && n > tc.width {
					t.Errorf("line of %d columns, wider than %d: %q", n, tc.width, l)
				}
			}
			for _, h := range tc.wantHeads {
				if !strings.Contains(lines[0], h) {
					t.Errorf("head %q missing: %q", h, lines[0])
				}
			}
			for _, h := range tc.noHead {
				if strings.Contains(lines[0], h) {
					t.Errorf("head %q shown at width %d: %q", h, tc.width, lines[0])
				}
			}
			for _, re := range tc.want {
				if !regexp.MustCompile(re).MatchString(out) {
					t.Errorf("output does not match %s", re)
				}
			}
			for _, s := range tc.notWant {
				if strings.Contains(strings.Join(lines, "\n"), s) {
					t.Errorf("table contains %q", s)
				}
			}
		})
	}
}

func TestCompactDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		-time.Second: "0s", 400 * time.Millisecond: "0s", 12 * time.Second: "12s", 250 * time.Second: "4m10s",
		2*time.Hour + 5*time.Minute + 9*time.Second: "2h5m", 76 * time.Hour: "3d4h",
	} {
		if got := statuspage.CompactDuration(d); got != want {
			t.Errorf("statuspage.CompactDuration(%s) = %q, want %q", d, got, want)
		}
	}
}

// fixedController serves a fixed report on a status socket.
type fixedController struct{ r *agent.Report }

func (c fixedController) Report() agent.Report               { return *c.r }
func (fixedController) Reload(context.Context) error         { return nil }
func (fixedController) Resume(context.Context, string) error { return nil }
func (fixedController) Pause(context.Context, string, time.Duration, string) (agent.Pause, error) {
	return agent.Pause{}, nil
}

// openPTY opens a pseudo-terminal of cols columns: the terminal side, as
// medic status's stdout, and the controlling side, whose reader gets what
// was written (with the line discipline's \r\n).
func openPTY(t *testing.T, cols int) (term *os.File, read func() string) {
	t.Helper()
	ptmx, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		systemdtest.Missing(t, "no pseudo-terminals here: %v", err)
	}
	t.Cleanup(func() { ptmx.Close() })
	if err := unix.IoctlSetPointerInt(int(ptmx.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(ptmx.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	term, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { term.Close() })
	if err := unix.IoctlSetWinsize(int(term.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 40, Col: uint16(cols)}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = io.Copy(&buf, ptmx)
	}()
	return term, func() string {
		term.Close() // the reader sees EIO once the terminal side is closed
		<-done
		return strings.ReplaceAll(buf.String(), "\r\n", "\n")
	}
}

// TestStatusOnTerminal runs medic status with a real pseudo-terminal as its
// output: the table fits the terminal's 80 columns and STATE is coloured,
// except with NO_COLOR set; --wide prints every column.
func TestStatusOnTerminal(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "medic.sock")
	ln, err := agent.ListenStatus(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = agent.ServeStatus(ctx, ln, fixedController{fixedReport(time.Now())}) }()

	run := func(args ...string) string {
		t.Helper()
		term, read := openPTY(t, 80)
		cmd := newRootCmd()
		cmd.SetOut(term)
		cmd.SetErr(io.Discard)
		cmd.SetArgs(append([]string{"status", "--socket", sock}, args...))
		_ = cmd.Execute()
		return read()
	}
	t.Setenv("COLUMNS", "")
	t.Setenv("TERM", "xterm")
	t.Setenv("NO_COLOR", "")
	out := run()
	t.Logf("on an 80-column terminal:\n%s", out)
	for _, want := range []string{"\x1b[31mfailing\x1b[0m", "\x1b[33mverifying\x1b[0m", "\x1b[32mhealthy\x1b[0m", "\x1b[33mhealthy (paused)\x1b[0m"} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q on a terminal", want)
		}
	}
	sgr := regexp.MustCompile("\x1b\\[[0-9;]*m")
	for _, l := range table(t, out) {
		if n := utf8.RuneCountInString(sgr.ReplaceAllString(l, "")); n > 80 {
			t.Errorf("line of %d columns on an 80-column terminal: %q", n, l)
		}
	}

	t.Setenv("NO_COLOR", "1")
	out = run()
	if strings.Contains(out, "\x1b") {
		t.Errorf("colour with NO_COLOR set:\n%q", out)
	}
	out = run("--wide")
	if lines := table(t, out); !strings.Contains(lines[0], "INCIDENT") || !strings.Contains(lines[0], "BUDGET LEFT") {
		t.Errorf("--wide on an 80-column terminal does not print every column:\n%s", out)
	}

	// Not a terminal: no colour, no cut, unless COLUMNS says so.
	t.Setenv("NO_COLOR", "")
	out, _, _ = execute("status", "--socket", sock)
	if strings.Contains(out, "\x1b") || !strings.Contains(out, "INCIDENT") {
		t.Errorf("status into a pipe:\n%s", out)
	}
	t.Setenv("COLUMNS", "80")
	out, _, _ = execute("status", "--socket", sock)
	if strings.Contains(table(t, out)[0], "INCIDENT") {
		t.Errorf("COLUMNS=80 ignored:\n%s", out)
	}
}

// TestStatusSaysBusUnreachable: a report whose bus cannot be reached says
// so under the table, escaped, so that `medic status` tells why nothing is
// restarted.
func TestStatusSaysBusUnreachable(t *testing.T) {
	r := fixedReport(time.Now())
	r.BusError = "connect to systemd system bus: dial unix /run/dbus/system_bus_socket: connect: no such file or directory\x1b[2J"
	var b strings.Builder
	printStatus(&b, r)
	out := b.String()
	if !strings.Contains(out, "systemd's bus cannot be reached; remediation waits for it") ||
		!strings.Contains(out, "/run/dbus/system_bus_socket: connect: no such file or directory") || strings.Contains(out, "\x1b[2J") {
		t.Errorf("status output:\n%q", out)
	}
	r.BusError = ""
	b.Reset()
	printStatus(&b, r)
	if strings.Contains(b.String(), "bus cannot be reached") {
		t.Errorf("a reachable bus is reported unreachable:\n%s", b.String())
	}
}
