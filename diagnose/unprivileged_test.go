package diagnose

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
	"github.com/medic-watchdog/medic/internal/usermanager"
	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

// diagnoseRequest is what the helper's "diagnose" mode diagnoses.
type diagnoseRequest struct {
	Spec probe.Spec  `json:"spec"`
	Unit *unit.State `json:"unit"`
}

// serveUnit runs a copy of this test binary (helper mode "serve") from
// dir, which every user may search, as unit of m, listening on addrs (see
// the helper), and returns the unit's state once the first address
// answers. The process runs as root, in the unit's own cgroup.
func serveUnit(t *testing.T, m *usermanager.Manager, dir, name string, addrs ...string) *unit.State {
	t.Helper()
	exe := filepath.Join(dir, "diagnose.test")
	if _, err := os.Stat(exe); err != nil {
		if err := copyTestBinary(exe); err != nil {
			t.Fatal(err)
		}
	}
	systemdtest.LinkUnit(t, m, name, systemdtest.BackendUnit(exe, addrs[0],
		"ExecStart=",
		"ExecStart="+exe+" -test.run=^TestSockDiagHelperProcess$",
		"Environment="+diagHelperEnv+"=serve",
		fmt.Sprintf("Environment=\"%s=%s\"", diagHelperArg, strings.Join(addrs, " "))))
	systemdtest.Systemctl(t, m, "start", name)
	t.Cleanup(func() { _, _ = m.Systemctl(context.Background(), "stop", name) })
	first, _, _ := strings.Cut(addrs[0], ",")
	systemdtest.WaitFor(t, 10*time.Second, func() bool {
		if strings.HasPrefix(first, "/") {
			_, err := os.Stat(first)
			return err == nil
		}
		return systemdtest.Answers(first)
	}, name+" to listen on "+first)
	mainPID, err := strconv.Atoi(systemdtest.Prop(t, m, name, "MainPID"))
	if err != nil || mainPID == 0 {
		t.Fatalf("MainPID of %s: %v", name, err)
	}
	u := &unit.State{
		Name:         name,
		LoadState:    systemdtest.Prop(t, m, name, "LoadState"),
		ActiveState:  systemdtest.Prop(t, m, name, "ActiveState"),
		SubState:     systemdtest.Prop(t, m, name, "SubState"),
		ControlGroup: systemdtest.Prop(t, m, name, "ControlGroup"),
		MainPID:      uint32(mainPID),
	}
	t.Logf("%s: ControlGroup %s, MainPID %d", name, u.ControlGroup, mainPID)
	return u
}

// diagnoseBoth diagnoses spec for u as root and, in a helper, as uid 65534.
func diagnoseBoth(t *testing.T, spec probe.Spec, u *unit.State) (asRoot, asNobody Diagnosis) {
	t.Helper()
	ForgetSocketSnapshot()
	p, err := probe.New(spec)
	if err != nil {
		t.Fatal(err)
	}
	asRoot = Diagnose(context.Background(), Input{Spec: spec, Result: p.Probe(context.Background(), time.Second), Unit: u})
	req, _ := json.Marshal(diagnoseRequest{Spec: spec, Unit: u})
	out := runAsNobody(t, "diagnose", string(req))["diagnosis"]
	if len(out) != 1 {
		t.Fatalf("helper printed %d diagnoses, want 1", len(out))
	}
	if err := json.Unmarshal([]byte(out[0]), &asNobody); err != nil {
		t.Fatal(err)
	}
	return asRoot, asNobody
}

// socketNotes returns the unavailable entries about sockets.
func socketNotes(notes []string) []string {
	var out []string
	for _, n := range notes {
		if strings.HasPrefix(n, "process sockets:") || strings.HasPrefix(n, "unit ") || strings.HasPrefix(n, "owner of ") {
			out = append(out, n)
		}
	}
	return out
}

