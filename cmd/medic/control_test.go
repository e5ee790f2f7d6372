package main

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/agent"
)

// TestControlSocketErrors: a socket nobody serves is named with the reason
// and a hint, under the command's verb, without Go's request and dial
// wrappers.
func TestControlSocketErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "missing.sock")
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: connection refused

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status", "--socket", stale}, "read status: cannot reach medic's status socket " + stale + ": connection refused (is medic running?)"},
		{[]string{"status", "--socket", missing}, "read status: cannot reach medic's status socket " + missing + ": no such socket (is medic running?)"},
		{[]string{"pause", "web", "--socket", stale}, "pause web: cannot reach medic's status socket " + stale + ": connection refused (is medic running?)"},
		{[]string{"resume", "web", "--socket", stale}, "resume web: cannot reach medic's status socket " + stale + ": connection refused (is medic running?)"},
	} {
		_, _, err := execute(tc.args...)
		if err == nil || err.Error() != tc.want {
			t.Errorf("%v: error %v\nwant %s", tc.args, err, tc.want)
		}
		if err != nil && (strings.Contains(err.Error(), "http://") || strings.Contains(err.Error(), "dial unix")) {
			t.Errorf("%v: Go internals in %q", tc.args, err)
		}
	}
	_, errOut, err := execute("reload", "--socket", stale)
	if want := "medic: reload: cannot reach medic's status socket " + stale + ": connection refused (is medic running?)\n"; err == nil || errOut != want {
		t.Errorf("reload: %v, stderr %q, want %q", err, errOut, want)
	}
}

// TestResumeNotPaused: resume of a paused check says it resumed; of one
// that is not paused, says so instead, and both exit 0.
func TestResumeNotPaused(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "medic.sock")
	ln, err := agent.ListenStatus(sock)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = agent.ServeStatus(ctx, ln, fixedController{fixedReport(time.Now())}) }()
	out, _, err := execute("resume", "--socket", sock, "worker")
	if err != nil || out != "worker: remediation resumed\n" {
		t.Errorf("resume of a paused check: %q, %v", out, err)
	}
	out, _, err = execute("resume", "--socket", sock, "web")
	if err != nil || out != "web: not paused; nothing to resume\n" {
		t.Errorf("resume of a check that is not paused: %q, %v", out, err)
	}
}
