package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"text/template"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/medic-watchdog/medic/docs"
)

// newGendocsCmd is the hidden command the packaging runs at build time.
func newGendocsCmd() *cobra.Command {
	var dir, example string
	cmd := &cobra.Command{
		Use:    "gendocs",
		Short:  "Write man pages and shell completions (for packaging)",
		Hidden: true,
		Long: `gendocs writes, under --dir:
  man/man8/medic.8                      from docs/medic.8.in, with the commands
  man/man8/medic-*.8                    one per command, from the command tree
  man/man5/medic.toml.5                 from the commented example configuration
  completions/medic.bash, completions/_medic, completions/medic.fish
Dates are taken from SOURCE_DATE_EPOCH when it is set, so builds repeat.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return genDocs(cmd.Root(), dir, example)
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "directory to write into (created if missing)")
	cmd.Flags().StringVar(&example, "example", "config.example.toml", "the commented example configuration medic.toml(5) is made from")
	_ = cmd.MarkFlagRequired("dir")
	return cmd
}

// genDocs writes the man pages and completions of root under dir.
func genDocs(root *cobra.Command, dir, example string) error {
	src, err := os.ReadFile(example)
	if err != nil {
		return fmt.Errorf("read example configuration: %w", err)
	}
	date := buildDate()
	man8 := filepath.Join(dir, "man", "man8")
	man5 := filepath.Join(dir, "man", "man5")
	comp := filepath.Join(dir, "completions")
	for _, d := range []string{man8, man5, comp} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create %s: %w", d, err)
		}
	}

	root.InitDefaultCompletionCmd()
	root.DisableAutoGenTag = true
	if err := writeCommandPages(root, man8, date); err != nil {
		return err
	}
	page, err := medicManPage(root, date)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(man8, "medic.8"), page, 0o644); err != nil {
		return fmt.Errorf("write medic.8: %w", err)
	}
	if err := os.WriteFile(filepath.Join(man5, "medic.toml.5"), configManPage(src, date), 0o644); err != nil {
		return fmt.Errorf("write medic.toml.5: %w", err)
	}

	var bash, zsh, fish bytes.Buffer
	if err := root.GenBashCompletionV2(&bash, true); err != nil {
		return fmt.Errorf("bash completion: %w", err)
	}
	if err := root.GenZshCompletion(&zsh); err != nil {
		return fmt.Errorf("zsh completion: %w", err)
	}
	if err := root.GenFishCompletion(&fish, true); err != nil {
		return fmt.Errorf("fish completion: %w", err)
	}
	for name, b := range map[string][]byte{"medic.bash": bash.Bytes(), "_medic": zsh.Bytes(), "medic.fish": fish.Bytes()} {
		if err := os.WriteFile(filepath.Join(comp, name), b, 0o644); err != nil {
			return fmt.Errorf("write completion: %w", err)
		}
	}
	return nil
}

// manHeader is the header of the man page of c: its title is the page's
// name in capitals (MEDIC\-RUN for medic-run(8)).
func manHeader(c *cobra.Command, date time.Time) *doc.GenManHeader {
	return &doc.GenManHeader{
		Title:   strings.ToUpper(strings.ReplaceAll(c.CommandPath(), " ", `\-`)),
		Section: "8",
		Date:    &date,
		Source:  "medic " + version,
		Manual:  "System Administration",
	}
}

// manPageName is the name of c's page without its section: medic-diagnose-nginx.
func manPageName(c *cobra.Command) string {
	return strings.ReplaceAll(c.CommandPath(), " ", "-")
}

// writeCommandPages writes a page for every command under root that is
// shown in help (not hidden, not help itself), each with its own header;
// root's own page, medic(8), is written by hand (medicManPage).
func writeCommandPages(root *cobra.Command, dir string, date time.Time) error {
	var walk func(c *cobra.Command) error
	walk = func(c *cobra.Command) error {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			var b bytes.Buffer
			if err := doc.GenMan(sub, manHeader(sub, date), &b); err != nil {
				return fmt.Errorf("man page of %s: %w", sub.CommandPath(), err)
			}
			if err := os.WriteFile(filepath.Join(dir, manPageName(sub)+".8"), b.Bytes(), 0o644); err != nil {
				return fmt.Errorf("write man page: %w", err)
			}
			if err := walk(sub); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(root)
}

// commandOrder is the order of medic(8)'s COMMANDS, as people meet them;
// commands not named here follow, in the command tree's order, and
// completion comes last.
var commandOrder = []string{
	"run", "check-config", "status", "incidents", "incidents show",
	"reload", "pause", "resume",
	"diagnose", "diagnose nginx", "discover nginx", "notify test", "outbox",
	"polkit-rule", "demo", "version",
}

// listedCommands are the commands medic(8) lists: every command shown in
// help that does something (a group such as "notify" is listed by its
// subcommands), with completion listed once for all shells.
func listedCommands(root *cobra.Command) []*cobra.Command {
	var out []*cobra.Command
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			if !sub.IsAvailableCommand() || sub.IsAdditionalHelpTopicCommand() {
				continue
			}
			if sub.Runnable() || sub.Name() == "completion" && c == root {
				out = append(out, sub)
			}
			if sub.Name() != "completion" {
				walk(sub)
			}
		}
	}
	walk(root)
	rank := func(c *cobra.Command) int {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		if i := slices.Index(commandOrder, path); i >= 0 {
			return i
		}
		if path == "completion" {
			return len(commandOrder) + 1
		}
		return len(commandOrder)
	}
	slices.SortStableFunc(out, func(a, b *cobra.Command) int { return rank(a) - rank(b) })
	return out
}

// commandsSection renders the COMMANDS list of medic(8): for each command,
// its synopsis, its short description and its page.
func commandsSection(root *cobra.Command) string {
	var b strings.Builder
	for _, c := range listedCommands(root) {
		path := strings.TrimPrefix(c.CommandPath(), root.Name()+" ")
		_, args, _ := strings.Cut(c.Use, " ")
		if c.Name() == "completion" {
			args = "SHELL"
		}
		b.WriteString(".TP\n")
		fmt.Fprintf(&b, "\\fB%s %s\\fR", root.Name(), roff(path))
		if args != "" {
			fmt.Fprintf(&b, " \\fI%s\\fR", roff(args))
		}
		b.WriteString("\n")
		short := strings.TrimSpace(c.Short)
		if short != "" && !strings.HasSuffix(short, ".") {
			short += "."
		}
		if short != "" {
			b.WriteString(roff(short) + "\n")
		}
		fmt.Fprintf(&b, "See \\fB%s\\fR(8).\n", roff(manPageName(c)))
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// medicManPage renders medic(8) from docs/medic.8.in.
func medicManPage(root *cobra.Command, date time.Time) ([]byte, error) {
	tmpl, err := template.New("medic.8").Option("missingkey=error").Parse(docs.Medic8)
	if err != nil {
		return nil, fmt.Errorf("medic.8.in: %w", err)
	}
	var b bytes.Buffer
	err = tmpl.Execute(&b, map[string]string{
		"Date":     date.Format("Jan 2006"),
		"Version":  roff(version),
		"Commands": commandsSection(root),
	})
	if err != nil {
		return nil, fmt.Errorf("medic.8.in: %w", err)
	}
	return b.Bytes(), nil
}

// buildDate is SOURCE_DATE_EPOCH when set and valid, else now.
func buildDate() time.Time {
	var sec int64
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		if _, err := fmt.Sscan(s, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Now().UTC()
}

var (
	tableRE  = regexp.MustCompile(`^\s*(\[\[?[a-z_.]+\]\]?)\s*(#.*)?$`)
	optionRE = regexp.MustCompile(`^\s*([a-z_]+)\s*=\s*(.*)$`)
)

// configItem is one piece of the example configuration, in file order.
type configItem struct {
	kind      byte   // 'h' table heading, 'o' option, 'p' prose comment
	text      string // heading, option key, or prose line
	value     string // option: its default as written
	desc      []string
	commented bool // option or heading written as a comment (off by default)
}

// parseExample reads the commented example configuration: table headings,
// options with their default and trailing comment (continued on the
// following comment-only lines indented past the option), options and
// headings that are commented out, and prose comments.
func parseExample(src []byte) []configItem {
	var items []configItem
	lastOption := -1 // index in items of the option continuation lines extend
	sc := bufio.NewScanner(bytes.NewReader(src))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		if trimmed == "" {
			lastOption = -1
			if n := len(items); n > 0 && items[n-1].kind == 'p' && items[n-1].text != "" {
				items = append(items, configItem{kind: 'p'})
			}
			continue
		}
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		body, commented := trimmed, false
		if strings.HasPrefix(trimmed, "#") {
			body, commented = strings.TrimSpace(strings.TrimPrefix(trimmed, "#")), true
			// A comment-only line indented past its option continues the
			// option's description.
			if lastOption >= 0 && indent > 8 && !optionRE.MatchString(body) {
				items[lastOption].desc = append(items[lastOption].desc, body)
				continue
			}
		}
		if m := tableRE.FindStringSubmatch(body); m != nil {
			items = append(items, configItem{kind: 'h', text: m[1], commented: commented})
			lastOption = -1
			continue
		}
		if m := optionRE.FindStringSubmatch(body); m != nil {
			value, comment := splitComment(m[2])
			it := configItem{kind: 'o', text: m[1], value: value, commented: commented}
			if comment != "" {
				it.desc = append(it.desc, comment)
			}
			items = append(items, it)
			lastOption = len(items) - 1
			continue
		}
		lastOption = -1
		items = append(items, configItem{kind: 'p', text: body})
	}
	return items
}

// splitComment splits "value  # comment" at the first '#' outside a quoted
// string.
func splitComment(s string) (value, comment string) {
	var quote byte
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case quote != 0 && c == '\\':
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote == 0 && (c == '"' || c == '\''):
			quote = c
		case quote == 0 && c == '#':
			return strings.TrimSpace(s[:i]), strings.TrimSpace(s[i+1:])
		}
	}
	return strings.TrimSpace(s), ""
}

