package diagnose

import (
	"github.com/medic-watchdog/medic/probe"

	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

func readFirewallTestdata(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/firewall/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestFirewallParseIptablesSave(t *testing.T) {
	v4 := readFirewallTestdata(t, "iptables-save.txt")
	v6 := readFirewallTestdata(t, "ip6tables-save.txt")
	tests := []struct {
		name string
		text string
		port uint16
		want []string
	}{
		{"captured v4 8080", v4, 8080, []string{
			"iptables raw PREROUTING: -A PREROUTING -p tcp -m tcp --dport 8080 -j DROP",
			"iptables filter INPUT: -A INPUT -p tcp -m tcp --dport 8080 -j DROP",
			"iptables filter INPUT: -A INPUT -p tcp -m tcp ! --dport 22 -j DROP",
		}},
		{"captured v4 multiport range", v4, 9150, []string{
			"iptables filter INPUT: -A INPUT -p tcp -m multiport --dports 9000,9100:9200 -j REJECT --reject-with tcp-reset",
			"iptables filter INPUT: -A INPUT -p tcp -m tcp ! --dport 22 -j DROP",
		}},
		{"captured v4 user chain range", v4, 7100, []string{
			"iptables filter INPUT: -A INPUT -p tcp -m tcp ! --dport 22 -j DROP",
			"iptables filter MEDIC: -A MEDIC -p tcp -m tcp --dport 7000:7100 -j REJECT --reject-with icmp-port-unreachable",
		}},
		{"captured v4 negated port itself", v4, 22, nil},
		{"captured v6 8080", v6, 8080, []string{
			"ip6tables filter INPUT: -A INPUT -p tcp -m tcp --dport 8080 -j REJECT --reject-with icmp6-port-unreachable",
		}},
		{"captured v6 accepted only", v6, 443, nil},
		{"udp is not the probe's protocol", "*filter\n-A INPUT -p udp -m multiport --dports 53,8080 -j DROP\nCOMMIT\n", 8080, nil},
		{"not tcp negated", "*filter\n-A INPUT ! -p tcp -m udp --dport 8080 -j DROP\nCOMMIT\n", 8080, nil},
		{"no port match is not about the port", "*filter\n-A INPUT -s 10.0.0.0/8 -j DROP\nCOMMIT\n", 8080, nil},
		{"policy drop, port accepted", "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n-A INPUT -p tcp --dport 8080 -j ACCEPT\nCOMMIT\n", 8080, nil},
		{"policy drop, port not accepted", "*filter\n:INPUT DROP [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\n-A INPUT -i lo -j ACCEPT\n-A INPUT -p tcp --dport 22 -j ACCEPT\nCOMMIT\n", 8080, []string{
			"iptables filter INPUT: policy DROP (no rule accepts port 8080)",
		}},
		{"target before match", "*filter\n-A INPUT -j DROP -p tcp --dport 8080\nCOMMIT\n", 8080, []string{
			"iptables filter INPUT: -A INPUT -j DROP -p tcp --dport 8080",
		}},
		{"service name is not understood", "*filter\n-A INPUT -p tcp --dport http -j DROP\nCOMMIT\n", 80, nil},
		{"empty", "", 8080, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseIptablesSave(tt.text, tt.port)
			if !equalRules(got, tt.want) {
				t.Errorf("parseIptablesSave(port %d):\n got %q\nwant %q", tt.port, got, tt.want)
			}
		})
	}
}

func TestFirewallParseNftRuleset(t *testing.T) {
	rs := readFirewallTestdata(t, "nft-ruleset.txt")
	tests := []struct {
		name string
		text string
		port uint16
		want []string
	}{
		{"captured 8080", rs, 8080, []string{
			"nft ip filter INPUT: tcp dport 8080 drop",
			"nft ip filter INPUT: tcp dport != 22 drop",
			"nft ip raw PREROUTING: tcp dport 8080 drop",
			"nft ip6 filter INPUT: tcp dport 8080 reject",
			"nft inet medic input: tcp dport 8080 drop",
			`nft inet medic input: tcp dport != { 22, 443 } ct state new log prefix "drop " drop`,
			"nft inet medic output: policy drop (no rule accepts port 8080)",
		}},
		{"captured set range", rs, 8095, []string{
			"nft ip filter INPUT: tcp dport != 22 drop",
			"nft inet medic input: tcp dport { 8081, 8090-8099 } reject with tcp reset",
			`nft inet medic input: tcp dport != { 22, 443 } ct state new log prefix "drop " drop`,
			"nft inet medic output: policy drop (no rule accepts port 8095)",
		}},
		{"captured named set", rs, 6001, []string{
			"nft ip filter INPUT: tcp dport != 22 drop",
			"nft inet medic input: tcp dport @blocked drop",
			`nft inet medic input: tcp dport != { 22, 443 } ct state new log prefix "drop " drop`,
			"nft inet medic output: policy drop (no rule accepts port 6001)",
		}},
		{"captured multiport set", rs, 9100, []string{
			"nft ip filter INPUT: meta l4proto tcp tcp dport { 9000, 9100-9200 } reject with tcp reset",
			"nft ip filter INPUT: tcp dport != 22 drop",
			`nft inet medic input: tcp dport != { 22, 443 } ct state new log prefix "drop " drop`,
			"nft inet medic output: policy drop (no rule accepts port 9100)",
		}},
		{"captured icmpx reject", rs, 8443, []string{
			"nft ip filter INPUT: tcp dport != 22 drop",
			"nft inet medic input: tcp dport 8443 reject with icmpx admin-prohibited",
			`nft inet medic input: tcp dport != { 22, 443 } ct state new log prefix "drop " drop`,
			"nft inet medic output: policy drop (no rule accepts port 8443)",
		}},
		{"th dport with l4proto udp", "table inet t {\n\tchain c {\n\t\tmeta l4proto udp th dport 53 drop\n\t}\n}\n", 53, nil},
		{"th dport", "table inet t {\n\tchain c {\n\t\tmeta l4proto tcp th dport 53 drop\n\t}\n}\n", 53, []string{
			"nft inet t c: meta l4proto tcp th dport 53 drop",
		}},
		{"multi-line set elements", "table inet t {\n\tset s {\n\t\ttype inet_service\n\t\telements = { 1, 2,\n\t\t\t     3000-3999 }\n\t}\n\tchain c {\n\t\ttcp dport @s reject\n\t}\n}\n", 3500, []string{
			"nft inet t c: tcp dport @s reject",
		}},
		{"unknown set", "table inet t {\n\tchain c {\n\t\ttcp dport @nope drop\n\t}\n}\n", 80, nil},
		{"vmap not evaluated", "table inet t {\n\tchain c {\n\t\ttcp dport vmap { 80 : drop }\n\t}\n}\n", 80, nil},
		{"forward policy ignored", "table inet t {\n\tchain f {\n\t\ttype filter hook forward priority filter; policy drop;\n\t}\n}\n", 80, nil},
		{"input policy, port accepted", "table inet t {\n\tchain i {\n\t\ttype filter hook input priority filter; policy drop;\n\t\ttcp dport { 80, 443 } accept\n\t}\n}\n", 80, nil},
		{"drop in a comment", "table inet t {\n\tchain c {\n\t\ttcp dport 80 accept comment \"do not drop\"\n\t}\n}\n", 80, nil},
		{"empty", "", 8080, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseNftRuleset(tt.text, tt.port)
			if !equalRules(got, tt.want) {
				t.Errorf("parseNftRuleset(port %d):\n got %q\nwant %q", tt.port, got, tt.want)
			}
		})
	}
}

