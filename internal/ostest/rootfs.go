package ostest

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// CacheDir holds the root filesystems Rootfs builds (one directory per
// suite and recipe), their build logs and lock files. The booted machines
// never write to it: each boots with --volatile=overlay.
const CacheDir = "/var/tmp/medic-ostest"

// Mirror is the Debian mirror the root filesystems are built from.
const Mirror = "http://deb.debian.org/debian"

// RootfsPackages are the packages each root filesystem has besides Debian's
// minbase variant: systemd as PID 1, the system bus, polkit, and the tools
// the tests use inside (python3 for HTTP requests, ip, ps).
var RootfsPackages = []string{"systemd", "systemd-sysv", "dbus", "polkitd", "python3", "iproute2", "procps"}

// customizeHooks run in mmdebstrap's customize phase with the root
// filesystem as $1: an empty machine-id (systemd makes a fresh one at each
// boot), a persistent journal directory, and no getty on the console
// (--console=pipe has no terminal for it).
var customizeHooks = []string{
	`echo -n > "$1/etc/machine-id"`,
	`mkdir -p "$1/var/log/journal"`,
	`ln -sf /dev/null "$1/etc/systemd/system/console-getty.service"`,
}

// recipeKey names a root filesystem in CacheDir: the suite and a short hash
// of everything that goes into building it, so that a changed recipe builds
// a new one instead of reusing a stale one.
func recipeKey(suite string) string {
	h := sha256.New()
	fmt.Fprintf(h, "variant=minbase\ninclude=%s\n", strings.Join(RootfsPackages, ","))
	for _, hook := range customizeHooks {
		fmt.Fprintf(h, "customize=%s\n", hook)
	}
	return suite + "-" + hex.EncodeToString(h.Sum(nil))[:12]
}

// Rootfs returns the cached root filesystem of the Debian suite
// ("bookworm", "trixie"), building it first when it is not there:
// mmdebstrap --mode=root --variant=minbase with RootfsPackages and the customize
// hooks, into CacheDir/<suite>-<hash>.tmp-<pid>, renamed into place when
// complete. An exclusive flock on CacheDir/<suite>-<hash>.lock keeps two
// processes from building the same one. A build takes one to three minutes
// and needs the network; its output is in CacheDir/<suite>-<hash>.log.
func Rootfs(suite string) (string, error) {
	if err := os.MkdirAll(CacheDir, 0o755); err != nil {
		return "", fmt.Errorf("make cache directory: %w", err)
	}
	key := recipeKey(suite)
	dir := filepath.Join(CacheDir, key)
	// A directory under its final name is complete: builds are renamed
	// into place only when mmdebstrap succeeded.
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}

	lock, err := os.OpenFile(dir+".lock", os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return "", fmt.Errorf("open lock: %w", err)
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil // another process built it while we waited
	}
	if err := removeStale(dir); err != nil {
		return "", err
	}

	tmp := fmt.Sprintf("%s.tmp-%d", dir, os.Getpid())
	logPath := dir + ".log"
	logf, err := os.Create(logPath)
	if err != nil {
		return "", fmt.Errorf("create build log: %w", err)
	}
	defer logf.Close()
	args := []string{"--mode=root", "--variant=minbase", "--include=" + strings.Join(RootfsPackages, ",")}
	for _, hook := range customizeHooks {
		args = append(args, "--customize-hook="+hook)
	}
	args = append(args, suite, tmp, Mirror)
	cmd := exec.Command("mmdebstrap", args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	if err := cmd.Run(); err != nil {
		tail := logTail(logPath, 30)
		if rerr := removeUnmounted(tmp); rerr != nil {
			err = fmt.Errorf("%w (and %w)", err, rerr)
		}
		return "", fmt.Errorf("mmdebstrap %s: %w\n%s (tail):\n%s", strings.Join(args, " "), err, logPath, tail)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", fmt.Errorf("move the root filesystem into place: %w", err)
	}
	return dir, nil
}

// removeStale removes the build directories of dir that a killed build
// left behind. The caller holds dir's lock, so no build of it is running.
func removeStale(dir string) error {
	stale, _ := filepath.Glob(dir + ".tmp-*")
	for _, s := range stale {
		if err := removeUnmounted(s); err != nil {
			return err
		}
	}
	return nil
}

// removeUnmounted removes dir unless something is still mounted below it
// (a build killed in the middle may leave /proc or /dev mounts behind),
// which it reports as an error instead of descending into.
func removeUnmounted(dir string) error {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// ID parent major:minor root mountpoint ...
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && (fields[4] == dir || strings.HasPrefix(fields[4], dir+"/")) {
			return fmt.Errorf("%s is left from a failed build and still has %s mounted; unmount and remove it by hand", dir, fields[4])
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove %s: %w", dir, err)
	}
	return nil
}

// logTail returns the last n lines of the file at path, or "" when it
// cannot be read.
func logTail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
