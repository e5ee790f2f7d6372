package diagnose

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/probe"
	"golang.org/x/sys/unix"
)

// ProcState is one process's scheduling state, from /proc/PID/stat
// (proc(5), field 3 "state").
type ProcState struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// State is proc(5)'s letter: R running, S sleeping, D uninterruptible
	// disk sleep, Z zombie, T stopped (on a signal), t tracing stop, X
	// dead, I idle.
	State string `json:"state"`
}

// Stuck reports whether the process cannot answer: stopped (T), stopped
// by a tracer (t), in uninterruptible sleep (D) or a zombie (Z).
func (p ProcState) Stuck() bool {
	switch p.State {
	case "T", "t", "D", "Z":
		return true
	}
	return false
}

// Describe says the state in words, e.g. "stopped (SIGSTOP)".
func (p ProcState) Describe() string {
	switch p.State {
	case "T":
		return "stopped (SIGSTOP)"
	case "t":
		return "stopped by a tracer (ptrace)"
	case "D":
		return "in uninterruptible sleep (D, waiting on I/O or the kernel)"
	case "Z":
		return "a zombie (exited, not reaped)"
	case "R":
		return "running"
	case "S":
		return "sleeping"
	}
	return "in state " + p.State
}

// ReadProcState reads /proc/PID/stat (proc(5)). The error wraps
// fs.ErrNotExist when the process is gone.
func ReadProcState(pid int) (ProcState, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return ProcState{}, fmt.Errorf("read process state: %w", err)
	}
	return parseProcStat(string(b))
}

// parseProcStat parses "PID (comm) STATE ...": comm may hold spaces and
// parentheses, so it ends at the last ')'.
func parseProcStat(s string) (ProcState, error) {
	open := strings.IndexByte(s, '(')
	end := strings.LastIndexByte(s, ')')
	if open < 1 || end < open {
		return ProcState{}, fmt.Errorf("parse /proc/PID/stat: no (comm) in %.40q", s)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(s[:open]))
	if err != nil {
		return ProcState{}, fmt.Errorf("parse /proc/PID/stat: pid: %w", err)
	}
	rest := strings.Fields(s[end+1:])
	if len(rest) == 0 || len(rest[0]) != 1 {
		return ProcState{}, fmt.Errorf("parse /proc/PID/stat: no state after comm in %.40q", s)
	}
	return ProcState{PID: pid, Comm: s[open+1 : end], State: rest[0]}, nil
}

// AcceptQueue is a listening socket's accept queue: for a listener,
// sock_diag(7) reports the connections waiting for accept(2) in
// idiag_rqueue (unix: UNIX_DIAG_RQLEN's first field) and the backlog given
// to listen(2) in idiag_wqueue (unix: the second field).
type AcceptQueue struct {
	Len, Backlog uint32
}

// Full reports whether the queue has no room left: the kernel then drops
// new SYNs (TCP) or makes connect(2) wait (unix), until the backend
// accepts.
func (q AcceptQueue) Full() bool { return q.Len > 0 && q.Len >= q.Backlog }

// String renders the queue as "3/128".
func (q AcceptQueue) String() string { return fmt.Sprintf("%d/%d", q.Len, q.Backlog) }

// udiagShowRQLen asks unix_diag for UNIX_DIAG_RQLEN (sock_diag(7)).
const (
	udiagShowRQLen = 0x10
	unixDiagRQLen  = 4
)

// ListenQueue returns the accept queue of the TCP listener that serves
// addr: one bound to addr itself or, failing that, to the wildcard address
// of its family on the same port. It asks NETLINK_SOCK_DIAG (sock_diag(7))
// and needs no privilege. The error wraps fs.ErrNotExist when no such
// listener exists.
func ListenQueue(addr netip.AddrPort) (AcceptQueue, error) {
	fd, err := dialSockDiag()
	if err != nil {
		return AcceptQueue{}, err
	}
	defer func() { _ = unix.Close(fd) }()
	var exact, wild *AcceptQueue
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := make([]byte, inetDiagReqV2Len)
		req[0], req[1] = fam, unix.IPPROTO_TCP
		binary.NativeEndian.PutUint32(req[4:], 1<<tcpListen)
		err := sockDiagDump(fd, req, func(b []byte) error {
			s, err := parseInetDiagMsg(b)
			if err != nil {
				return err
			}
			if s.Addr.Port() != addr.Port() {
				return nil
			}
			q := inetDiagQueue(b)
			switch {
			case s.Addr.Addr() == addr.Addr().Unmap():
				exact = &q
			case s.Addr.Addr().IsUnspecified() && (s.Proto == "tcp6" || addr.Addr().Unmap().Is4()):
				wild = &q
			}
			return nil
		})
		if err != nil {
			return AcceptQueue{}, fmt.Errorf("sock_diag: accept queue of %s: %w", addr, err)
		}
	}
	if exact != nil {
		return *exact, nil
	}
	if wild != nil {
		return *wild, nil
	}
	return AcceptQueue{}, fmt.Errorf("accept queue of %s: no listener: %w", addr, fs.ErrNotExist)
}