// roff escapes s for use in running text of a man page.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	if strings.HasPrefix(s, ".") || strings.HasPrefix(s, "'") {
		s = `\&` + s
	}
	return s
}

// configManPage renders medic.toml(5) from the example configuration.
func configManPage(src []byte, date time.Time) []byte {
	items := parseExample(src)
	var b bytes.Buffer
	fmt.Fprintf(&b, ".TH \"MEDIC.TOML\" \"5\" \"%s\" \"medic %s\" \"File Formats\"\n", date.Format("Jan 2006"), roff(version))
	b.WriteString(".nh\n.ad l\n")
	b.WriteString(".SH NAME\nmedic.toml \\- configuration of the medic watchdog agent\n")
	b.WriteString(".SH SYNOPSIS\n\\fI/etc/medic/medic.toml\\fR\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString("medic reads one TOML file. Check it with \\fBmedic check\\-config \\-c /etc/medic/medic.toml\\fR; " +
		"errors name the file, the line and the key. " +
		"This page lists every option in the order of the example configuration " +
		"(\\fI/usr/share/doc/medic/examples/config.example.toml\\fR), each with its default value. " +
		"Options shown as \\(lqnot set\\(rq are commented out in the example.\n")
	// Prose inside the sections is held back until the next option or
	// heading: a comment just above a heading introduces that heading.
	inSection := false
	var pending []string // prose lines; "" separates paragraphs
	flush := func() {
		para := false
		for _, l := range pending {
			if l == "" {
				para = false
				continue
			}
			if !para {
				b.WriteString(".PP\n")
				para = true
			}
			b.WriteString(roff(l) + "\n")
		}
		pending = pending[:0]
	}
	for i, it := range items {
		switch it.kind {
		case 'p':
			if i == 0 {
				continue // the title line, said in NAME already
			}
			pending = append(pending, it.text)
		case 'h':
			if !inSection {
				flush() // the file's header comment belongs to DESCRIPTION
			}
			inSection = true
			if it.commented {
				fmt.Fprintf(&b, ".SS \"%s (commented out)\"\n", roff(it.text))
			} else {
				fmt.Fprintf(&b, ".SS \"%s\"\n", roff(it.text))
			}
			flush()
		case 'o':
			flush()
			if !inSection {
				continue
			}
			b.WriteString(".TP\n")
			if it.commented {
				fmt.Fprintf(&b, "\\fB%s\\fR = %s (not set)\n", roff(it.text), roff(it.value))
			} else {
				fmt.Fprintf(&b, "\\fB%s\\fR = %s\n", roff(it.text), roff(it.value))
			}
			if len(it.desc) == 0 {
				b.WriteString("\\&\n")
			} else {
				b.WriteString(roff(strings.Join(it.desc, " ")) + "\n")
			}
		}
	}
	flush()
	b.WriteString(".SH FILES\n.TP\n\\fI/etc/medic/medic.toml\\fR\nthe configuration (root:medic 0640)\n")
	b.WriteString(".TP\n\\fI/usr/share/doc/medic/examples/config.example.toml\\fR\nevery option with its default\n")
	b.WriteString(".SH SEE ALSO\n\\fBmedic\\fR(8), \\fBmedic\\-check\\-config\\fR(8), \\fBsystemd.exec\\fR(5)\n")
	return b.Bytes()
}
