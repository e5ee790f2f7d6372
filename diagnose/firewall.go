package diagnose

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// FirewallRules lists the firewall rules that drop or reject TCP traffic
// to port, read with iptables-save(8) and ip6tables-save(8) (or their
// -nft variants when the plain names are missing, and the -legacy ones
// when the nft variant warns that legacy tables are present) and with
// "nft list ruleset" (nft(8)) when nft is installed.
//
// Each rule is returned with its table and chain, e.g.
// "iptables filter INPUT: -A INPUT -p tcp -m tcp --dport 8080 -j DROP" or
// "nft inet medic input: tcp dport { 8081, 8090-8099 } reject with tcp reset".
// A chain whose policy is drop and in which no rule accepts the port is
// listed as "iptables filter INPUT: policy DROP (no rule accepts port 8080)"
// (FORWARD and forward-hook chains excepted: they do not see traffic to a
// local backend). Only TCP is considered: medic's probes dial TCP.
// Rules managed by iptables-nft appear twice, once from iptables-save and
// once from nft. Rule order is not evaluated: an earlier ACCEPT (for
// example "-i lo -j ACCEPT") may make a listed rule harmless.
//
// unavailable is empty when every tool ran; otherwise it says which
// evidence is missing and why, e.g. "no firewall tool found (iptables-save,
// ip6tables-save, nft)" or, when a tool fails and this process lacks
// CAP_NET_ADMIN (which reading the kernel's rules needs), one short note
// naming the tools: "iptables-save, ip6tables-save, nft need CAP_NET_ADMIN;
// medic runs as user medic without it". Rules found by the tools that did
// run are returned in either case.
func FirewallRules(ctx context.Context, port uint16) (rules []string, unavailable string) {
	var problems, needCap []string
	ran := 0

	run := func(name string, args ...string) (string, bool) {
		path, err := exec.LookPath(name)
		if err != nil {
			return "", false
		}
		ran++
		cmd := exec.CommandContext(ctx, path, args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			msg := name + ": " + err.Error()
			if s := firstLine(stderr.String()); s != "" {
				msg += ": " + s
			}
			if !hasCapability(capNetAdmin) && ctx.Err() == nil {
				// One short note for all the tools, not their errors.
				needCap = append(needCap, name)
				return "", true
			}
			if ctxErr := context.Cause(ctx); ctxErr != nil && !errors.Is(err, ctxErr) {
				msg += " (" + ctxErr.Error() + ")"
			}
			problems = append(problems, msg)
			return "", true
		}
		// iptables-nft-save warns on stderr about legacy tables.
		return stdout.String() + stderr.String(), true
	}

	for _, family := range []string{"iptables", "ip6tables"} {
		out, found := run(family + "-save")
		if !found {
			out, found = run(family + "-nft-save")
		}
		if !found {
			continue
		}
		rules = append(rules, parseIptablesSave(out, port)...)
		if strings.Contains(out, "legacy tables present") {
			if legacy, ok := run(family + "-legacy-save"); ok {
				rules = append(rules, parseIptablesSave(legacy, port)...)
			}
		}
	}
	if out, found := run("nft", "list", "ruleset"); found {
		rules = append(rules, parseNftRuleset(out, port)...)
	} else if ran > 0 {
		problems = append(problems, "nft not installed: native nftables rules not checked")
	}
	if ran == 0 {
		return nil, "no firewall tool found (iptables-save, ip6tables-save, nft)"
	}
	if n := len(needCap); n > 0 {
		verb := "need"
		if n == 1 {
			verb = "needs"
		}
		problems = append([]string{fmt.Sprintf("%s %s CAP_NET_ADMIN; medic runs as user %s without it",
			strings.Join(needCap, ", "), verb, userName(uint32(os.Geteuid())))}, problems...)
	}
	return rules, strings.Join(problems, "; ")
}

// capNetAdmin is CAP_NET_ADMIN's bit number (capabilities(7)).
const capNetAdmin = 12