// inetDiagQueue reads idiag_rqueue and idiag_wqueue of a struct
// inet_diag_msg that parseInetDiagMsg accepted.
func inetDiagQueue(b []byte) AcceptQueue {
	tail := b[4+inetDiagSockIDLen:]
	return AcceptQueue{Len: binary.NativeEndian.Uint32(tail[4:8]), Backlog: binary.NativeEndian.Uint32(tail[8:12])}
}

// UnixListenQueue returns the accept queue of the unix stream listener
// bound to path (sock_diag(7), UDIAG_SHOW_RQLEN). The error wraps
// fs.ErrNotExist when none is.
func UnixListenQueue(path string) (AcceptQueue, error) {
	fd, err := dialSockDiag()
	if err != nil {
		return AcceptQueue{}, err
	}
	defer func() { _ = unix.Close(fd) }()
	req := make([]byte, unixDiagReqLen)
	req[0] = unix.AF_UNIX
	binary.NativeEndian.PutUint32(req[4:], 1<<tcpListen)
	binary.NativeEndian.PutUint32(req[12:], udiagShowName|udiagShowRQLen)
	var found *AcceptQueue
	err = sockDiagDump(fd, req, func(b []byte) error {
		s, ok, err := parseUnixDiagMsg(b)
		if err != nil || !ok || s.Path != path {
			return err
		}
		for typ, val := range rtattrs(b[unixDiagMsgLen:]) {
			if typ == unixDiagRQLen && len(val) >= 8 {
				found = &AcceptQueue{Len: binary.NativeEndian.Uint32(val[0:4]), Backlog: binary.NativeEndian.Uint32(val[4:8])}
			}
		}
		return nil
	})
	if err != nil {
		return AcceptQueue{}, fmt.Errorf("sock_diag: accept queue of unix:%s: %w", path, err)
	}
	if found == nil {
		return AcceptQueue{}, fmt.Errorf("accept queue of unix:%s: no listener: %w", path, fs.ErrNotExist)
	}
	return *found, nil
}

// Pressure is the share of the last 10 seconds in which some task waited
// for a resource, in percent ("some avg10" of /proc/pressure/cpu, memory
// and io; the kernel's Documentation/accounting/psi.rst).
type Pressure struct {
	CPU, Memory, IO float64
}

// ReadPressure reads /proc/pressure/{cpu,memory,io}. It fails on kernels
// without pressure stall information (before 4.20, built without
// CONFIG_PSI, or booted with psi=0).
func ReadPressure() (Pressure, error) {
	var p Pressure
	for _, r := range []struct {
		name string
		v    *float64
	}{{"cpu", &p.CPU}, {"memory", &p.Memory}, {"io", &p.IO}} {
		b, err := os.ReadFile("/proc/pressure/" + r.name)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, unix.EOPNOTSUPP) {
				return Pressure{}, fmt.Errorf("read host pressure: %w (kernel without PSI, or booted with psi=0)", err)
			}
			return Pressure{}, fmt.Errorf("read host pressure: %w", err)
		}
		v, ok := parsePressureSome(string(b))
		if !ok {
			return Pressure{}, fmt.Errorf("read host pressure: no \"some avg10=\" in /proc/pressure/%s", r.name)
		}
		*r.v = v
	}
	return p, nil
}

// parsePressureSome returns avg10 of the "some" line of a PSI file.
func parsePressureSome(text string) (float64, bool) {
	for line := range strings.Lines(text) {
		f := strings.Fields(line)
		if len(f) < 2 || f[0] != "some" {
			continue
		}
		for _, kv := range f[1:] {
			if v, ok := strings.CutPrefix(kv, "avg10="); ok {
				x, err := strconv.ParseFloat(v, 64)
				return x, err == nil
			}
		}
	}
	return 0, false
}

