package main

import (
	"fmt"
	"io"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"

	"github.com/spf13/cobra"
)

// version is medic's version as it appears everywhere (medic version, the
// status report, alerts, User-Agent). scripts/package sets it with
// -ldflags "-X main.version=1.4.2"; when nothing set it, init takes it
// from the build info (see shortVersion).
var version string

func init() {
	if version == "" {
		version = shortVersion(readBuildInfo())
	}
}

// readBuildInfo is the binary's build info, or an empty one.
func readBuildInfo() *debug.BuildInfo {
	if bi, ok := debug.ReadBuildInfo(); ok {
		return bi
	}
	return &debug.BuildInfo{}
}

// vcsInfo is what the go command recorded of the checkout it built from
// (go build -buildvcs, on by default in a git checkout).
type vcsInfo struct {
	revision string // full commit hash; "" when not recorded
	time     string // commit time, RFC 3339
	modified string // "true" when the tree had uncommitted changes
}

func readVCS(bi *debug.BuildInfo) vcsInfo {
	var v vcsInfo
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			v.revision = s.Value
		case "vcs.time":
			v.time = s.Value
		case "vcs.modified":
			v.modified = s.Value
		}
	}
	return v
}

// pseudoVersionRE matches a Go pseudo-version (v0.0.0-20261130044231-2f37e58a6277,
// v1.4.3-0.20261130044231-2f37e58a6277), which the go command gives a
// build from an untagged commit; it says no more than the revision.
var pseudoVersionRE = regexp.MustCompile(`-(0\.)?[0-9]{14}-[0-9a-f]{12}(\+dirty)?$`)

// shortVersion is the version of a binary built without -X main.version:
// the main module's version when it is a release (v1.4.2 → 1.4.2), else
// "devel" plus the first 12 digits of the revision and ".dirty" when the
// tree had uncommitted changes (devel+2f37e58a6277.dirty), else "devel".
func shortVersion(bi *debug.BuildInfo) string {
	mv := bi.Main.Version
	if mv != "" && mv != "(devel)" && !pseudoVersionRE.MatchString(mv) {
		return strings.TrimPrefix(mv, "v")
	}
	v := readVCS(bi)
	if v.revision == "" {
		return "devel"
	}
	rev := v.revision
	if len(rev) > 12 {
		rev = rev[:12]
	}
	s := "devel+" + rev
	if v.modified == "true" {
		s += ".dirty"
	}
	return s
}

// printVersion writes what `medic version` prints: the version, then the
// revision, its time, whether the tree was modified, and the Go toolchain.
func printVersion(w io.Writer, ver string, bi *debug.BuildInfo) {
	fmt.Fprintf(w, "medic %s\n", ver)
	v := readVCS(bi)
	if v.revision == "" {
		fmt.Fprintln(w, "revision:  unknown (built without VCS information)")
	} else {
		fmt.Fprintf(w, "revision:  %s\n", v.revision)
		if v.time != "" {
			fmt.Fprintf(w, "committed: %s\n", v.time)
		}
		switch v.modified {
		case "true":
			fmt.Fprintln(w, "modified:  yes (built with uncommitted changes)")
		case "false":
			fmt.Fprintln(w, "modified:  no")
		}
	}
	if mv := bi.Main.Version; mv != "" && mv != "(devel)" && !pseudoVersionRE.MatchString(mv) && strings.TrimPrefix(mv, "v") != ver {
		fmt.Fprintf(w, "module:    %s %s\n", bi.Main.Path, mv)
	}
	goVersion := bi.GoVersion
	if goVersion == "" {
		goVersion = runtime.Version()
	}
	fmt.Fprintf(w, "go:        %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
}

func newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print medic's version, the revision it was built from and the Go version",
		Long: `version prints medic's version on the first line ("medic 1.4.2"), then
the git revision the binary was built from, the time of that commit,
whether the tree had uncommitted changes, and the Go toolchain.

The version is the one the package was built with (scripts/package passes
it with -ldflags "-X main.version=..."); a binary built with plain
"go build" says "devel+" and the first 12 digits of the revision instead,
with ".dirty" when the tree had uncommitted changes.`,
		Args: cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			printVersion(cmd.OutOrStdout(), version, readBuildInfo())
		},
	}
}
