package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/internal/systemdtest"

	"github.com/spf13/cobra"
)

// TestGenDocs wants a man page for medic and each visible subcommand, each
// titled after itself (MEDIC\-RUN for medic-run(8)), none for hidden ones,
// medic(8) with its sections, medic.toml(5) naming every option of the
// example configuration, three completion scripts, and pages groff reads
// without a warning.
func TestGenDocs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1795248000")
	if _, stderr, err := execute("gendocs", "--dir", dir, "--example", "../../config.example.toml"); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, stderr)
	}

	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		name := strings.ReplaceAll(c.CommandPath(), " ", "-")
		page, err := os.ReadFile(filepath.Join(dir, "man", "man8", name+".8"))
		if err != nil {
			t.Errorf("no man page for %q: %v", c.CommandPath(), err)
		} else if th := regexp.MustCompile(`(?m)^\.TH "?([^" ]+)"? "?8"? `).FindSubmatch(page); th == nil || strings.ReplaceAll(string(th[1]), `\`, "") != strings.ToUpper(name) {
			t.Errorf("%s.8: title %q, want %q", name, th, strings.ToUpper(name))
		}
		for _, sub := range c.Commands() {
			if sub.IsAvailableCommand() {
				walk(sub)
			}
		}
	}
	walk(newRootCmd())
	for _, hidden := range []string{"medic-gendocs.8", "medic-demo-backend.8"} {
		if _, err := os.Stat(filepath.Join(dir, "man", "man8", hidden)); err == nil {
			t.Errorf("man page %s written for a hidden command", hidden)
		}
	}

	page, err := os.ReadFile(filepath.Join(dir, "man", "man5", "medic.toml.5"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(page), `"Nov 2026"`) {
		t.Errorf("medic.toml.5 does not carry the SOURCE_DATE_EPOCH date")
	}
	example, err := os.ReadFile("../../config.example.toml")
	if err != nil {
		t.Fatal(err)
	}
	keys := regexp.MustCompile(`(?m)^\s*#?\s*([a-z_]+)\s*=`).FindAllStringSubmatch(string(example), -1)
	if len(keys) < 40 {
		t.Fatalf("found only %d options in the example; the pattern is wrong", len(keys))
	}
	for _, k := range keys {
		if !strings.Contains(string(page), `\fB`+roff(k[1])+`\fR = `) {
			t.Errorf("medic.toml.5 lacks option %q", k[1])
		}
	}
	for _, h := range []string{"[agent]", "[[check]]", "[[check.probe]]", "[check.remedy]", "[check.escalate]", "[[notifier]]"} {
		if !strings.Contains(string(page), `.SS "`+roff(h)) {
			t.Errorf("medic.toml.5 lacks section %s", h)
		}
	}

	for _, name := range []string{"medic.bash", "_medic", "medic.fish"} {
		b, err := os.ReadFile(filepath.Join(dir, "completions", name))
		if err != nil || !strings.Contains(string(b), "medic") {
			t.Errorf("completion %s: %v, %d bytes", name, err, len(b))
		}
	}

	groff, err := exec.LookPath("groff")
	if err != nil {
		t.Log("groff not installed: the pages' roff is not checked")
		return
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "man", "man*", "*"))
	for _, p := range pages {
		cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", p)
		cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("groff %s: %v\n%s", filepath.Base(p), err, out)
		}
	}
}