// TestDiagnoseUnprivilegedMatchesRoot runs root processes as units of a
// real systemd user manager and diagnoses a wrong port and a wrong socket
// path both as root and, as medic.service runs, as an unprivileged user
// (uid 65534, no capabilities).
//
// The first unit listens on a TCP port and on a unix socket anyone may
// connect to: as uid 65534 its listeners are mapped to it (TCP by
// sock_diag's cgroup id, the unix socket by the pid SO_PEERCRED names) and
// the findings are the same as root's. The second listens on a 0600 unix
// socket of root's: uid 65534 cannot tell whose it is, and says so.
func TestDiagnoseUnprivilegedMatchesRoot(t *testing.T) {
	if os.Getuid() != 0 {
		systemdtest.Unavailable(t, "needs root to compare a diagnosis as root with one as uid 65534")
	}
	m := systemdtest.Start(t)
	dir, err := os.MkdirTemp("", "medic-diag-unpriv-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	listen, probed := systemdtest.FreePort(t), systemdtest.FreePort(t)
	openSock, closedSock := filepath.Join(dir, "open.sock"), filepath.Join(dir, "closed.sock")
	open := serveUnit(t, m, dir, fmt.Sprintf("medic-diag-open-%d.service", os.Getpid()), listen, openSock+",0666")
	closed := serveUnit(t, m, dir, fmt.Sprintf("medic-diag-closed-%d.service", os.Getpid()), closedSock+",0600")

	lines := runAsNobody(t, "unit", open.ControlGroup)
	got := strings.Join(lines["listener"], "\n")
	if !strings.Contains(got, "tcp "+listen+" uid=0 ") {
		t.Errorf("as uid %d UnitListeners lacks tcp %s:\n%s", diagNobody, listen, got)
	}
	if want := fmt.Sprintf(" pids=[%d]", open.MainPID); !slices.ContainsFunc(lines["listener"], func(l string) bool {
		return strings.HasPrefix(l, "unix unix:"+openSock+" uid=0 ") && strings.HasSuffix(l, want)
	}) {
		t.Errorf("as uid %d UnitListeners lacks unix:%s with%s:\n%s", diagNobody, openSock, want, got)
	}

	t.Run("wrong port", func(t *testing.T) {
		asRoot, asNobody := diagnoseBoth(t, probe.Spec{Type: "tcp", Address: probed}, open)
		want := Finding{Cause: WrongPort, Summary: fmt.Sprintf("%s is listening on %s, the check probes %s", open.Name, listen, probed),
			Hint: "the upstream port should be " + listen[strings.LastIndex(listen, ":")+1:]}
		for who, dg := range map[string]Diagnosis{"root": asRoot, "uid 65534": asNobody} {
			if p := dg.Primary; p.Cause != want.Cause || p.Summary != want.Summary || p.Hint != want.Hint {
				t.Errorf("as %s: %q: %q (hint %q)\nwant %q: %q (hint %q)\nunavailable: %q", who, p.Cause, p.Summary, p.Hint, want.Cause, want.Summary, want.Hint, dg.Unavailable)
			}
		}
		// The unit's own TCP listener was found: the sockets uid 65534
		// could not attribute cannot change the finding.
		for who, dg := range map[string]Diagnosis{"root": asRoot, "uid 65534": asNobody} {
			if n := socketNotes(dg.Unavailable); len(n) != 0 {
				t.Errorf("as %s, unavailable: %q", who, n)
			}
		}
		if _, err := exec.LookPath("iptables-save"); err == nil {
			if !slices.ContainsFunc(asNobody.Unavailable, func(n string) bool {
				return strings.HasPrefix(n, "firewall rules: iptables-save") && strings.Contains(n, "CAP_NET_ADMIN; medic runs as user nobody without it")
			}) {
				t.Errorf("as uid %d, unavailable %q does not name the missing CAP_NET_ADMIN", diagNobody, asNobody.Unavailable)
			}
		}
	})

	t.Run("wrong socket path", func(t *testing.T) {
		path := filepath.Join(dir, "app.sock")
		asRoot, asNobody := diagnoseBoth(t, probe.Spec{Type: "unix", Path: path}, open)
		want := Finding{Cause: WrongPort, Summary: fmt.Sprintf("%s is listening on unix:%s, the check probes unix:%s", open.Name, openSock, path),
			Hint: "the upstream socket path should be " + openSock}
		for who, dg := range map[string]Diagnosis{"root": asRoot, "uid 65534": asNobody} {
			if p := dg.Primary; p.Cause != want.Cause || p.Summary != want.Summary || p.Hint != want.Hint {
				t.Errorf("as %s: %q: %q (hint %q)\nwant %q: %q (hint %q)\nunavailable: %q", who, p.Cause, p.Summary, p.Hint, want.Cause, want.Summary, want.Hint, dg.Unavailable)
			}
		}
		// The unit's own unix listener was found (by its peer credentials
		// as uid 65534): neither the root sockets of other processes nor
		// the unreadable fds are worth a word in every alert.
		for who, dg := range map[string]Diagnosis{"root": asRoot, "uid 65534": asNobody} {
			if n := socketNotes(dg.Unavailable); len(n) != 0 {
				t.Errorf("as %s, unavailable: %q", who, n)
			}
			if n := len(strings.Join(dg.Unavailable, "\n")); n > 400 {
				t.Errorf("as %s, unavailable is %d characters, want at most 400:\n%s", who, n, strings.Join(dg.Unavailable, "\n"))
			}
		}
	})

	// The port answers but not with HTTP, and the check names the other
	// unit: who holds the port comes from the fds as root and from
	// sock_diag's cgroup id as uid 65534, with the same words.
	t.Run("port held by another unit", func(t *testing.T) {
		asRoot, asNobody := diagnoseBoth(t, probe.Spec{Type: "http", HTTP: probe.HTTPOptions{URL: "http://" + listen + "/health"}}, closed)
		want := fmt.Sprintf("port %s is held by %s held by diagnose.test (%s), not by %s", listen[strings.LastIndex(listen, ":")+1:], listen, open.Name, closed.Name)
		for who, dg := range map[string]Diagnosis{"root": asRoot, "uid 65534": asNobody} {
			if p := dg.Primary; p.Cause != WrongPort || p.Summary != want {
				t.Errorf("as %s: %q: %q\nwant %q: %q\nunavailable: %q", who, p.Cause, p.Summary, WrongPort, want, dg.Unavailable)
			}
		}
	})

	// Root's 0600 socket: root names it; uid 65534 cannot connect to it,
	// and its owner (root) has processes outside the unit, so it counts
	// the root sockets it could not attribute, the one nearest the probed
	// path first, and says once how to give it access, instead of a wrong
	// finding.
	t.Run("socket it cannot connect to", func(t *testing.T) {
		path := filepath.Join(dir, "app.sock")
		asRoot, asNobody := diagnoseBoth(t, probe.Spec{Type: "unix", Path: path}, closed)
		want := fmt.Sprintf("%s is listening on unix:%s, the check probes unix:%s", closed.Name, closedSock, path)
		if asRoot.Primary.Cause != WrongPort || asRoot.Primary.Summary != want {
			t.Errorf("as root: %q: %q, want %q: %q", asRoot.Primary.Cause, asRoot.Primary.Summary, WrongPort, want)
		}
		wantNobody := fmt.Sprintf("nothing created the socket %s although %s is active/running: it listens on another path, or has not created it yet", path, closed.Name)
		if p := asNobody.Primary; p.Cause != WrongPort || p.Summary != wantNobody {
			t.Errorf("as uid %d: %q: %q, want %q: %q", diagNobody, p.Cause, p.Summary, WrongPort, wantNobody)
		}
		notes := socketNotes(asNobody.Unavailable)
		fdNote := fmt.Sprintf("process sockets: list sockets of pid %d: open /proc/%d/fd: permission denied; %s.", closed.MainPID, closed.MainPID, fdAccessHint)
		if len(notes) != 2 || notes[0] != fdNote ||
			!strings.HasPrefix(notes[1], "unit unix sockets: ") ||
			!strings.Contains(notes[1], " owned by uid 0 may be the unit's; who listens is unknown (connect: permission denied): unix:"+closedSock) {
			t.Errorf("as uid %d, unavailable does not say once that the fds of pid %d are closed to it and that unix:%s, connect: permission denied, owned by uid 0, may be the unit's:\n%s",
				diagNobody, closed.MainPID, closedSock, strings.Join(asNobody.Unavailable, "\n"))
		}
		for _, n := range notes {
			if len(n) > maxNote+20 {
				t.Errorf("as uid %d, a note of %d characters: %s", diagNobody, len(n), n)
			}
		}
	})
}

// TestFirewallRulesUnprivileged runs FirewallRules as uid 65534 against
// the real iptables-save and nft, which need CAP_NET_ADMIN, and expects the
// missing capability to be named.
func TestFirewallRulesUnprivileged(t *testing.T) {
	if os.Getuid() != 0 {
		systemdtest.Unavailable(t, "needs root to run FirewallRules as uid 65534")
	}
	if _, err := exec.LookPath("iptables-save"); err != nil {
		systemdtest.Unavailable(t, fmt.Sprintf("%v (apt-get install iptables)", err))
	}
	lines := runAsNobody(t, "firewall", "")
	want := regexp.MustCompile(`^iptables-save(, [a-z0-9-]+)* needs? CAP_NET_ADMIN; medic runs as user nobody without it`)
	if f := lines["firewall"]; len(f) != 1 || !want.MatchString(f[0]) || len(f[0]) > 200 {
		t.Errorf("as uid %d FirewallRules' unavailable %q, want one short note matching %q", diagNobody, f, want)
	}
}
