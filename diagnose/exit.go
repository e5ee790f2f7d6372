package diagnose

import (
	"fmt"
	"strconv"
)

// MainExit renders how a unit's main process ended, from ExecMainCode (a
// CLD_* code) and ExecMainStatus: "exited, status 1", "killed by signal 9
// (KILL)", "dumped core, signal 11 (SEGV)"; "" when code is 0 (no process
// ended yet).
func MainExit(code, status int32) string {
	switch code {
	case 0:
		return ""
	case 1: // CLD_EXITED
		return fmt.Sprintf("exited, status %d", status)
	case 2: // CLD_KILLED
		return fmt.Sprintf("killed by signal %s", signal(status))
	case 3: // CLD_DUMPED
		return fmt.Sprintf("dumped core, signal %s", signal(status))
	case 4: // CLD_TRAPPED
		return fmt.Sprintf("trapped, signal %s", signal(status))
	case 5: // CLD_STOPPED
		return fmt.Sprintf("stopped, signal %s", signal(status))
	case 6: // CLD_CONTINUED
		return "continued"
	}
	return fmt.Sprintf("code %d, status %d", code, status)
}

// linuxSignals names the Linux signals by number (signal(7)); the unit state
// comes from systemd on Linux whatever the platform medic was built for.
var linuxSignals = [...]string{
	1: "HUP", 2: "INT", 3: "QUIT", 4: "ILL", 5: "TRAP", 6: "ABRT", 7: "BUS", 8: "FPE",
	9: "KILL", 10: "USR1", 11: "SEGV", 12: "USR2", 13: "PIPE", 14: "ALRM", 15: "TERM",
	16: "STKFLT", 17: "CHLD", 18: "CONT", 19: "STOP", 20: "TSTP", 21: "TTIN", 22: "TTOU",
	23: "URG", 24: "XCPU", 25: "XFSZ", 26: "VTALRM", 27: "PROF", 28: "WINCH", 29: "IO",
	30: "PWR", 31: "SYS",
}

func signal(n int32) string {
	if n > 0 && int(n) < len(linuxSignals) {
		return fmt.Sprintf("%d (%s)", n, linuxSignals[n])
	}
	if n >= 34 && n <= 64 {
		return fmt.Sprintf("%d (RTMIN+%d)", n, n-34)
	}
	return strconv.Itoa(int(n))
}

// Mark is the checklist mark of s: ✓ pass, ✗ fail, ? unknown, – n/a.
func (s Status) Mark() string {
	switch s {
	case Pass:
		return "✓"
	case Fail:
		return "✗"
	case Unchecked:
		return "?"
	}
	return "–"
}
