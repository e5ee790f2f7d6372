package diagnose

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

func TestAddrInUseLine(t *testing.T) {
	for _, tc := range []struct {
		journal []string
		want    string
	}{
		{nil, ""},
		{[]string{"app[1]: listening", "app[1]: exiting"}, ""},
		{[]string{"app[7]: listen tcp 127.0.0.1:8080: bind: address already in use", "systemd[1]: app.service: Main process exited"}, "app[7]: listen tcp 127.0.0.1:8080: bind: address already in use"},
		{[]string{"node[9]: Error: listen EADDRINUSE: address already in use :::3000"}, "node[9]: Error: listen EADDRINUSE: address already in use :::3000"},
		{[]string{"python3[2]: OSError: [Errno 98] Address in use"}, "python3[2]: OSError: [Errno 98] Address in use"},
		{[]string{"nginx[3]: bind() to 0.0.0.0:80 failed (98: Address already in use)", "nginx[3]: still could not bind()"}, "nginx[3]: bind() to 0.0.0.0:80 failed (98: Address already in use)"},
	} {
		if got := addrInUseLine(tc.journal); got != tc.want {
			t.Errorf("addrInUseLine(%q) = %q, want %q", tc.journal, got, tc.want)
		}
	}
}

// TestPortInUseUnixSocket: a unit that failed while this test process
// listens on its socket path: the holder is named by pid, the cause is the
// conflict, not the crash.
func TestPortInUseUnixSocket(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ForgetSocketSnapshot()
	spec := probe.Spec{Type: "unix", Path: path}
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	res := p.Probe(t.Context(), 0)
	u := &unit.State{Name: "app.service", ActiveState: "failed", SubState: "failed", Result: "exit-code", ExecMainCode: 1, ExecMainStatus: 1}
	dg := Diagnose(t.Context(), Input{Spec: spec, Result: res, Unit: u, ClientUser: "root",
		Journal: []string{"app[5]: bind unix " + path + ": address already in use"}})
	if dg.Primary.Cause != PortInUse {
		t.Fatalf("primary %+v, want %q", dg.Primary, PortInUse)
	}
	if got := dg.Primary.Evidence["holder_pid"]; got != os.Getpid() {
		t.Errorf("holder_pid %v, want this process %d", got, os.Getpid())
	}
	if _, ok := dg.Primary.Evidence["journal_line"]; !ok {
		t.Errorf("evidence lacks the journal line: %+v", dg.Primary.Evidence)
	}
	if len(dg.Secondary) == 0 || dg.Secondary[0].Cause != Crashed {
		t.Errorf("secondary %+v, want the crash", dg.Secondary)
	}
	for _, it := range dg.Checklist {
		if it.Name == ItemSocket && (it.Status != Fail || !strings.Contains(it.Evidence, "pid "+strconv.Itoa(os.Getpid()))) {
			t.Errorf("socket item %+v, want a failure naming pid %d", it, os.Getpid())
		}
	}

	// The unit up again (its own listener would be in its cgroup): no
	// conflict is claimed for an active unit.
	u = &unit.State{Name: "app.service", ActiveState: "active", SubState: "running", Result: "success"}
	dg = Diagnose(t.Context(), Input{Spec: spec, Result: res, Unit: u, ClientUser: "root"})
	if dg.Primary.Cause == PortInUse {
		t.Errorf("an active unit: primary %+v", dg.Primary)
	}
}
