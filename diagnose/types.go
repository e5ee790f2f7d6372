// Package diagnose says why a backend does not answer: it gathers evidence
// without a shell (unit state over D-Bus, listening sockets from sock_diag
// netlink or /proc/net, the unit's cgroup, socket file permissions, firewall
// rules, name resolution) and names one primary cause with secondary
// findings, each with its evidence as data and a one-line hint of the fix.
//
// The causes and the evidence for each follow the field's checklist for
// nginx's "connect() failed (111: Connection refused) while connecting to
// upstream": is the backend running, is it listening on the right port, does
// a direct test work, are the socket's permissions right, does a firewall
// drop the connection.
package diagnose

import (
	"net/netip"
	"time"
)

// Cause is the reason a probe failed.
type Cause string

// The causes diagnosis tells apart.
const (
	// NotRunning: the unit is inactive or failed.
	NotRunning Cause = "backend not running"
	// Crashed: the unit's main process ended badly (Result exit-code,
	// signal, core-dump, watchdog or timeout).
	Crashed Cause = "backend crashed"
	// OOMKilled: the kernel's OOM killer ended the unit (Result oom-kill or
	// oom_kill in the cgroup's memory.events).
	OOMKilled Cause = "killed for memory"
	// WrongPort: the unit is active but listens elsewhere than the probe dials.
	WrongPort Cause = "wrong port"
	// WrongHost: the name does not resolve, the address is not on this host
	// and unreachable, or the backend is bound to another address (the
	// localhost mix-up: ::1 versus 127.0.0.1).
	WrongHost Cause = "wrong host"
	// Firewall: the connection timed out or was unreachable while the unit
	// is active and listening.
	Firewall Cause = "firewall blocking"
	// SocketPermissions: connecting to the Unix socket is denied, or the
	// socket file is missing or stale.
	SocketPermissions Cause = "socket permissions"
	// PortInUse: the unit failed or keeps restarting while a process
	// outside it holds the address it serves (the probed port, or the
	// socket file): that process answers the probes, and the unit cannot
	// bind ("address already in use", EADDRINUSE in bind(2)).
	PortInUse Cause = "port in use by another process"
	// NotAllowed: the unit's manager refused medic's restart for lack of
	// authorization (polkit): the backend stays down until medic is
	// allowed to restart it. It comes first; the cause of the failure
	// itself follows as a secondary finding.
	NotAllowed Cause = "not allowed to restart"
	// Unknown: no evidence points at one of the causes above.
	Unknown Cause = "unknown"
)

// Finding is one conclusion with its evidence.
type Finding struct {
	Cause Cause `json:"cause"`
	// Summary says what was found in one sentence, e.g. "my-app.service is
	// listening on 127.0.0.1:3000, the check probes 127.0.0.1:8080".
	Summary string `json:"summary"`
	// Hint is the fix in one line, e.g. "the upstream port should be 3000".
	Hint string `json:"hint,omitempty"`
	// Evidence holds the facts as data: keys like "active_state",
	// "listening", "socket_mode"; values are strings, numbers, booleans or
	// lists of strings.
	Evidence map[string]any `json:"evidence,omitempty"`
}

// Status is the outcome of one checklist item.
type Status string

// Checklist outcomes.
const (
	Pass          Status = "pass"
	Fail          Status = "fail"
	Unchecked     Status = "unknown" // the evidence could not be gathered
	NotApplicable Status = "n/a"     // does not apply to this probe
)

// Item is one line of the checklist a sysadmin would go through by hand.
type Item struct {
	// Name is one of "backend running", "port listening", "direct test",
	// "socket", "firewall".
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Evidence says what was seen, e.g. "active/running, main pid 4242".
	Evidence string `json:"evidence"`
}

// Checklist item names, in the order they are shown.
const (
	ItemRunning   = "backend running"
	ItemListening = "port listening"
	ItemDirect    = "direct test"
	ItemSocket    = "socket"
	ItemFirewall  = "firewall"
)

// Diagnosis is the answer to "why does the upstream refuse?".
type Diagnosis struct {
	// At is when the evidence was gathered.
	At time.Time `json:"at"`
	// Target is what the probe dialled; Problem how it failed.
	Target  string `json:"target"`
	Problem string `json:"problem"`
	// Primary is the most likely cause; Secondary other findings.
	Primary   Finding   `json:"primary"`
	Secondary []Finding `json:"secondary,omitempty"`
	// Checklist holds backend running, port listening, direct test, socket
	// and firewall, in that order.
	Checklist []Item `json:"checklist"`
	// Unavailable says which evidence could not be gathered and why, e.g.
	// "process sockets: /proc/4242/fd: permission denied (run medic as the
	// unit's user or grant CAP_DAC_READ_SEARCH)".
	Unavailable []string `json:"unavailable,omitempty"`
}

// Socket is one listening socket seen on this host.
type Socket struct {
	// Proto is "tcp", "tcp6" or "unix".
	Proto string `json:"proto"`
	// Addr is the local address of a TCP socket (zero for unix).
	Addr netip.AddrPort `json:"addr,omitzero"`
	// Path is the file of a unix socket; "@name" for an abstract one.
	Path string `json:"path,omitempty"`
	// UID owns the socket: the fs uid of its creator, from sock_diag or
	// /proc/net/tcp (unix sockets: from sock_diag on Linux 5.3+ only, else 0).
	UID uint32 `json:"uid"`
	// Inode identifies the socket; it matches /proc/PID/fd links "socket:[N]".
	Inode uint64 `json:"inode"`
	// FileInode is the inode of a unix socket's file, from sock_diag's
	// UNIX_DIAG_VFS; 0 for an abstract socket, a TCP socket, or when read
	// from /proc/net/unix. The file at Path is the listener's only when its
	// inode is FileInode.
	FileInode uint64 `json:"file_inode,omitempty"`
	// CgroupID is the cgroup v2 id of the socket's creator, from sock_diag
	// on kernels that report it (5.2+ with INET_DIAG_CGROUP_ID); 0 if unknown.
	CgroupID uint64 `json:"cgroup_id,omitempty"`
	// PIDs are the processes holding the socket, when they could be mapped
	// from /proc/PID/fd; for a unix socket matched by its peer credentials,
	// the process that called listen(2).
	PIDs []int `json:"pids,omitempty"`
}

// String renders the socket as "127.0.0.1:3000", "[::1]:3000" or
// "unix:/run/app.sock".
func (s Socket) String() string {
	if s.Proto == "unix" {
		return "unix:" + s.Path
	}
	return s.Addr.String()
}