// highPressure is the some-avg10 share, in percent, from which the host's
// pressure is named as a reason the backend is slow.
const highPressure = 40

// stall is the evidence for a backend that accepts but does not answer.
type stall struct {
	addr      string
	handshake string // "completed", or why it did not
	connected bool
	procs     []ProcState
	mainPID   int
	queue     *AcceptQueue
	pressure  *Pressure
}

// stuck returns the processes that cannot answer, the main one first.
func (s *stall) stuck() []ProcState {
	var out []ProcState
	for _, p := range s.procs {
		if p.Stuck() {
			if p.PID == s.mainPID {
				out = append([]ProcState{p}, out...)
			} else {
				out = append(out, p)
			}
		}
	}
	return out
}

// explained reports whether the evidence explains a timeout without a
// firewall: the connection was accepted, a process is stuck, or the
// accept queue is full.
func (s *stall) explained() bool {
	return s.connected || len(s.stuck()) > 0 || (s.queue != nil && s.queue.Full())
}

// gatherStall collects, after a timeout on a local listener, whether a
// handshake completes, the state of the backend's processes, the
// listener's accept queue and the host's pressure.
func (d *run) gatherStall(ctx context.Context) {
	if d.in.Result.Class != probe.ClassTimeout || len(d.rules) > 0 {
		return
	}
	s := &stall{}
	var owner Socket
	switch {
	case d.tcp && len(d.probed) > 0:
		p := d.probed[0]
		if !IsLocal(p.Addr(), d.local) || !Serves(p, d.listeners) {
			return
		}
		s.addr = p.String()
		s.handshake, s.connected = tryHandshake(ctx, "tcp", p.String())
		if q, err := ListenQueue(p); err == nil {
			s.queue = &q
		} else {
			d.unavailable("accept queue of %s: %v", p, err)
		}
		for _, l := range PortOwners(p.Port(), d.listeners) {
			if l.Addr.Addr() == p.Addr() || l.Addr.Addr().IsUnspecified() {
				owner = l
				break
			}
		}
	case d.in.Spec.Type == probe.TypeUnix && d.sock != nil && d.sock.Exists && d.sock.Listening:
		s.addr = "unix:" + d.in.Spec.Path
		s.handshake, s.connected = tryHandshake(ctx, "unix", d.in.Spec.Path)
		if q, err := UnixListenQueue(d.in.Spec.Path); err == nil {
			s.queue = &q
		} else {
			d.unavailable("accept queue of unix:%s: %v", d.in.Spec.Path, err)
		}
		for _, l := range d.unixListeners {
			if l.Path == d.in.Spec.Path {
				owner = l
			}
		}
	default:
		return
	}

	var pids []int
	if u := d.in.Unit; u != nil && u.ControlGroup != "" && u.Started() {
		s.mainPID = int(u.MainPID)
		var err error
		if pids, err = CgroupPIDs(u.ControlGroup); err != nil {
			d.unavailable("processes of %s: %v", u.Name, err)
		}
	} else if owner.Inode != 0 {
		if pid, _, _, err := d.listenerOwner(owner); err == nil && pid > 0 {
			pids, s.mainPID = []int{pid}, pid
		} else if err != nil {
			d.unavailable("process holding %s: %v", s.addr, err)
		}
	}
	for _, pid := range pids {
		st, err := ReadProcState(pid)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				d.unavailable("state of process %d: %v", pid, err)
			}
			continue
		}
		s.procs = append(s.procs, st)
	}
	if p, err := ReadPressure(); err == nil {
		s.pressure = &p
	} else {
		d.unavailable("%v", err)
	}
	d.stall = s
}

// tryHandshake connects to addr once with a short timeout and closes the
// connection: it says whether the kernel completes the handshake for the
// listener, whatever the backend does.
func tryHandshake(ctx context.Context, network, addr string) (string, bool) {
	const wait = 500 * time.Millisecond
	dl := net.Dialer{Timeout: wait}
	c, err := dl.DialContext(ctx, network, addr)
	if err != nil {
		if probe.Classify(err) == probe.ClassTimeout {
			return fmt.Sprintf("connect did not complete within %s", wait), false
		}
		return "connect failed: " + err.Error(), false
	}
	_ = c.Close()
	return "the connection was accepted by the kernel", true
}

