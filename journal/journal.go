// Package journal reads the last lines a unit wrote to the systemd journal,
// for alerts and diagnosis. It runs journalctl(1) rather than linking
// libsystemd, so medic stays a static binary; reading another unit's
// journal needs medic in the systemd-journal (or adm) group.
package journal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
)

// Reader reads unit journals with journalctl.
type Reader struct {
	// Journalctl is the program to run; empty means "journalctl" on PATH.
	Journalctl string
	// User reads the journal of units of the calling user's manager
	// (journalctl --user-unit) instead of system units (-u).
	User bool
	// Directory, when set, reads the journal files in this directory
	// (journalctl --directory) instead of the machine's journal.
	Directory string
}

// Tail returns the last n lines of unit's journal, oldest first, formatted
// as `journalctl -o short-iso` prints them ("2026-11-21T08:00:00+0000 web1
// my-app[42]: message"). It returns no lines and no error when the unit
// logged nothing; an error when journalctl is missing, fails, or the
// journal cannot be read (it names journalctl's own message).
func (r Reader) Tail(ctx context.Context, unit string, n int) ([]string, error) {
	if n <= 0 {
		return nil, nil
	}
	prog := r.Journalctl
	if prog == "" {
		prog = "journalctl"
	}
	args := []string{"--no-pager", "--quiet", "--output=short-iso", "--lines=" + strconv.Itoa(n)}
	if r.Directory != "" {
		args = append(args, "--directory="+r.Directory)
	}
	if r.User {
		args = append(args, "--user-unit="+unit)
	} else {
		args = append(args, "--unit="+unit)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if ctx.Err() != nil {
			return nil, fmt.Errorf("read journal of %s: %w", unit, context.Cause(ctx))
		}
		if msg != "" {
			return nil, fmt.Errorf("read journal of %s: %w: %s", unit, err, firstLine(msg))
		}
		return nil, fmt.Errorf("read journal of %s: %w", unit, err)
	}
	out := strings.TrimRight(stdout.String(), "\n")
	if out == "" || out == "-- No entries --" {
		return nil, nil
	}
	lines := strings.Split(out, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, nil
}

// ErrNoJournalctl is returned by Available when journalctl is not installed.
var ErrNoJournalctl = errors.New("journalctl not found")

// Available reports whether journalctl can be run.
func (r Reader) Available() error {
	prog := r.Journalctl
	if prog == "" {
		prog = "journalctl"
	}
	if _, err := exec.LookPath(prog); err != nil {
		return fmt.Errorf("%w: %w", ErrNoJournalctl, err)
	}
	return nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
