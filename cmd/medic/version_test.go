package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

func TestVersionCommand(t *testing.T) {
	out, _, err := execute("version")
	if err != nil || !strings.HasPrefix(out, "medic "+version+"\n") || !strings.Contains(out, "\ngo:        go") {
		t.Errorf("version = %q, %v", out, err)
	}
	if version == "" || version == "dev" {
		t.Errorf("version %q, want one from the build info", version)
	}
}

func TestVersionFromBuildInfo(t *testing.T) {
	vcs := func(mod string, settings ...string) *debug.BuildInfo {
		bi := &debug.BuildInfo{GoVersion: "go1.26.8"}
		bi.Main.Path, bi.Main.Version = "github.com/medic-watchdog/medic", mod
		for i := 0; i+1 < len(settings); i += 2 {
			bi.Settings = append(bi.Settings, debug.BuildSetting{Key: settings[i], Value: settings[i+1]})
		}
		return bi
	}
	const rev = "2f37e58a6277bfd43b1bbabc729230ae632ff580"
	for _, tc := range []struct {
		bi   *debug.BuildInfo
		want string
	}{
		{vcs("(devel)"), "devel"},
		{vcs(""), "devel"},
		{vcs("(devel)", "vcs.revision", rev, "vcs.modified", "false"), "devel+2f37e58a6277"},
		{vcs("v0.0.0-20261130044231-2f37e58a6277", "vcs.revision", rev, "vcs.modified", "false"), "devel+2f37e58a6277"},
		{vcs("v0.0.0-20261130044231-2f37e58a6277+dirty", "vcs.revision", rev, "vcs.modified", "true"), "devel+2f37e58a6277.dirty"},
		{vcs("v1.4.3-0.20261130044231-2f37e58a6277", "vcs.revision", rev), "devel+2f37e58a6277"},
		{vcs("v1.4.2", "vcs.revision", rev, "vcs.modified", "false"), "1.4.2"},
	} {
		if got := shortVersion(tc.bi); got != tc.want {
			t.Errorf("shortVersion(%q, %v) = %q, want %q", tc.bi.Main.Version, tc.bi.Settings, got, tc.want)
		}
	}

	var b bytes.Buffer
	printVersion(&b, "1.4.2", vcs("v0.0.0-20261130044231-2f37e58a6277+dirty", "vcs.revision", rev, "vcs.time", "2026-11-30T04:42:31Z", "vcs.modified", "true"))
	for _, want := range []string{"medic 1.4.2\n", "revision:  " + rev + "\n", "committed: 2026-11-30T04:42:31Z\n", "modified:  yes", "go:        go1.26.8 "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("version output lacks %q:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "module:") {
		t.Errorf("a pseudo-version is repeated:\n%s", b.String())
	}
	b.Reset()
	printVersion(&b, "devel", vcs("(devel)"))
	if !strings.Contains(b.String(), "revision:  unknown") {
		t.Errorf("no revision, output:\n%s", b.String())
	}
}

// TestVersionBuilt builds medic as scripts/package does (-X main.version)
// and from the git checkout: the first line is the version given, and the
// revision is the one go build recorded, 40 hex digits. A build without -X
// says devel+ and the revision's first 12 digits.
func TestVersionBuilt(t *testing.T) {
	if testing.Short() {
		t.Skip("builds medic twice; not with -short")
	}
	dir := t.TempDir()
	build := func(name string, args ...string) (bin, out string) {
		t.Helper()
		bin = filepath.Join(dir, name)
		// -buildvcs=true overrides a GOFLAGS=-buildvcs=false of the
		// environment; outside a git checkout it fails, so ask first.
		cmd := exec.Command("go", append(append([]string{"build", "-buildvcs=true", "-o", bin}, args...), ".")...)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build: %v\n%s", err, b)
		}
		b, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("medic version: %v\n%s", err, b)
		}
		return bin, string(b)
	}
	if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
		systemdtest.Missing(t, "not a git checkout (%v): no revision to check", err)
	}

	bin, out := build("medic-release", "-ldflags", "-X main.version=9.8.7")
	if !strings.HasPrefix(out, "medic 9.8.7\n") {
		t.Errorf("with -X main.version=9.8.7, medic version says:\n%s", out)
	}
	info, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, info)
	}
	m := regexp.MustCompile(`(?m)^\s*build\s+vcs\.revision=([0-9a-f]+)$`).FindSubmatch(info)
	if m == nil {
		// go build records no VCS information in a git worktree whose
		// .git is a file, or without git on PATH.
		systemdtest.Missing(t, "go build recorded no revision:\n%s", info)
	}
	rev := string(m[1])
	if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(rev) {
		t.Errorf("vcs.revision %q is not 40 hex digits", rev)
	}
	if !strings.Contains(out, "\nrevision:  "+rev+"\n") {
		t.Errorf("medic version does not print the revision %s:\n%s", rev, out)
	}
	if !regexp.MustCompile(`\ncommitted: \d{4}-\d\d-\d\dT`).MatchString(out) || !regexp.MustCompile(`\nmodified:  (yes|no)`).MatchString(out) {
		t.Errorf("medic version lacks the commit time or the modified flag:\n%s", out)
	}

	_, out = build("medic-devel")
	if first, _, _ := strings.Cut(out, "\n"); !regexp.MustCompile(`^medic devel\+` + rev[:12] + `(\.dirty)?$`).MatchString(first) {
		t.Errorf("without -X, the first line is %q, want medic devel+%s", first, rev[:12])
	}
}