// notResponding is the finding for a backend that accepts but does not
// answer, or nil when the evidence does not show one.
func (d *run) notResponding() *Finding {
	s := d.stall
	if s == nil || !s.explained() {
		return nil
	}
	res, u := d.in.Result, d.in.Unit
	ev := map[string]any{"address": s.addr, "handshake": s.handshake}
	var procs []string
	for _, p := range s.procs {
		procs = append(procs, fmt.Sprintf("%d (%s) %s", p.PID, p.Comm, p.State))
	}
	if procs != nil {
		ev["processes"] = procs
	}
	if s.queue != nil {
		ev["accept_queue"] = s.queue.String()
	}
	if p := s.pressure; p != nil {
		ev["pressure_some_avg10"] = map[string]float64{"cpu": p.CPU, "memory": p.Memory, "io": p.IO}
	}
	who := "the backend"
	if u != nil && u.Started() {
		who = u.Name + " is " + u.ActiveState + " and"
	} else {
		who += " is"
	}
	summary := fmt.Sprintf("%s listening on %s but did not answer within %s", who, s.addr, res.Duration.Round(time.Millisecond))
	hint := "find what the backend waits for (its log, a stack dump: kill -QUIT or gdb), then restart it"
	var why []string
	if st := s.stuck(); len(st) > 0 {
		p := st[0]
		role := "process"
		if p.PID == s.mainPID {
			role = "main process"
		}
		w := fmt.Sprintf("its %s %d (%s) is %s", role, p.PID, p.Comm, p.Describe())
		if len(st) > 1 {
			w += fmt.Sprintf(", and %d more of its processes are stuck", len(st)-1)
		}
		why = append(why, w)
		switch p.State {
		case "T":
			hint = fmt.Sprintf("send SIGCONT (kill -CONT %d) or restart it; find who stopped it", p.PID)
		case "t":
			hint = fmt.Sprintf("detach the debugger or tracer from %d (grep TracerPid /proc/%d/status), or restart it", p.PID, p.PID)
		case "D":
			hint = fmt.Sprintf("see what %d waits on (cat /proc/%d/stack, its disk or NFS mount); a restart may not help until that returns", p.PID, p.PID)
		case "Z":
			hint = "the process exited but its parent did not reap it: restart the unit"
		}
	}
	if q := s.queue; q != nil && q.Full() {
		why = append(why, fmt.Sprintf("its accept queue is full (%s connections waiting for accept(2))", q))
		if len(why) == 1 {
			hint = "the backend does not accept connections fast enough, or is hung: restart it, and raise its workers or listen backlog if it is only slow"
		}
	}
	if p := s.pressure; p != nil {
		for _, r := range []struct {
			name string
			v    float64
		}{{"cpu", p.CPU}, {"memory", p.Memory}, {"io", p.IO}} {
			if r.v >= highPressure {
				why = append(why, fmt.Sprintf("the host is under %s pressure (some avg10 %.0f%%)", r.name, r.v))
			}
		}
	}
	if len(why) > 0 {
		summary += ": " + strings.Join(why, "; ")
	} else if s.connected {
		summary += ": the connection is accepted but no answer comes; its processes are not stopped"
	}
	return &Finding{Cause: NotResponding, Evidence: ev, Summary: summary, Hint: hint}
}

// NotResponding: the backend's port or socket accepts connections (or
// its listener is alive) but the answer never comes; the evidence is the
// state of its processes (proc(5) /proc/PID/stat), its accept queue
// against its backlog (sock_diag(7)) and the host's pressure (the
// kernel's PSI, Documentation/accounting/psi.rst).
const NotResponding Cause = "backend not responding"

// nothingListens is the finding for a local address that timed out with
// no listener and no firewall rule on its port: nothing listens there,
// which no firewall explains. It is nil when the address is not local, or
// when a unit is named (its state says more).
func (d *run) nothingListens(probed netip.AddrPort) *Finding {
	if d.in.Unit != nil || !IsLocal(probed.Addr(), d.local) || (d.fwTried && d.fwNote != "") {
		return nil
	}
	return &Finding{Cause: NotRunning, Evidence: map[string]any{"address": probed.String(), "listening": false, "rules": d.rules},
		Summary: fmt.Sprintf("nothing listens on %s, and no firewall rule matches its port", probed),
		Hint:    d.startHint(probed)}
}
