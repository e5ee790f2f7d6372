package nginxtest_test

import (
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/medic-watchdog/medic/internal/nginxtest"
)

func TestNginxStart(t *testing.T) {
	var pid int
	t.Run("run", func(t *testing.T) {
		s := nginxtest.Start(t, "")
		resp, err := http.Get(s.URL() + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("GET %s/: %d, want 200", s.URL(), resp.StatusCode)
		}
		if code := s.Get(t, "/x"); code != 200 {
			t.Errorf("Get /x: %d", code)
		}
		if !strings.HasSuffix(s.URL(), ":"+strconv.Itoa(s.Port())) {
			t.Errorf("URL %s, Port %d", s.URL(), s.Port())
		}
		s.WaitLog(t, "start worker process", 0)
		b, err := os.ReadFile(s.Dir + "/nginx.pid")
		if err != nil {
			t.Fatal(err)
		}
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	})
	if pid == 0 {
		return // skipped
	}
	// The cleanup stopped it.
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("nginx master %d still runs after the test", pid)
	}
}
