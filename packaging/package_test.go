// Package packaging holds medic's unit, nfpm configuration and maintainer
// scripts; its tests check them with the real tools: systemd-analyze, nfpm
// (through scripts/package) and dpkg.
package packaging

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// maxExposure is the highest `systemd-analyze security` score the unit may
// have.
const maxExposure = 2.0

// unavailable skips the test, or fails it when MEDIC_REQUIRE_SYSTEMD=1 (CI).
func unavailable(t *testing.T, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("MEDIC_REQUIRE_SYSTEMD") == "1" {
		t.Fatalf("%s (MEDIC_REQUIRE_SYSTEMD=1)", msg)
	}
	t.Skip(msg)
}

func systemdAnalyze(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("systemd-analyze")
	if err != nil {
		unavailable(t, "systemd-analyze not installed (apt-get install systemd)")
	}
	return p
}

// buildMedic builds cmd/medic into dir and returns its path.
func buildMedic(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "medic")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/medic").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// TestServiceSecurity wants `systemd-analyze security --offline=true` to rate
// medic.service at maxExposure or better.
func TestServiceSecurity(t *testing.T) {
	t.Parallel() // reads medic.service here, writes nothing
	sa := systemdAnalyze(t)
	out, err := exec.Command(sa, "security", "--offline=true", "medic.service").CombinedOutput()
	if err != nil {
		t.Fatalf("systemd-analyze security: %v\n%s", err, out)
	}
	m := regexp.MustCompile(`Overall exposure level for medic\.service: ([0-9.]+)`).FindSubmatch(out)
	if m == nil {
		t.Fatalf("no overall exposure level in:\n%s", out)
	}
	score, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	if score > maxExposure {
		t.Errorf("exposure %.1f, want at most %.1f:\n%s", score, maxExposure, out)
	}
	t.Logf("exposure level %.1f", score)
}

