package nginx

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// TestOutcome is what `nginx -t` said of a configuration.
type TestOutcome string

// The outcomes of RunConfigTest.
const (
	// TestPassed: nginx -t exited 0 ("syntax is ok", "test is
	// successful").
	TestPassed TestOutcome = "pass"
	// TestFailed: nginx found an error in the configuration (an [emerg]
	// that is not about permissions: a syntax error, an unknown directive,
	// a host not found in an upstream).
	TestFailed TestOutcome = "fail"
	// TestUnavailable: nginx -t could not run or could not judge: no nginx
	// binary, not allowed to execute it, a file it must open was denied to
	// the user running it (as non-root: the pid file, the logs), or it did
	// not finish within ConfigTestTimeout.
	TestUnavailable TestOutcome = "unavailable"
)

// ConfigTestTimeout bounds one run of nginx -t (it resolves the names in
// upstream blocks, which may be slow).
const ConfigTestTimeout = 15 * time.Second

// maxTestOutput bounds what is kept of nginx -t's output.
const maxTestOutput = 64 << 10

// Binaries are where FindBinary looks for nginx after $PATH: Debian's,
// RHEL's and nginx.org's packages install /usr/sbin/nginx, a build from
// source /usr/local/nginx/sbin/nginx.
var Binaries = []string{"/usr/sbin/nginx", "/usr/local/sbin/nginx", "/usr/local/nginx/sbin/nginx"}

// ConfigTest is the result of RunConfigTest.
type ConfigTest struct {
	Outcome TestOutcome
	// Command is the command line run, e.g. ["/usr/sbin/nginx", "-t",
	// "-c", "/etc/nginx/nginx.conf"]; nil when none was run.
	Command []string
	// Message says, for TestFailed, nginx's first [emerg] message without
	// its time and pid ("unknown directive \"acess_log\" in
	// /etc/nginx/nginx.conf:7"); for TestUnavailable why; for TestPassed
	// nginx's last line ("configuration file ... test is successful").
	Message string
	// Output is what nginx printed (stderr and stdout), at most 64 KiB.
	Output string
}

// FindBinary returns the nginx executable: "nginx" in $PATH, else the
// first of Binaries that exists. Errors: none found, or the one found may
// not be executed by this process (access(2) X_OK).
func FindBinary() (string, error) {
	path, err := exec.LookPath("nginx")
	if err != nil {
		for _, b := range Binaries {
			if _, serr := os.Stat(b); serr == nil {
				path, err = b, nil
				break
			}
		}
	}
	if err != nil {
		return "", fmt.Errorf("find nginx: not in $PATH nor at %s", strings.Join(Binaries, ", "))
	}
	if err := unix.Access(path, unix.X_OK); err != nil {
		return "", fmt.Errorf("execute %s: %w", path, err)
	}
	return path, nil
}

// RunConfigTest runs `BINARY -t -c CONF` (no shell; BINARY from
// FindBinary when binary is "") within ConfigTestTimeout and reads its
// verdict (see TestOutcome). nginx -t reads every file of the
// configuration and opens the files nginx would write (logs, pid file,
// temp directories), creating those that are missing; as a user other than
// root it often fails on those, which is TestUnavailable, not TestFailed.
func RunConfigTest(ctx context.Context, binary, conf string) ConfigTest {
	if binary == "" {
		b, err := FindBinary()
		if err != nil {
			return ConfigTest{Outcome: TestUnavailable, Message: err.Error()}
		}
		binary = b
	}
	ctx, cancel := context.WithTimeoutCause(ctx, ConfigTestTimeout, fmt.Errorf("nginx -t did not finish within %s", ConfigTestTimeout))
	defer cancel()
	t := ConfigTest{Command: []string{binary, "-t", "-c", conf}}
	cmd := exec.CommandContext(ctx, binary, "-t", "-c", conf)
	out := &boundedBuffer{max: maxTestOutput}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	t.Output = out.String()
	switch {
	case ctx.Err() != nil:
		t.Outcome, t.Message = TestUnavailable, context.Cause(ctx).Error()
		return t
	case err == nil:
		t.Outcome, t.Message = TestPassed, lastLine(t.Output)
		return t
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Outcome, t.Message = TestUnavailable, fmt.Sprintf("run %s: %v", binary, err)
		return t
	}
	return judgeTest(t)
}

// judgeTest reads the output of an nginx -t that exited non-zero.
func judgeTest(t ConfigTest) ConfigTest {
	syntaxOK := false
	for line := range strings.Lines(t.Output) {
		line = strings.TrimRight(line, "\r\n")
		if strings.HasPrefix(line, "nginx: the configuration file ") && strings.HasSuffix(line, " syntax is ok") {
			syntaxOK = true
			continue
		}
		msg, ok := emergMessage(line)
		if !ok {
			continue
		}
		if permissionDenied(msg) {
			t.Outcome = TestUnavailable
			if syntaxOK {
				t.Message = fmt.Sprintf("the syntax is ok, but the test needs more rights (%s): run it as root", msg)
			} else {
				t.Message = fmt.Sprintf("nginx -t as uid %d could not read or open a file (%s): run it as root", os.Geteuid(), msg)
			}
			return t
		}
		t.Outcome, t.Message = TestFailed, msg
		return t
	}
	t.Outcome = TestUnavailable
	t.Message = "nginx -t failed without an [emerg] line"
	if l := lastLine(t.Output); l != "" {
		t.Message += ": " + l
	}
	return t
}

// emergMessage returns the message of an "[emerg]" line of nginx
// ("2026/11/30 04:04:18 [emerg] 7357#7357: unknown directive ..." or
// "nginx: [emerg] ..."), without time, level and pid.
func emergMessage(line string) (string, bool) {
	_, rest, ok := strings.Cut(line, "[emerg] ")
	if !ok {
		return "", false
	}
	// "7357#7357: " when nginx's log was set up, nothing before.
	if ids, msg, ok := strings.Cut(rest, ": "); ok && strings.Contains(ids, "#") && !strings.Contains(ids, " ") {
		rest = msg
	}
	return rest, true
}

// permissionDenied reports whether an [emerg] message is about the rights
// of the user running nginx -t: EACCES (13) or EPERM (1) from open(),
// mkdir() and the like.
func permissionDenied(msg string) bool {
	return strings.Contains(msg, "(13: Permission denied)") || strings.Contains(msg, "(1: Operation not permitted)")
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\r\n")
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return strings.TrimPrefix(s, "nginx: ")
}

// boundedBuffer keeps the first max bytes written to it and drops the
// rest.
type boundedBuffer struct {
	buf bytes.Buffer
	max int
}

func (b *boundedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.buf.Len(); room > 0 {
		b.buf.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

func (b *boundedBuffer) String() string { return b.buf.String() }