func equalRules(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func FuzzParseIptablesSave(f *testing.F) {
	f.Add(readFirewallTestdata(f, "iptables-save.txt"), uint16(8080))
	f.Add(readFirewallTestdata(f, "ip6tables-save.txt"), uint16(8080))
	f.Fuzz(func(t *testing.T, text string, port uint16) {
		got := parseIptablesSave(text, port)
		for _, r := range got {
			if !strings.HasPrefix(r, "iptables ") && !strings.HasPrefix(r, "ip6tables ") || !strings.Contains(r, ": ") {
				t.Errorf("rule %q lacks its tool, table and chain", r)
			}
		}
		if again := parseIptablesSave(text, port); !equalRules(got, again) {
			t.Errorf("not deterministic: %q then %q", got, again)
		}
	})
}

func FuzzParseNftRuleset(f *testing.F) {
	f.Add(readFirewallTestdata(f, "nft-ruleset.txt"), uint16(8080))
	f.Fuzz(func(t *testing.T, text string, port uint16) {
		got := parseNftRuleset(text, port)
		for _, r := range got {
			if !strings.HasPrefix(r, "nft ") || !strings.Contains(r, ": ") {
				t.Errorf("rule %q lacks its family, table and chain", r)
			}
		}
	})
}

// requireTool skips (or, under MEDIC_REQUIRE_SYSTEMD=1, fails) when a
// command is missing.
func requireTools(t *testing.T, names ...string) {
	t.Helper()
	for _, n := range names {
		if _, err := exec.LookPath(n); err != nil {
			msg := fmt.Sprintf("%s not installed (apt-get install iproute2 iptables nftables)", n)
			if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
				t.Fatal(msg + " and MEDIC_REQUIRE_SYSTEMD=1")
			}
			t.Skip(msg)
		}
	}
}

