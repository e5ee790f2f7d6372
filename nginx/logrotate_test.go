package nginx_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/nginxtest"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/nginx"
)

// TestFollowNginxLogrotate follows the error log of a real nginx while
// Debian's logrotate rotates it, in create mode (rename, create, USR1 to
// nginx, as /etc/logrotate.d/nginx does) and in copytruncate mode, and
// checks that every upstream error nginx writes arrives once.
func TestFollowNginxLogrotate(t *testing.T) {
	logrotate, err := exec.LookPath("logrotate")
	if err != nil {
		if _, err2 := os.Stat("/usr/sbin/logrotate"); err2 != nil {
			if os.Getenv(systemdtest.RequireEnv) == "1" {
				t.Fatalf("%s=1 but logrotate is not installed (apt-get install logrotate)", systemdtest.RequireEnv)
			}
			t.Skip("skipping: logrotate is not installed (apt-get install logrotate)")
		}
		logrotate = "/usr/sbin/logrotate"
	}
	for _, mode := range []string{"create", "copytruncate"} {
		t.Run(mode, func(t *testing.T) {
			s := nginxtest.Start(t, `
server {
    listen {{listen}};
    server_name _;
    location / { proxy_pass http://127.0.0.1:1; }
}
`)
			got := make(chan nginx.UpstreamError, 100)
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() {
				done <- (&nginx.Follower{
					Path: s.ErrorLog(),
					Poll: 100 * time.Millisecond,
					OnLine: func(l string) {
						if e, ok := nginx.ParseErrorLine(l); ok {
							got <- e
						}
					},
					OnError: func(err error) { t.Logf("follower: %v", err) },
				}).Run(ctx)
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
			}()

			rules := "    rotate 3\n    missingok\n"
			if mode == "create" {
				rules += fmt.Sprintf("    create 0640 root root\n    sharedscripts\n    postrotate\n        kill -USR1 $(cat %s)\n    endscript\n", filepath.Join(s.Dir, "nginx.pid"))
			} else {
				rules += "    copytruncate\n"
			}
			conf := filepath.Join(t.TempDir(), "logrotate.conf")
			if err := os.WriteFile(conf, []byte(s.ErrorLog()+" {\n"+rules+"}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			state := filepath.Join(filepath.Dir(conf), "state")
			rotate := func() {
				t.Helper()
				out, err := exec.Command(logrotate, "-f", "-s", state, conf).CombinedOutput()
				if err != nil {
					t.Fatalf("logrotate -f: %v\n%s", err, out)
				}
			}

			// The follower starts at the end: request until it sees a line.
			waitFor := func(path string) {
				t.Helper()
				deadline := time.After(10 * time.Second)
				for {
					select {
					case e := <-got:
						if strings.HasPrefix(e.Request, "GET "+path+" ") {
							if e.Addr != "127.0.0.1:1" || e.Errno != 111 {
								t.Errorf("line for %s: addr %q errno %d", path, e.Addr, e.Errno)
							}
							return
						}
						t.Errorf("unexpected line for %q", e.Request)
					case <-deadline:
						t.Fatalf("no upstream error for GET %s within 10s", path)
					}
				}
			}
			deadline := time.Now().Add(10 * time.Second)
		warmup:
			for {
				s.Get(t, "/warmup")
				select {
				case <-got:
					break warmup
				case <-time.After(200 * time.Millisecond):
				}
				if time.Now().After(deadline) {
					t.Fatal("the follower saw no line within 10s")
				}
			}
			time.Sleep(300 * time.Millisecond)
			for len(got) > 0 {
				<-got
			}

			for round := 1; round <= 3; round++ {
				p := fmt.Sprintf("/before-rotation-%d", round)
				s.Get(t, p)
				waitFor(p)
				rotate()
				p = fmt.Sprintf("/after-rotation-%d", round)
				s.Get(t, p)
				waitFor(p)
			}
			if _, err := os.Stat(s.ErrorLog() + ".1"); err != nil {
				t.Errorf("logrotate left no %s.1: %v", s.ErrorLog(), err)
			}
			select {
			case e := <-got:
				t.Errorf("a line twice or unexpected: %q", e.Request)
			case <-time.After(300 * time.Millisecond):
			}
		})
	}
}
