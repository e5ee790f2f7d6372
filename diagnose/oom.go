package diagnose

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
)

// oomCgroupRoot is where the cgroup hierarchies are mounted.
const oomCgroupRoot = "/sys/fs/cgroup"

// OOMKills reads how many times the kernel's OOM killer killed a process
// in the cgroup cgroup, a unit's ControlGroup property such as
// "/system.slice/my-app.service".
//
// It reads, in this order, the first file that exists:
//   - cgroup v2, hybrid hierarchy: /sys/fs/cgroup/unified<cgroup>/memory.events, key oom_kill;
//   - cgroup v2, unified hierarchy: /sys/fs/cgroup<cgroup>/memory.events, key oom_kill;
//   - cgroup v1: /sys/fs/cgroup/memory<cgroup>/memory.oom_control, key oom_kill (Linux 4.13+).
//
// memory.events counts kills in the cgroup and its descendants since the
// cgroup was created; a restarted unit gets a fresh cgroup and a fresh
// count. source is the file read.
//
// Errors: when none of the files exists (the unit is stopped and its
// cgroup is gone, or its cgroup has no memory controller) the error wraps
// fs.ErrNotExist; a file without an oom_kill line (kernels before 4.13)
// or an invalid cgroup path gives another error.
func OOMKills(cgroup string) (count uint64, source string, err error) {
	return oomKills(oomCgroupRoot, cgroup)
}

func oomKills(root, cgroup string) (uint64, string, error) {
	if !strings.HasPrefix(cgroup, "/") || path.Clean(cgroup) != cgroup && cgroup != "/" || strings.Contains(cgroup, "/..") {
		return 0, "", fmt.Errorf("read oom kills: invalid cgroup path %q", cgroup)
	}
	if cgroup == "/" {
		cgroup = ""
	}
	candidates := []string{
		filepath.Join(root, "unified", cgroup, "memory.events"),
		filepath.Join(root, cgroup, "memory.events"),
		filepath.Join(root, "memory", cgroup, "memory.oom_control"),
	}
	for _, file := range candidates {
		b, err := os.ReadFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, file, fmt.Errorf("read oom kills: %w", err)
		}
		n, ok := parseMemoryEvents(string(b))["oom_kill"]
		if !ok {
			return 0, file, fmt.Errorf("read oom kills: no oom_kill in %s (kernel older than 4.13?)", file)
		}
		return n, file, nil
	}
	return 0, "", fmt.Errorf("read oom kills of cgroup %s: no memory.events or memory.oom_control (cgroup gone or no memory controller): %w", cgroup, fs.ErrNotExist)
}

// parseMemoryEvents parses a flat-keyed cgroup file of "key value" lines,
// such as cgroup v2 memory.events ("low 0", "high 0", "max 12", "oom 3",
// "oom_kill 3", "oom_group_kill 0") or cgroup v1 memory.oom_control
// ("oom_kill_disable 0", "under_oom 0", "oom_kill 0"). Lines that are not
// a key and an unsigned number are skipped.
func parseMemoryEvents(text string) map[string]uint64 {
	m := map[string]uint64{}
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			continue
		}
		m[f[0]] = n
	}
	return m
}