func fwRun(t *testing.T, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// firewallHelperResult is what TestFirewallHelperProcess prints.
type firewallHelperResult struct {
	Port        uint16   `json:"port"`
	DialErr     string   `json:"dial_err"`
	Timeout     bool     `json:"timeout"`
	Refused     bool     `json:"refused"`
	Rules       []string `json:"rules"`
	Unavailable string   `json:"unavailable"`
	// Cause is what Diagnose names for a tcp probe of the port.
	Cause   Cause  `json:"cause"`
	Summary string `json:"summary"`
}

// TestFirewallIntegration drops a port with iptables and another with a
// native nft table inside a network namespace of its own, and checks from
// inside it that a probe-like dial times out and that FirewallRules names
// the rule.
func TestFirewallIntegration(t *testing.T) {
	requireRootForTest(t, "creating a network namespace")
	requireTools(t, "ip", "iptables", "iptables-save", "nft")
	ns := fmt.Sprintf("medic-fw-test-%d-%d", os.Getpid(), rand.IntN(1e6))
	fwRun(t, "ip", "netns", "add", ns)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v\n%s", ns, err, out)
		}
	})
	fwRun(t, "ip", "-n", ns, "link", "set", "lo", "up")
	iptPort := uint16(20000 + rand.IntN(10000))
	nftPort := iptPort + 1
	open := iptPort + 2
	fwRun(t, "ip", "netns", "exec", ns, "iptables", "-A", "INPUT", "-p", "tcp", "--dport", strconv.Itoa(int(iptPort)), "-j", "DROP")
	nftRules := fmt.Sprintf("table inet medic {\n chain input {\n  type filter hook input priority 0; policy accept;\n  tcp dport %d drop\n }\n}\n", nftPort)
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(nftRules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft -f: %v\n%s", err, out)
	}

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	helper := exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe, "-test.run=^TestFirewallHelperProcess$", "-test.v")
	helper.Env = append(os.Environ(), "MEDIC_FW_HELPER_PORTS="+fmt.Sprintf("%d,%d,%d", iptPort, nftPort, open))
	var stdout, stderr bytes.Buffer
	helper.Stdout, helper.Stderr = &stdout, &stderr
	if err := helper.Run(); err != nil {
		t.Fatalf("helper: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	results := map[uint16]firewallHelperResult{}
	for line := range strings.Lines(stdout.String()) {
		if js, ok := strings.CutPrefix(line, "RESULT "); ok {
			var r firewallHelperResult
			if err := json.Unmarshal([]byte(js), &r); err != nil {
				t.Fatalf("helper output %q: %v", js, err)
			}
			results[r.Port] = r
			t.Logf("port %d: dial %q; rules %q; unavailable %q", r.Port, r.DialErr, r.Rules, r.Unavailable)
		}
	}
	if len(results) != 3 {
		t.Fatalf("helper printed %d results; want 3\n%s", len(results), stdout.String())
	}

	wantRules := map[uint16][]string{
		iptPort: {
			fmt.Sprintf("iptables filter INPUT: -A INPUT -p tcp -m tcp --dport %d -j DROP", iptPort),
			fmt.Sprintf("nft ip filter INPUT: tcp dport %d drop", iptPort), // the same rule, seen by nft
		},
		nftPort: {fmt.Sprintf("nft inet medic input: tcp dport %d drop", nftPort)},
		open:    nil,
	}
	for port, want := range wantRules {
		r := results[port]
		if r.Unavailable != "" {
			t.Errorf("port %d: unavailable %q; want empty", port, r.Unavailable)
		}
		if !equalRules(r.Rules, want) {
			t.Errorf("port %d: rules\n got %q\nwant %q", port, r.Rules, want)
		}
		if want != nil && (!r.Timeout || r.Refused) {
			t.Errorf("port %d: dial %q; want a timeout, not refused", port, r.DialErr)
		}
		if want != nil && (r.Cause != Firewall || !strings.Contains(r.Summary, "timed out")) {
			t.Errorf("port %d: diagnosis %q (%s), want %q", port, r.Cause, r.Summary, Firewall)
		}
		if want == nil && r.Cause != "" {
			t.Errorf("port %d (no rule): diagnosis %q for a port that answers", port, r.Cause)
		}
		if want == nil && r.DialErr != "" {
			t.Errorf("port %d (no rule): dial %q; want connected", port, r.DialErr)
		}
	}
}

// TestFirewallHelperProcess runs inside the network namespace of
// TestFirewallIntegration; it does nothing in a normal test run.
func TestFirewallHelperProcess(t *testing.T) {
	ports := os.Getenv("MEDIC_FW_HELPER_PORTS")
	if ports == "" {
		return
	}
	for _, p := range strings.Split(ports, ",") {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			t.Fatal(err)
		}
		port := uint16(n)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		r := firewallHelperResult{Port: port}
		c, err := net.DialTimeout("tcp", l.Addr().String(), 300*time.Millisecond)
		if err == nil {
			c.Close()
		} else {
			r.DialErr = err.Error()
			var ne net.Error
			r.Timeout = errors.As(err, &ne) && ne.Timeout()
			r.Refused = strings.Contains(err.Error(), "connection refused")
		}
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		r.Rules, r.Unavailable = FirewallRules(ctx, port)
		spec := probe.Spec{Type: "tcp", Address: l.Addr().String()}
		p, _ := probe.New(spec)
		ForgetSocketSnapshot()
		dg := Diagnose(ctx, Input{Spec: spec, Result: p.Probe(ctx, 300*time.Millisecond)})
		r.Cause, r.Summary = dg.Primary.Cause, dg.Primary.Summary
		cancel()
		js, err := json.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Printf("RESULT %s\n", js)
	}
}