// hasCapability reports whether capability bit c is in this process's
// effective set, the CapEff mask of /proc/self/status (proc(5)). It
// reports true when the mask cannot be read, so that callers do not blame
// a missing capability they could not see.
func hasCapability(c uint) bool {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
			mask, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || mask&(1<<c) != 0
		}
	}
	return true
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// parseIptablesSave returns the rules of iptables-save(8) output text that
// DROP or REJECT TCP traffic to port: "--dport N", "--dport A:B",
// "--dports A,B,C:D" (multiport) and their negations ("! --dport 22"
// matches every other port). Rules for another protocol ("-p udp") are
// skipped. Each result is "iptables TABLE CHAIN: RULE" ("ip6tables ..."
// when the header says ip6tables-save). A built-in chain with policy DROP
// in which no rule ACCEPTs the port is reported as "... CHAIN: policy DROP
// (no rule accepts port N)".
func parseIptablesSave(text string, port uint16) []string {
	var (
		out     []string
		tool    = "iptables"
		table   string
		policy  = map[string]string{} // chain → policy, this table
		order   []string              // chains with a policy, in order
		accepts = map[string]bool{}   // chain → some rule accepts port
	)
	flush := func() {
		for _, ch := range order {
			// FORWARD does not see traffic to a local backend.
			if p := policy[ch]; (p == "DROP" || p == "REJECT") && !accepts[ch] && ch != "FORWARD" {
				out = append(out, fmt.Sprintf("%s %s %s: policy %s (no rule accepts port %d)", tool, table, ch, p, port))
			}
		}
		policy, order, accepts = map[string]string{}, nil, map[string]bool{}
	}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		switch {
		case line == "":
		case strings.HasPrefix(line, "#"):
			if strings.Contains(line, "ip6tables") {
				tool = "ip6tables"
			}
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case line == "COMMIT":
			flush()
			table = ""
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) >= 2 && f[1] != "-" {
				policy[f[0]] = f[1]
				order = append(order, f[0])
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			chain := f[1]
			target, matches := iptablesRuleMatches(f, port)
			if !matches {
				continue
			}
			switch target {
			case "DROP", "REJECT":
				out = append(out, fmt.Sprintf("%s %s %s: %s", tool, table, chain, line))
			case "ACCEPT":
				accepts[chain] = true
			}
		}
	}
	if len(order) > 0 {
		flush()
	}
	return out
}

// iptablesRuleMatches reads the fields of one "-A" line and says its
// target (-j) and whether it names a destination port that covers port
// for TCP (or any protocol that has ports).
func iptablesRuleMatches(f []string, port uint16) (target string, matches bool) {
	hasPort := false
	portOK := true
	for i := 0; i < len(f); i++ {
		neg := i > 0 && f[i-1] == "!"
		next := func() string {
			if i+1 < len(f) {
				return f[i+1]
			}
			return ""
		}
		switch f[i] {
		case "-j", "--jump":
			target = next()
		case "-p", "--protocol":
			p := strings.ToLower(next())
			isTCP := p == "tcp" || p == "6" || p == "all" || p == "0"
			if isTCP == neg {
				return target, false
			}
		case "--dport", "--destination-port", "--dports", "--destination-ports", "--ports":
			hasPort = true
			in, ok := portListContains(next(), port, ",", ":")
			if !ok {
				return target, false
			}
			if in == neg {
				portOK = false
			}
		}
	}
	// The target can come before or after the matches; read it at the end.
	return target, hasPort && portOK
}

// portListContains says whether port is in list, a sep-separated list of
// ports and ranges written with rangeSep ("80,443,9000:9100" for iptables,
// "80, 443, 9000-9100" for nft). ok is false when an item is not a
// number (a service name or a set reference).
func portListContains(list string, port uint16, sep, rangeSep string) (in, ok bool) {
	if strings.TrimSpace(list) == "" {
		return false, false
	}
	for _, item := range strings.Split(list, sep) {
		item = strings.TrimSpace(item)
		lo, hi, isRange := strings.Cut(item, rangeSep)
		a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
		if err != nil {
			return false, false
		}
		b := a
		if isRange {
			if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil {
				return false, false
			}
		}
		if uint64(port) >= a && uint64(port) <= b {
			in = true
		}
	}
	return in, true
}

// parseNftRuleset returns the rules of "nft list ruleset" output text
// (nft(8)) that drop or reject TCP traffic to port: "tcp dport N",
// "th dport N" with "meta l4proto tcp" or none, ranges "A-B", anonymous
// sets "{ a, b, c-d }", named sets "@name" defined in the same table, and
// negations ("tcp dport != 22"). Each result is "nft FAMILY TABLE CHAIN:
// RULE" with the counter statement removed. A base chain with "policy
// drop" in which no rule accepts the port is reported as "nft FAMILY
// TABLE CHAIN: policy drop (no rule accepts port N)". Verdict maps
// ("dport vmap { ... }") are not evaluated.
func parseNftRuleset(text string, port uint16) []string {
	var (
		out    []string
		family string
		table  string
		chain  string
		setNm  string
		inSet  bool
		inElem bool
		elem   strings.Builder
		sets   = map[string]string{} // set name → its elements, this table
		// per chain
		policyDrop bool
		accepted   bool
		depth      int
	)
	endChain := func() {
		if chain != "" && policyDrop && !accepted {
			out = append(out, fmt.Sprintf("nft %s %s %s: policy drop (no rule accepts port %d)", family, table, chain, port))
		}
		chain, policyDrop, accepted = "", false, false
	}
	for line := range strings.Lines(text) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if inElem {
			elem.WriteString(" " + line)
			if strings.Contains(line, "}") {
				inElem = false
				sets[setNm] = elem.String()
			}
			continue
		}
		f := strings.Fields(line)
		switch {
		case depth == 0 && f[0] == "table" && len(f) >= 3:
			family, table = f[1], f[2]
			if len(f) == 3 { // "table NAME {" with the default family ip
				family, table = "ip", f[1]
			}
			sets = map[string]string{}
			depth = 1
			continue
		case depth == 1 && f[0] == "chain" && len(f) >= 2:
			chain = f[1]
			depth = 2
			continue
		case depth == 1 && (f[0] == "set" || f[0] == "map") && len(f) >= 2:
			setNm, inSet = f[1], f[0] == "set"
			depth = 2
			continue
		case depth == 1 && strings.HasSuffix(line, "{"):
			// flowtable, counter, quota, ct helper ... objects.
			depth = 2
			continue
		case line == "}":
			if depth == 2 {
				endChain()
				setNm, inSet = "", false
			}
			if depth > 0 {
				depth--
			}
			continue
		}
		if depth != 2 {
			continue
		}
		if chain == "" {
			if inSet && strings.HasPrefix(line, "elements = {") {
				elem.Reset()
				elem.WriteString(line)
				if strings.Contains(line, "}") {
					sets[setNm] = line
				} else {
					inElem = true
				}
			}
			continue
		}
		if f[0] == "type" {
			// A forward hook does not see traffic to a local backend.
			policyDrop = strings.Contains(line, "policy drop") && !strings.Contains(line, "hook forward")
			continue
		}
		verdict, matches := nftRuleMatches(line, port, sets)
		if !matches {
			continue
		}
		switch verdict {
		case "drop", "reject":
			out = append(out, fmt.Sprintf("nft %s %s %s: %s", family, table, chain, stripCounter(line)))
		case "accept":
			accepted = true
		}
	}
	return out
}

