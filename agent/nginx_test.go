package agent_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/nginxtest"
	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/logging"
	"go.uber.org/zap"
)

// proxyTo is an nginx http{} body proxying every request to backend.
func proxyTo(backend string) string {
	return fmt.Sprintf(`
  server {
    listen %s;
    location / {
      proxy_pass http://%s;
      proxy_connect_timeout 1s;
    }
  }
`, nginxtest.Listen, backend)
}

// TestNginxHealsThroughTheProxy is the end-to-end test on real parts: real
// nginx from Debian's packages proxies to a backend unit on a real systemd
// user manager; medic watches the unit (D-Bus signals) and nginx's error
// log. The backend is killed with SIGKILL: a client polling through nginx
// sees 502s, then 200 again without anyone touching anything, and medic's
// log shows what triggered it and the restart.
func TestNginxHealsThroughTheProxy(t *testing.T) {
	m := systemdtest.Start(t)
	bin := systemdtest.Backend(t)
	addr := systemdtest.FreePort(t)
	unit := "medic-nginx-backend.service"
	systemdtest.LinkUnit(t, m, unit, systemdtest.BackendUnit(bin, addr))
	systemdtest.Systemctl(t, m, "start", unit)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return systemdtest.Answers(addr) }, "the backend to answer")
	ngx := nginxtest.Start(t, proxyTo(addr))

	h := startAgentWithWatch(t, m, unit, addr, ngx.ErrorLog())
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return h.agent.Statuses()[0].LastOK }, "a first passing probe")

	get := func() int {
		resp, err := http.Get(ngx.URL() + "/health")
		if err != nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := get(); code != 200 {
		t.Fatalf("through nginx before the kill: %d, want 200", code)
	}

	// A client polls through nginx every 10ms while the backend dies.
	var bad, polls atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			polls.Add(1)
			if get() == http.StatusBadGateway {
				bad.Add(1)
			}
		}
	}()
	killed := time.Now()
	systemdtest.Systemctl(t, m, "kill", "--signal=KILL", unit)
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return bad.Load() > 0 }, "nginx to answer 502")
	systemdtest.WaitFor(t, 20*time.Second, func() bool { return get() == 200 && h.agent.Statuses()[0].State == "healthy" }, "200 through nginx again")
	close(stop)
	<-done
	t.Logf("back through nginx %s after the kill; %d of %d polls saw 502", time.Since(killed).Round(time.Millisecond), bad.Load(), polls.Load())

	var triggers []string
	for _, e := range h.logs.FilterField(zap.String(logging.EventField, "probing now")).All() {
		if e.Time.After(killed) {
			triggers = append(triggers, fmt.Sprint(e.ContextMap()["trigger"]))
		}
	}
	if len(triggers) == 0 {
		t.Errorf("no triggered probe after the kill")
	}
	if h.count("remedy finished") != 1 {
		t.Errorf("remedies = %d, want 1", h.count("remedy finished"))
	}
	t.Logf("triggers: %v", triggers)
}

// TestNginxLineTriggersProbe: with unit events off and a one-hour interval,
// only nginx's error log can make the check probe: a request through
// nginx to the dead backend writes "connect() failed (111: Connection
// refused) while connecting to upstream", and the check probes at once.
func TestNginxLineTriggersProbe(t *testing.T) {
	m := systemdtest.Start(t)
	addr := systemdtest.FreePort(t) // nothing listens: the backend is down
	ngx := nginxtest.Start(t, proxyTo(addr))
	h := startAgentCustom(t, m, "medic-nginx-only.service", addr, ngx.ErrorLog(), false, `interval = "1h"`)
	systemdtest.WaitFor(t, 10*time.Second, func() bool { return !h.agent.Statuses()[0].LastProbe.IsZero() }, "the first probe")
	first := h.agent.Statuses()[0].LastProbe

	resp, err := http.Get(ngx.URL() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Fatalf("through nginx: %d, want 502", resp.StatusCode)
	}
	// The failing check also probes at its retry interval, so a newer
	// LastProbe alone does not prove the trigger: wait for the triggered
	// round's "probing now" line, then for its probe.
	triggered := func() bool {
		for _, e := range h.logs.FilterField(zap.String(logging.EventField, "probing now")).All() {
			if tr := fmt.Sprint(e.ContextMap()["trigger"]); strings.Contains(tr, "connect() failed (111: Connection refused)") && strings.Contains(tr, addr) {
				return true
			}
		}
		return false
	}
	systemdtest.WaitFor(t, 5*time.Second, triggered, "a probe triggered by nginx's error line in the log")
	systemdtest.WaitFor(t, 5*time.Second, func() bool { return h.agent.Statuses()[0].LastProbe.After(first) }, "the triggered probe")
}