func TestFirewallRulesNoTool(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	rules, unavailable := FirewallRules(t.Context(), 8080)
	if rules != nil || unavailable != "no firewall tool found (iptables-save, ip6tables-save, nft)" {
		t.Errorf("FirewallRules = %q, %q; want nil and no firewall tool found", rules, unavailable)
	}
}

// TestFirewallRulesToolFails puts stand-ins on PATH that behave as
// iptables-save does without CAP_NET_ADMIN, and an nft that works.
func TestFirewallRulesToolFails(t *testing.T) {
	dir := t.TempDir()
	fail := "#!/bin/sh\necho 'iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)' >&2\nexit 1\n"
	nft := "#!/bin/sh\nprintf 'table inet t {\\n\\tchain c {\\n\\t\\ttcp dport 8080 drop\\n\\t}\\n}\\n'\n"
	for name, body := range map[string]string{"iptables-save": fail, "ip6tables-save": fail, "nft": nft} {
		if err := os.WriteFile(dir+"/"+name, []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", dir)
	rules, unavailable := FirewallRules(t.Context(), 8080)
	if want := []string{"nft inet t c: tcp dport 8080 drop"}; !equalRules(rules, want) {
		t.Errorf("rules %q; want %q", rules, want)
	}
	want := "iptables-save: exit status 1: iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root); " +
		"ip6tables-save: exit status 1: iptables-save v1.8.9 (nf_tables): Could not fetch rule set generation id: Permission denied (you must be root)"
	if unavailable != want {
		t.Errorf("unavailable\n %q\nwant %q", unavailable, want)
	}
}