// nftRuleMatches reads one nft rule and says its verdict ("drop",
// "reject", "accept" or "") and whether it matches TCP traffic to port by
// destination port.
func nftRuleMatches(rule string, port uint16, sets map[string]string) (verdict string, matches bool) {
	toks := nftTokens(rule)
	hasPort, portOK := false, true
	for i := 0; i < len(toks); i++ {
		t := toks[i]
		switch t {
		case "drop", "reject", "accept":
			// A verdict is a statement of its own, not an argument of
			// "log prefix" (quoted) or "ct state".
			verdict = t
		case "udp", "sctp", "dccp", "udplite":
			if i+1 < len(toks) && toks[i+1] == "dport" {
				return "", false
			}
		case "l4proto":
			if i+1 < len(toks) {
				p := toks[i+1]
				neg := p == "!="
				if neg && i+2 < len(toks) {
					p = toks[i+2]
				}
				if (p == "tcp" || p == "6") == neg {
					return "", false
				}
			}
		case "dport":
			if i == 0 || (toks[i-1] != "tcp" && toks[i-1] != "th") {
				continue
			}
			j := i + 1
			neg := false
			if j < len(toks) && (toks[j] == "!=" || toks[j] == "==") {
				neg = toks[j] == "!="
				j++
			}
			if j >= len(toks) {
				return "", false
			}
			val := toks[j]
			if val == "vmap" || val == "map" {
				return "", false
			}
			if strings.HasPrefix(val, "@") {
				s, ok := sets[val[1:]]
				if !ok {
					return "", false
				}
				val = s
			}
			val = strings.TrimPrefix(strings.TrimSpace(val), "elements = ")
			val = strings.TrimSuffix(strings.TrimPrefix(val, "{"), "}")
			in, ok := portListContains(val, port, ",", "-")
			if !ok {
				return "", false
			}
			hasPort = true
			if in == neg {
				portOK = false
			}
		}
	}
	return verdict, hasPort && portOK
}

// nftTokens splits an nft rule into words, keeping a quoted string or a
// braced set ("{ 80, 443 }") as one token.
func nftTokens(s string) []string {
	var toks []string
	for i := 0; i < len(s); {
		switch c := s[i]; {
		case c == ' ' || c == '\t':
			i++
		case c == '"':
			j := strings.IndexByte(s[i+1:], '"')
			if j < 0 {
				toks = append(toks, s[i:])
				return toks
			}
			toks = append(toks, s[i:i+j+2])
			i += j + 2
		case c == '{':
			j := strings.IndexByte(s[i:], '}')
			if j < 0 {
				toks = append(toks, s[i:])
				return toks
			}
			toks = append(toks, s[i:i+j+1])
			i += j + 1
		default:
			j := strings.IndexAny(s[i:], " \t")
			if j < 0 {
				j = len(s) - i
			}
			toks = append(toks, s[i:i+j])
			i += j
		}
	}
	return toks
}

// stripCounter removes "counter packets N bytes N" from an nft rule.
func stripCounter(rule string) string {
	f := strings.Fields(rule)
	for i := 0; i+4 < len(f); i++ {
		if f[i] == "counter" && f[i+1] == "packets" && f[i+3] == "bytes" {
			return strings.Join(append(f[:i:i], f[i+5:]...), " ")
		}
	}
	return rule
}