// TestServiceVerify wants `systemd-analyze verify` to print nothing about
// medic.service. verify insists that ExecStart's binary exists and that the
// Documentation= man pages resolve, so it runs on a copy pointing at a
// freshly built medic, with MANPATH at the pages `medic gendocs` writes.
func TestServiceVerify(t *testing.T) {
	t.Parallel() // reads the files here, writes only its own TempDir
	sa := systemdAnalyze(t)
	dir := t.TempDir()
	bin := buildMedic(t, dir)
	if out, err := exec.Command(bin, "gendocs", "--dir", dir, "--example", "../config.example.toml").CombinedOutput(); err != nil {
		t.Fatalf("gendocs: %v\n%s", err, out)
	}
	unit, err := os.ReadFile("medic.service")
	if err != nil {
		t.Fatal(err)
	}
	if n := bytes.Count(unit, []byte("/usr/bin/medic ")); n != 2 {
		t.Fatalf("medic.service names /usr/bin/medic %d times, want 2 (ExecStart, ExecReload)", n)
	}
	unitDir := filepath.Join(dir, "unit")
	if err := os.Mkdir(unitDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(unitDir, "medic.service")
	if err := os.WriteFile(copyPath, bytes.ReplaceAll(unit, []byte("/usr/bin/medic "), []byte(bin+" ")), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(sa, "verify", copyPath)
	cmd.Env = append(os.Environ(), "MANPATH="+filepath.Join(dir, "man"), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil || len(out) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestShippedConfig wants the /etc/medic/medic.toml the package installs to
// pass check-config and to watch nothing: a fresh install acts on no unit.
func TestShippedConfig(t *testing.T) {
	t.Parallel() // reads the files here, writes only its own TempDir
	bin := buildMedic(t, t.TempDir())
	out, err := exec.Command(bin, "check-config", "-c", "medic.toml").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "configuration valid, but there is nothing to check") {
		t.Fatalf("check-config medic.toml: %v\n%s", err, out)
	}
	b, _ := os.ReadFile("medic.toml")
	if regexp.MustCompile(`(?m)^\s*\[\[check\]\]`).Match(b) {
		t.Errorf("the shipped configuration has an active check")
	}
}

// buildPackages runs scripts/package with VERSION=version into a new
// directory and returns the .deb and .rpm it made. GOFLAGS has
// -buildvcs=false, as in some CI environments, which the script must
// override (see TestPackage's "version").
func buildPackages(t *testing.T, version string) (deb, rpm string) {
	t.Helper()
	dist := t.TempDir()
	cmd := exec.Command("../scripts/package")
	goflags := strings.TrimSpace(os.Getenv("GOFLAGS") + " -buildvcs=false")
	cmd.Env = append(os.Environ(), "VERSION="+version, "DIST="+dist, "SOURCE_DATE_EPOCH=1795248000", "GOFLAGS="+goflags)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("scripts/package: %v\n%s", err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	rpms, _ := filepath.Glob(filepath.Join(dist, "*.rpm"))
	if len(debs) != 1 || len(rpms) != 1 {
		t.Fatalf("scripts/package made %q and %q, want one .deb and one .rpm", debs, rpms)
	}
	return debs[0], rpms[0]
}

// installed is one file the package installs, as stat must see it.
type installed struct {
	path        string
	mode        os.FileMode
	owner, grp  string
	contentHint string
}

var packageFiles = []installed{
	{"/usr/bin/medic", 0o755, "root", "root", ""},
	{"/lib/systemd/system/medic.service", 0o644, "root", "root", "User=medic"},
	{"/usr/lib/sysusers.d/medic.conf", 0o644, "root", "root", "m medic systemd-journal"},
	{"/usr/lib/systemd/catalog/medic.catalog", 0o644, "root", "root", "Defined-By: medic"},
	{"/etc/medic/medic.toml", 0o640, "root", "medic", "[agent]"},
	{"/usr/share/man/man8/medic.8", 0o644, "root", "root", `.SH "EXIT STATUS"`},
	{"/usr/share/man/man8/medic-run.8", 0o644, "root", "root", `.TH "MEDIC-RUN"`},
	{"/usr/share/man/man8/medic-status.8", 0o644, "root", "root", `.TH "MEDIC-STATUS"`},
	{"/usr/share/man/man8/medic-polkit-rule.8", 0o644, "root", "root", `.TH "MEDIC-POLKIT-RULE"`},
	{"/usr/share/man/man5/medic.toml.5", 0o644, "root", "root", ".TH"},
	{"/usr/share/bash-completion/completions/medic", 0o644, "root", "root", "medic"},
	{"/usr/share/zsh/vendor-completions/_medic", 0o644, "root", "root", "#compdef medic"},
	{"/usr/share/fish/vendor_completions.d/medic.fish", 0o644, "root", "root", "medic"},
	{"/usr/share/doc/medic/examples/50-medic.rules", 0o644, "root", "root", `"my-app.service": ["reset-failed", "restart"]`},
	{"/usr/share/doc/medic/examples/config.example.toml", 0o644, "root", "root", "[[check]]"},
	{"/usr/share/doc/medic/examples/prometheus/medic-alerts.yml", 0o644, "root", "root", "alert: MedicDown"},
}

const enabledLink = "/etc/systemd/system/multi-user.target.wants/medic.service"

// TestPackage builds the .deb and .rpm with scripts/package, checks the
// .rpm's file list, then installs the .deb on this machine, upgrades it,
// removes it and purges it, checking files, owners, modes, the user, the
// configuration and the unit at each step.
func TestPackage(t *testing.T) {
	// In parallel with the other tests, which only read the files here and
	// write their own TempDir; it is the only one that installs anything.
	t.Parallel()
	if testing.Short() {
		t.Skip("builds packages; not with -short")
	}
	deb, rpm := buildPackages(t, "0.0.0~test1")

	// The packaged binary, built from a git checkout, names its revision
	// in `medic version` although GOFLAGS said -buildvcs=false.
	t.Run("version", func(t *testing.T) {
		if err := exec.Command("git", "rev-parse", "--git-dir").Run(); err != nil {
			unavailable(t, "not a git checkout (%v): no revision to check", err)
		}
		bin := filepath.Join(filepath.Dir(deb), "build", "medic")
		info, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m: %v\n%s", err, info)
		}
		m := regexp.MustCompile(`(?m)^\s*build\s+vcs\.revision=([0-9a-f]{40})$`).FindSubmatch(info)
		if m == nil {
			t.Fatalf("the packaged binary has no vcs.revision:\n%s", info)
		}
		out, err := exec.Command(bin, "version").CombinedOutput()
		if err != nil {
			t.Fatalf("medic version: %v\n%s", err, out)
		}
		want := "\nrevision:  " + string(m[1]) + "\n"
		if !strings.HasPrefix(string(out), "medic 0.0.0~test1\n") || !strings.Contains(string(out), want) {
			t.Errorf("medic version of the packaged binary, want version 0.0.0~test1 and %q:\n%s", want, out)
		}
	})

	t.Run("rpm", func(t *testing.T) {
		b, err := os.ReadFile(rpm)
		if err != nil {
			t.Fatal(err)
		}
		if len(b) < 1<<20 || !bytes.HasPrefix(b, []byte{0xed, 0xab, 0xee, 0xdb}) {
			t.Fatalf("%s: %d bytes, not an RPM", rpm, len(b))
		}
		rpmTool, err := exec.LookPath("rpm")
		if err != nil {
			t.Log("rpm not installed: the .rpm's file list is not checked")
			return
		}
		out, err := exec.Command(rpmTool, "-qp", "--qf", `[%{FILEMODES:perms} %{FILEUSERNAME} %{FILEGROUPNAME} %{FILENAMES}\n]`, rpm).CombinedOutput()
		if err != nil {
			t.Fatalf("rpm -qp: %v\n%s", err, out)
		}
		for _, f := range packageFiles {
			want := fmt.Sprintf("%s %s %s %s\n", f.mode, f.owner, f.grp, f.path)
			if !strings.Contains(string(out), want) {
				t.Errorf("the .rpm lacks %q:\n%s", want, out)
			}
		}
		out, _ = exec.Command(rpmTool, "-qp", "--configfiles", rpm).CombinedOutput()
		if strings.TrimSpace(string(out)) != "/etc/medic/medic.toml" {
			t.Errorf("rpm config files: %q, want /etc/medic/medic.toml", out)
		}
	})

	// The .deb's file list, read without installing it (no root needed).
	t.Run("deb contents", func(t *testing.T) {
		dpkgDeb, err := exec.LookPath("dpkg-deb")
		if err != nil {
			unavailable(t, "dpkg-deb not installed: not a Debian machine")
		}
		out, err := exec.Command(dpkgDeb, "-c", deb).CombinedOutput()
		if err != nil {
			t.Fatalf("dpkg-deb -c: %v\n%s", err, out)
		}
		// -rw-r--r-- root/root  5300 2026-11-30 07:19 ./usr/share/...
		listed := map[string]string{}
		for line := range strings.Lines(string(out)) {
			f := strings.Fields(line)
			if len(f) == 6 {
				listed[strings.TrimPrefix(f[5], ".")] = f[0] + " " + f[1]
			}
		}
		for _, f := range packageFiles {
			want := fmt.Sprintf("%s %s/%s", f.mode, f.owner, f.grp)
			if got, ok := listed[f.path]; !ok || got != want {
				t.Errorf("the .deb lists %s as %q, want %q:\n%s", f.path, got, want, out)
			}
		}
	})

	t.Run("deb", func(t *testing.T) {
		testDeb(t, deb)
	})
}

func testDeb(t *testing.T, deb string) {
	if os.Geteuid() != 0 {
		unavailable(t, "installing the .deb needs root")
	}
	if _, err := exec.LookPath("dpkg"); err != nil {
		unavailable(t, "dpkg not installed: not a Debian machine")
	}
	if exec.Command("dpkg-query", "-W", "medic").Run() == nil {
		unavailable(t, "a medic package is installed on this machine; not touching it")
	}
	if _, err := os.Stat("/usr/bin/medic"); err == nil {
		unavailable(t, "/usr/bin/medic exists; not overwriting it")
	}
	_, userErr := user.Lookup("medic")
	userExisted := userErr == nil

	run := func(name string, args ...string) string {
		t.Helper()
		out, err := exec.Command(name, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	t.Cleanup(func() {
		if exec.Command("dpkg-query", "-W", "medic").Run() == nil {
			_ = exec.Command("dpkg", "--purge", "medic").Run()
		}
		// Debian keeps system users on purge; the test leaves the machine
		// as it found it.
		if !userExisted {
			_ = exec.Command("userdel", "medic").Run()
			_ = exec.Command("groupdel", "medic").Run()
		}
	})

	run("dpkg", "-i", deb)

	for _, f := range packageFiles {
		checkFile(t, f)
	}
	checkDir(t, "/etc/medic", 0o755, "root", "root")

	u, err := user.Lookup("medic")
	if err != nil {
		t.Fatalf("user medic: %v", err)
	}
	if u.HomeDir != "/var/lib/medic" {
		t.Errorf("medic's home %q, want /var/lib/medic", u.HomeDir)
	}
	if _, err := user.LookupGroup("systemd-journal"); err == nil {
		if groups := run("id", "-nG", "medic"); !strings.Contains(" "+groups, " systemd-journal") {
			t.Errorf("medic is not in group systemd-journal: %s", groups)
		}
	}
	if target, err := os.Readlink(enabledLink); err != nil || target != "/lib/systemd/system/medic.service" {
		t.Errorf("medic.service not enabled on first install: %q, %v", target, err)
	}

	if out := run("/usr/bin/medic", "version"); !strings.HasPrefix(out, "medic 0.0.0~test1\n") {
		t.Errorf("medic version = %q", out)
	}
	if out := run("/usr/bin/medic", "check-config", "-c", "/etc/medic/medic.toml"); !strings.Contains(out, "configuration valid, but there is nothing to check") {
		t.Errorf("check-config as root: %s", out)
	}
	if out := run("runuser", "-u", "medic", "--", "/usr/bin/medic", "check-config", "-c", "/etc/medic/medic.toml"); !strings.Contains(out, "configuration valid, but there is nothing to check") {
		t.Errorf("check-config as medic: %s", out)
	}
	if out, err := exec.Command("runuser", "-u", "nobody", "--", "/usr/bin/medic", "check-config", "-c", "/etc/medic/medic.toml").CombinedOutput(); err == nil {
		t.Errorf("user nobody read /etc/medic/medic.toml:\n%s", out)
	}

	if sa, err := exec.LookPath("systemd-analyze"); err == nil {
		out, err := exec.Command(sa, "verify", "/lib/systemd/system/medic.service").CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("systemd-analyze verify of the installed unit: %v\n%s", err, out)
		}
	}
	if man, err := exec.LookPath("man"); err == nil {
		for _, page := range []string{"medic", "medic-run", "medic-status", "medic-polkit-rule", "medic.toml"} {
			cmd := exec.Command(man, page)
			cmd.Env = append(os.Environ(), "MANPAGER=cat", "MANWIDTH=80", "LC_ALL=C.UTF-8")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil || stderr.Len() > 0 || !strings.Contains(string(out), "NAME") {
				t.Errorf("man %s: %v\n%s%s", page, err, stderr.Bytes(), out)
			}
		}
	} else {
		t.Log("man not installed: the pages are not rendered")
	}

	// Upgrade: the changed configuration stays, a service the admin
	// disabled stays disabled, the scripts do not fail.
	upgrade, _ := buildPackages(t, "0.0.0~test2")
	f, err := os.OpenFile("/etc/medic/medic.toml", os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = f.WriteString("# changed by the admin\n")
	_ = f.Close()
	run("systemctl", "disable", "medic.service")
	run("dpkg", "-i", upgrade)
	if out := run("/usr/bin/medic", "version"); !strings.HasPrefix(out, "medic 0.0.0~test2\n") {
		t.Errorf("after the upgrade, medic version = %q", out)
	}
	if b, _ := os.ReadFile("/etc/medic/medic.toml"); !bytes.HasSuffix(b, []byte("# changed by the admin\n")) {
		t.Errorf("the upgrade replaced the changed /etc/medic/medic.toml")
	}
	if _, err := os.Lstat(enabledLink); err == nil {
		t.Errorf("the upgrade enabled medic.service again after the admin disabled it")
	}
	checkFile(t, installed{path: "/etc/medic/medic.toml", mode: 0o640, owner: "root", grp: "medic"})
	run("systemctl", "enable", "medic.service")

	// Remove: the program and unit go, the configuration stays.
	run("dpkg", "-r", "medic")
	for _, f := range packageFiles {
		_, err := os.Lstat(f.path)
		if f.path == "/etc/medic/medic.toml" {
			if err != nil {
				t.Errorf("dpkg -r removed the configuration: %v", err)
			}
		} else if err == nil {
			t.Errorf("%s is left after dpkg -r", f.path)
		}
	}
	if _, err := os.Lstat(enabledLink); err == nil {
		t.Errorf("medic.service still enabled after dpkg -r")
	}

	// Purge: nothing is left but the user.
	if err := os.MkdirAll("/var/lib/medic/outbox", 0o700); err != nil {
		t.Fatal(err)
	}
	run("dpkg", "--purge", "medic")
	for _, p := range []string{"/etc/medic", "/var/lib/medic", enabledLink} {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("%s is left after dpkg --purge", p)
		}
	}
	if exec.Command("dpkg-query", "-W", "medic").Run() == nil {
		t.Errorf("dpkg still knows medic after --purge")
	}
}

func checkFile(t *testing.T, f installed) {
	t.Helper()
	st := statOwner(t, f.path, f.mode, f.owner, f.grp)
	if st == nil || st.IsDir() {
		return
	}
	if f.contentHint != "" {
		b, err := os.ReadFile(f.path)
		if err != nil || !bytes.Contains(b, []byte(f.contentHint)) {
			t.Errorf("%s does not contain %q (%v)", f.path, f.contentHint, err)
		}
	}
}

func checkDir(t *testing.T, path string, mode os.FileMode, owner, grp string) {
	t.Helper()
	if st := statOwner(t, path, mode, owner, grp); st != nil && !st.IsDir() {
		t.Errorf("%s is not a directory", path)
	}
}

func statOwner(t *testing.T, path string, mode os.FileMode, owner, grp string) os.FileInfo {
	t.Helper()
	st, err := os.Lstat(path)
	if err != nil {
		t.Errorf("%v", err)
		return nil
	}
	if st.Mode().Perm() != mode {
		t.Errorf("%s: mode %04o, want %04o", path, st.Mode().Perm(), mode)
	}
	sys := st.Sys().(*syscall.Stat_t)
	u, err := user.LookupId(strconv.Itoa(int(sys.Uid)))
	if err != nil || u.Username != owner {
		t.Errorf("%s: owner uid %d, want %s", path, sys.Uid, owner)
	}
	g, err := user.LookupGroupId(strconv.Itoa(int(sys.Gid)))
	if err != nil || g.Name != grp {
		t.Errorf("%s: group gid %d, want %s", path, sys.Gid, grp)
	}
	return st
}
