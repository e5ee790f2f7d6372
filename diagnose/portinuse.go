package diagnose

import (
	"fmt"
	"regexp"

	"github.com/medic-watchdog/medic/probe"
)

// holder is a process outside the check's unit that holds the address the
// unit serves.
type holder struct {
	sock Socket
	pid  int
	comm string
	unit string // the systemd service it runs in; "" for none or unknown
	err  error  // why pid, comm and unit are unknown
}

// String renders h as "127.0.0.1:8080 held by pid 4242 (python3,
// other.service)".
func (h holder) String() string { return h.sock.String() + " held by " + h.by() }

// by renders who h is: "pid 4242 (python3, other.service)", "pid 4242
// (python3, in no service)", "uid 1000 (other.service)" or "uid 1000
// (process not identified)".
func (h holder) by() string {
	switch {
	case h.err != nil:
		return fmt.Sprintf("uid %d (process not identified)", h.sock.UID)
	case h.pid == 0 && h.unit != "":
		return fmt.Sprintf("uid %d (%s)", h.sock.UID, h.unit)
	case h.unit != "":
		return fmt.Sprintf("pid %d (%s, %s)", h.pid, h.comm, h.unit)
	default:
		return fmt.Sprintf("pid %d (%s, in no service)", h.pid, h.comm)
	}
}

// gatherPortInUse looks, when the unit is down or restarting, for
// processes outside it that hold the address it serves: the probed TCP
// port (on any local address: bind(2) fails with EADDRINUSE when a wildcard
// and a specific address overlap) or the probed socket file. A listener of
// systemd itself is left out when a .socket unit triggers the unit: that
// is socket activation holding the port for it.
func (d *run) gatherPortInUse() {
	u := d.in.Unit
	if u == nil || !u.Down() {
		return
	}
	var socks []Socket
	switch {
	case d.tcp && len(d.probed) > 0 && IsLocal(d.probed[0].Addr(), d.local):
		socks = PortOwners(d.probed[0].Port(), d.listeners)
	case d.in.Spec.Type == probe.TypeUnix:
		for _, s := range d.unixListeners {
			if s.Path == d.in.Spec.Path {
				socks = append(socks, s)
			}
		}
	}
	activated := u.SocketActivated()
	var unitCgroup uint64
	if u.ControlGroup != "" {
		unitCgroup, _ = CgroupID(u.ControlGroup)
	}
	for _, s := range socks {
		if unitCgroup != 0 && s.CgroupID == unitCgroup {
			continue // a process left in the unit's own cgroup
		}
		pid, comm, unit, err := d.listenerOwner(s)
		if err == nil && (unit == u.Name || (activated && comm == "systemd")) {
			continue
		}
		d.holders = append(d.holders, holder{sock: s, pid: pid, comm: comm, unit: unit, err: err})
		if err != nil {
			d.unavailable("owner of %s: %v.", s, err)
		}
	}
}

// addrInUse matches the lines in which programs report EADDRINUSE from
// bind(2): strerror's "Address already in use", Go's "bind: address already
// in use", Node's "EADDRINUSE", Python's "[Errno 98] Address in use".
var addrInUse = regexp.MustCompile(`(?i)address already in use|eaddrinuse|errno 98\]|address in use`)

// addrInUseLine returns the unit's last journal line that reports
// EADDRINUSE, or "".
func addrInUseLine(journal []string) string {
	for i := len(journal) - 1; i >= 0; i-- {
		if addrInUse.MatchString(journal[i]) {
			return journal[i]
		}
	}
	return ""
}

// portInUse is the finding for holders found by gatherPortInUse, or nil.
func (d *run) portInUse() *Finding {
	if len(d.holders) == 0 {
		return nil
	}
	u := d.in.Unit
	h := d.holders[0]
	held := make([]string, len(d.holders))
	for i, x := range d.holders {
		held[i] = x.String()
	}
	ev := map[string]any{
		"unit": u.Name, "active_state": u.ActiveState, "sub_state": u.SubState, "result": u.Result,
		"held_by": held, "address": h.sock.String(),
	}
	if h.err == nil {
		ev["holder_pid"], ev["holder_command"] = h.pid, h.comm
		if h.unit != "" {
			ev["holder_unit"] = h.unit
		}
	}
	summary := fmt.Sprintf("%s is %s/%s (result %s) while a process outside it holds %s: %s", u.Name, u.ActiveState, u.SubState, u.Result, h.sock, h.by())
	if len(d.holders) > 1 {
		summary += fmt.Sprintf(" (and %d more)", len(d.holders)-1)
	}
	if d.in.Result.OK {
		summary += ": that process answers the probes"
	}
	if line := addrInUseLine(d.in.Journal); line != "" {
		ev["journal_line"] = line
		summary += fmt.Sprintf("; the unit's journal says %q", line)
	}
	var stop string
	switch {
	case h.err != nil:
		stop = fmt.Sprintf("find the process holding %s (ss -lptn, as root)", h.sock)
	case h.unit != "":
		stop = fmt.Sprintf("stop %s (systemctl stop %s, pid %d)", h.unit, h.unit, h.pid)
	default:
		stop = fmt.Sprintf("stop pid %d (%s)", h.pid, h.comm)
	}
	return &Finding{Cause: PortInUse, Evidence: ev, Summary: summary,
		Hint: stop + " or move one of the two to another address, then systemctl restart " + u.Name}
}
