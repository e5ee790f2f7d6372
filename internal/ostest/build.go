package ostest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/medic-watchdog/medic/internal/systemdtest"
)

// BackendPath is where StartBackend installs medic-test-backend inside a
// machine.
const BackendPath = "/usr/local/bin/medic-test-backend"

var (
	builds   sync.Mutex
	packages = map[string]*build{} // by version
	backend  build
)

// build is one artifact built at most once per test process.
type build struct {
	once sync.Once
	path string
	err  error
}

// BuildPackage builds medic's .deb with VERSION=version through
// scripts/package, once per version and test process, and returns its
// path: CacheDir/pkg/<pid>/medic_<version>-1_<arch>.deb, where <pid> is
// this process (the directories of processes that ended are removed by
// later builds). It does not depend on package testing, so a test may start it
// in a goroutine to build while something else happens.
func BuildPackage(version string) (string, error) {
	builds.Lock()
	b := packages[version]
	if b == nil {
		b = &build{}
		packages[version] = b
	}
	builds.Unlock()
	b.once.Do(func() { b.path, b.err = buildPackage(version) })
	return b.path, b.err
}

// Package is BuildPackage for a test: it fails the test when the build
// fails.
func Package(t testing.TB, version string) string {
	t.Helper()
	p, err := BuildPackage(version)
	if err != nil {
		t.Fatalf("build the medic %s package: %v", version, err)
	}
	return p
}

func buildPackage(version string) (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	dir := filepath.Join(CacheDir, "pkg", strconv.Itoa(os.Getpid()))
	sweepPackages(filepath.Dir(dir))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("make package directory: %w", err)
	}
	dist, err := os.MkdirTemp(dir, "build-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dist)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(root, "scripts", "package"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "VERSION="+version, "DIST="+dist)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("VERSION=%s scripts/package: %w\n%s", version, err, out)
	}
	debs, _ := filepath.Glob(filepath.Join(dist, "*.deb"))
	if len(debs) != 1 {
		return "", fmt.Errorf("VERSION=%s scripts/package made %q, want one .deb", version, debs)
	}
	dst := filepath.Join(dir, filepath.Base(debs[0]))
	if err := os.Rename(debs[0], dst); err != nil {
		return "", fmt.Errorf("move the package into place: %w", err)
	}
	return dst, nil
}

// sweepPackages removes the package directories (CacheDir/pkg/<pid>) of
// test processes that no longer run.
func sweepPackages(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && pid != os.Getpid() && syscall.Kill(pid, 0) != nil {
			_ = os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// Backend builds medic-test-backend statically (CGO_ENABLED=0, so it runs
// in any of the Suites), once per test process, and returns the binary's
// path on the host. It fails the test when the build fails.
func Backend(t testing.TB) string {
	t.Helper()
	backend.once.Do(func() { backend.path, backend.err = buildBackend() })
	if backend.err != nil {
		t.Fatalf("build medic-test-backend: %v", backend.err)
	}
	return backend.path
}

func buildBackend() (string, error) {
	dir := filepath.Join(CacheDir, "bin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".build-")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp.Name(), systemdtest.BackendPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("CGO_ENABLED=0 go build %s: %w\n%s", systemdtest.BackendPackage, err, out)
	}
	path := filepath.Join(dir, "medic-test-backend")
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// StartBackend installs medic-test-backend (see Backend) as BackendPath in
// the machine, writes the system unit /etc/systemd/system/<unit>
// (systemdtest.BackendUnit: Restart=no, StartLimitIntervalSec=0, listening
// on addr, e.g. "127.0.0.1:8080", plus extra lines), starts it and waits
// until addr accepts connections. It fails the test on error.
func (m *Machine) StartBackend(t testing.TB, unit, addr string, extra ...string) {
	t.Helper()
	bin, err := os.ReadFile(Backend(t))
	if err != nil {
		t.Fatal(err)
	}
	m.WriteFile(t, BackendPath, bin, 0o755)
	m.WriteFile(t, "/etc/systemd/system/"+unit, []byte(systemdtest.BackendUnit(BackendPath, addr, extra...)), 0o644)
	m.Sh(t, "systemctl daemon-reload && systemctl start "+shellQuote(unit))
	host, port, _ := strings.Cut(addr, ":")
	deadline := time.Now().Add(10 * time.Second)
	for !m.Accepts(host, port) {
		if time.Now().After(deadline) {
			t.Fatalf("%s does not accept connections on %s 10s after `systemctl start %s`:\n%s", unit, addr, unit,
				m.Sh(t, "systemctl status --no-pager "+shellQuote(unit)+" || true"))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Accepts reports whether a TCP connection to host:port inside the machine
// succeeds within a second.
func (m *Machine) Accepts(host, port string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := m.Run(ctx, "python3", "-c",
		"import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1).close()", host, port)
	return err == nil
}

// moduleRoot finds the directory of go.mod above the working directory.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}
