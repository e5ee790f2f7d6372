package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestGendocs wants a man page for medic and each visible subcommand, none
// for hidden ones, medic.toml(5) naming every option of the example
// configuration, three completion scripts, and pages groff reads without a
// warning.
func TestGendocs(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("SOURCE_DATE_EPOCH", "1795248000")
	if _, stderr, err := execute("gendocs", "--dir", dir, "--example", "../../config.example.toml"); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, stderr)
	}

	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		page := filepath.Join(dir, "man", "man8", strings.ReplaceAll(c.CommandPath(), " ", "-")+".8")
		if _, err := os.Stat(page); err != nil {
			t.Errorf("no man page for %q: %v", c.CommandPath(), err)
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