func TestParseExampleContinuation(t *testing.T) {
	items := parseExample([]byte(`# title
[agent]
bus = "system"   # which manager: "system", or
                 # "user" for tests
# prose # with a hash
# opt = "a#b"    # commented option
`))
	var got []string
	for _, it := range items {
		got = append(got, string(it.kind)+"|"+it.text+"|"+it.value+"|"+strings.Join(it.desc, "/")+"|"+map[bool]string{true: "c"}[it.commented])
	}
	want := []string{
		"p|title|||",
		"h|[agent]|||",
		`o|bus|"system"|which manager: "system", or/"user" for tests|`,
		"p|prose # with a hash|||",
		`o|opt|"a#b"|commented option|c`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("items:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestManPageMedic wants medic(8) written for people: the usual sections in
// the usual order, every command in COMMANDS with a page of its own, the
// files, signals (with the bounds run.go keeps), exit status and
// environment, and roff that groff and man render without a warning.
func TestManPageMedic(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1795248000")
	if _, stderr, err := execute("gendocs", "--dir", dir, "--example", "../../config.example.toml"); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, stderr)
	}
	path := filepath.Join(dir, "man", "man8", "medic.8")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	page := string(b)
	if want := `.TH MEDIC 8 "Nov 2026" "medic ` + roff(version) + `" "System Administration"`; !strings.Contains(page, want+"\n") {
		t.Errorf("medic.8 lacks the header %s", want)
	}
	if strings.Contains(page, "{{") || strings.Contains(page, "<no value>") {
		t.Errorf("medic.8 has a template field left")
	}

	// The sections, in order; section returns the text of one.
	var at []int
	for _, name := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "COMMANDS", "FILES", "SIGNALS", "EXIT STATUS", "ENVIRONMENT", "EXAMPLES", "SEE ALSO"} {
		head := ".SH " + name + "\n"
		if strings.Contains(name, " ") {
			head = `.SH "` + name + "\"\n"
		}
		i := strings.Index(page, head)
		if i < 0 {
			t.Errorf("medic.8 has no section %s", name)
			continue
		}
		if len(at) > 0 && i < at[len(at)-1] {
			t.Errorf("medic.8: section %s is out of order", name)
		}
		at = append(at, i)
	}
	section := func(name string) string {
		_, rest, _ := strings.Cut(page, "\n.SH "+name)
		text, _, _ := strings.Cut(rest, "\n.SH ")
		return text
	}
	if !strings.Contains(section("NAME"), `medic \- `) {
		t.Errorf("NAME is not \"medic \\- ...\":%s", section("NAME"))
	}

	commands := section("COMMANDS")
	listed := listedCommands(newRootCmd())
	if len(listed) < 14 {
		t.Errorf("COMMANDS lists %d commands", len(listed))
	}
	for _, c := range listed {
		entry := `\fBmedic ` + roff(strings.TrimPrefix(c.CommandPath(), "medic ")) + `\fR`
		if !strings.Contains(commands, ".TP\n"+entry) {
			t.Errorf("COMMANDS lacks %s", entry)
		}
		ref := `\fB` + roff(manPageName(c)) + `\fR(8)`
		if !strings.Contains(commands, ref) {
			t.Errorf("COMMANDS does not refer to %s", ref)
		}
		if _, err := os.Stat(filepath.Join(dir, "man", "man8", manPageName(c)+".8")); err != nil {
			t.Errorf("COMMANDS refers to a page that is not written: %v", err)
		}
	}
	for _, hidden := range []string{"gendocs", "demo\\-backend", "help"} {
		if strings.Contains(commands, `\fBmedic `+hidden+`\fR`) {
			t.Errorf("COMMANDS lists %s", hidden)
		}
	}

	for name, wants := range map[string][]string{
		"FILES": {`/etc/medic/medic.toml`, `checks/CHECK.json`, `paused.json`, `outbox/NOTIFIER/`, `incidents/`,
			`/run/medic/medic.sock`, `/run/medic/status\-socket`, `/etc/polkit\-1/rules.d/50\-medic.rules`, `/lib/systemd/system/medic.service`},
		"SIGNALS": {"SIGHUP", "SIGTERM", "SIGINT", "a second SIGTERM or SIGINT", "SIGKILL",
			fmt.Sprintf("%d seconds", int(stopWait.Seconds())), fmt.Sprintf("%d seconds", int(flushTimeout.Seconds())), "TimeoutStopSec=30s"},
		`"EXIT STATUS"`: {".B run\n", ".B run \\-\\-once\n", ".B check\\-config\n", ".B status\n", "reload", ".B diagnose\n", ".B diagnose nginx\n", ".B notify test\n"},
		"ENVIRONMENT":   {"NO_COLOR", "RUNTIME_DIRECTORY", "NOTIFY_SOCKET", "DBUS_SYSTEM_BUS_ADDRESS", "DBUS_SESSION_BUS_ADDRESS", "CREDENTIALS_DIRECTORY"},
		"EXAMPLES":      {".EX\n", "medic status"},
		`"SEE ALSO"`: {".BR medic.toml (5)", ".BR systemctl (1)", ".BR systemd.service (5)", ".BR polkit (8)",
			".BR nginx (8)", ".BR journalctl (1)"},
	} {
		text := section(name)
		for _, want := range wants {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %q", name, want)
			}
		}
	}
	// The bounds the page quotes are the unit's.
	unit, err := os.ReadFile("../../packaging/medic.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "\nTimeoutStopSec=30s\n") {
		t.Errorf("medic.service no longer says TimeoutStopSec=30s; update SIGNALS in docs/medic.8.in")
	}

	groff, err := exec.LookPath("groff")
	if err != nil {
		systemdtest.Missing(t, "groff is not installed: medic.8 is not rendered")
	}
	cmd := exec.Command(groff, "-man", "-Tutf8", "-ww", "-P", "-cbou", path)
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil || stderr.Len() > 0 {
		t.Fatalf("groff medic.8: %v\n%s", err, stderr.String())
	}
	for _, want := range []string{"EXIT STATUS", "medic-run(8)", "/var/lib/medic"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the rendered medic.8 lacks %q", want)
		}
	}
	if man, err := exec.LookPath("man"); err == nil {
		cmd := exec.Command(man, "-l", path)
		cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80", "LC_ALL=C.UTF-8", "MAN_KEEP_FORMATTING=")
		stderr.Reset()
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "MEDIC(8)") {
			t.Errorf("man -l medic.8: %v\n%s", err, stderr.String())
		}
	}
}

// TestManPageCommandsFollowTree wants COMMANDS made from the command tree:
// a command added later is listed (after the known ones, before
// completion), groups by their subcommands, hidden commands not at all.
func TestManPageCommandsFollowTree(t *testing.T) {
	noop := func(*cobra.Command, []string) {}
	root := &cobra.Command{Use: "medic"}
	group := &cobra.Command{Use: "notify", Short: "Work with notifiers"}
	group.AddCommand(&cobra.Command{Use: "test", Short: "Send a test message", Run: noop})
	root.AddCommand(
		&cobra.Command{Use: "frobnicate [CHECK]", Short: "A command added later", Run: noop},
		&cobra.Command{Use: "run", Short: "Run the agent.", Run: noop},
		&cobra.Command{Use: "secret", Short: "Hidden", Hidden: true, Run: noop},
		group,
	)
	root.InitDefaultCompletionCmd()
	got := commandsSection(root)
	want := strings.Join([]string{
		`.TP`, `\fBmedic run\fR`, `Run the agent.`, `See \fBmedic\-run\fR(8).`,
		`.TP`, `\fBmedic notify test\fR`, `Send a test message.`, `See \fBmedic\-notify\-test\fR(8).`,
		`.TP`, `\fBmedic frobnicate\fR \fI[CHECK]\fR`, `A command added later.`, `See \fBmedic\-frobnicate\fR(8).`,
		`.TP`, `\fBmedic completion\fR \fISHELL\fR`,
	}, "\n")
	if !strings.HasPrefix(got, want) {
		t.Errorf("COMMANDS:\n%s\nwant it to begin:\n%s", got, want)
	}
	if strings.Contains(got, "secret") {
		t.Errorf("COMMANDS lists a hidden command:\n%s", got)
	}
}
