package diagnose

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/medic-watchdog/medic/probe"
	"github.com/medic-watchdog/medic/unit"
)

// Input is what Diagnose looks at.
type Input struct {
	// Spec is the probe that failed; Result its outcome (a passing Result
	// gives a checklist with no cause, for `medic diagnose`).
	Spec   probe.Spec
	Result probe.Result
	// Unit is the check's unit; nil when the check names none or its
	// state could not be read.
	Unit *unit.State
	// UnitName, when Unit is nil, names the unit whose state could not be
	// read, and UnitErr says why (e.g. the bus is unreachable).
	UnitName string
	UnitErr  error
	// ClientUser is who connects to a unix socket in production (nginx's
	// user); "" means DefaultClientUser.
	ClientUser string
	// Journal holds the unit's last journal lines, if read.
	Journal []string
	// Refused, when set, is the manager's refusal of medic's latest
	// restart for lack of authorization (e.g. "not authorized to restart
	// app.service: Interactive authentication required."), and
	// RefusedHint the command that grants it.
	Refused, RefusedHint string
}

// DefaultClientUser is the client whose access to a unix socket is checked
// when a check names none: Debian's and Ubuntu's nginx run as www-data.
const DefaultClientUser = "www-data"

// crashResults are unit Results that mean the main process ended badly
// (systemd.exec(5), "$SERVICE_RESULT").
var crashResults = []string{"exit-code", "signal", "core-dump", "watchdog", "timeout"}

// Diagnose gathers the evidence for in and names the primary cause. It never
// fails: evidence it cannot gather is listed in Diagnosis.Unavailable and
// the checklist marks it unknown. It bounds its own work with ctx.
func Diagnose(ctx context.Context, in Input) Diagnosis {
	d := &run{in: in, dg: Diagnosis{At: time.Now(), Target: in.Result.Target, Problem: in.Result.Problem()}}
	d.gather(ctx)
	d.decide()
	d.checklist()
	return d.dg
}

// run holds the evidence of one diagnosis.
type run struct {
	in Input
	dg Diagnosis

	tcp        bool             // a tcp or http probe
	host       string           // probed host (name or address)
	probed     []netip.AddrPort // resolved probed endpoints
	resolveErr error
	local      []netip.Addr

	listeners     []Socket // every TCP listener on the host
	unixListeners []Socket
	unitSockets   []Socket // listeners held by the unit
	owners        []string // who holds the probed port

	// unsaid counts the gaps in the unit's sockets left out of
	// Unavailable because they cannot change this diagnosis.
	unsaid int

	sock    *SocketFile
	oom     uint64
	rules   []string
	fwNote  string
	fwTried bool

	stall     *stall     // evidence of a backend that accepts but does not answer
	kernelOOM *OOMReport // the kernel's OOM report of the unit's last main process
	holders   []holder   // processes outside the unit holding its address while it is down

	ownerCache map[string]ownerAnswer // listenerOwner's answers, by socketKey

	wire *wireCheck // the second look at an HTTP probe's port
}

// ownerAnswer is ListenerOwner's answer for one socket.
type ownerAnswer struct {
	pid        int
	comm, unit string
	err        error
}

// listenerOwner is ListenerOwner, asked once per socket and diagnosis: the
// port's owners, the port conflict and a stalled backend all ask about the
// same listeners, and each question may scan every process's fds.
func (d *run) listenerOwner(s Socket) (pid int, comm, unit string, err error) {
	key := socketKey(s)
	if o, ok := d.ownerCache[key]; ok {
		return o.pid, o.comm, o.unit, o.err
	}
	pid, comm, unit, err = ListenerOwner(s)
	if d.ownerCache == nil {
		d.ownerCache = map[string]ownerAnswer{}
	}
	d.ownerCache[key] = ownerAnswer{pid, comm, unit, err}
	return pid, comm, unit, err
}

func (d *run) unavailable(format string, args ...any) {
	d.dg.Unavailable = append(d.dg.Unavailable, fmt.Sprintf(format, args...))
}

func (d *run) gather(ctx context.Context) {
	in := d.in
	if network, addr := in.Spec.Endpoint(); network == "tcp" {
		d.tcp = true
		if addr != "" {
			d.endpoint(ctx, addr, "")
		}
	}

	// Listeners: one snapshot of the host's sockets serves every diagnosis
	// made within snapshotTTL (a shared dependency down makes many checks
	// fail at once; each must not dump every socket of the host again).
	snap := hostSockets(d.tcp)
	d.listeners, d.unixListeners = snap.tcp, snap.unix
	for _, n := range snap.notes {
		d.unavailable("%s", n)
	}
	if snap.unixErr != nil && in.Spec.Type == probe.TypeUnix {
		d.unavailable("unix listeners: %v", snap.unixErr)
	}

	if u := in.Unit; u != nil && u.ControlGroup != "" && u.Started() {
		scan := unitListeners(u.ControlGroup, liveSources)
		d.unitSockets = scan.listeners
		notes := scan.notes(d.unitGaps(scan))
		for _, n := range notes {
			d.unavailable("%s", n)
		}
		d.unsaid = len(scan.notes(allGaps)) - len(notes)
	}
	if u := in.Unit; u != nil && u.ControlGroup != "" {
		if n, _, err := OOMKills(u.ControlGroup); err == nil {
			d.oom = n
		}
	}
	if d.tcp && len(d.probed) > 0 {
		for _, s := range PortOwners(d.probed[0].Port(), d.listeners) {
			_, comm, unit, err := d.listenerOwner(s)
			switch {
			case err != nil:
				d.owners = append(d.owners, fmt.Sprintf("%s held by uid %d", s, s.UID))
				d.unavailable("owner of %s: %v.", s, err)
			case comm == "" && unit != "":
				d.owners = append(d.owners, fmt.Sprintf("%s held by uid %d (%s)", s, s.UID, unit))
			case comm == "":
				d.owners = append(d.owners, fmt.Sprintf("%s held by uid %d", s, s.UID))
			case unit != "":
				d.owners = append(d.owners, s.String()+" held by "+comm+" ("+unit+")")
			default:
				d.owners = append(d.owners, s.String()+" held by "+comm)
			}
		}
	}

	if in.Spec.Type == probe.TypeUnix {
		client := in.ClientUser
		if client == "" {
			client = DefaultClientUser
		}
		f, err := InspectSocketFile(in.Spec.Path, d.unixListeners, []string{client, "self"})
		if err != nil {
			d.unavailable("socket file %s: %v", in.Spec.Path, err)
		} else {
			d.sock = &f
		}
	}

	if c := in.Result.Class; c == probe.ClassTimeout || c == probe.ClassUnreachable || (d.tcp && c == probe.ClassRefused) {
		if len(d.probed) > 0 {
			d.fwTried = true
			d.rules, d.fwNote = FirewallRules(ctx, d.probed[0].Port())
			if d.fwNote != "" {
				d.unavailable("firewall rules: %s", d.fwNote)
			}
		}
	}
	d.gatherPortInUse()
	d.gatherStall(ctx)
	d.oomByKernel(ctx)
	d.gatherHTTP(ctx)
}

// unitGaps picks the gaps in the unit's sockets that could change this
// diagnosis, for Unavailable:
//
//   - a unix probe: the unix listeners whose holder is unknown, only when
//     no unix listener of the unit is known (one known listener is the
//     finding; more would not change it); the listeners of a systemd
//     manager when the unit is socket-activated (a .socket unit in
//     Unit.TriggeredBy) or, when TriggeredBy was not read, as for unknown
//     holders;
//   - a TCP or HTTP probe: none of the unix ones;
//   - the processes' unreadable fds, which say how to give medic access,
//     when a note above remains, when the unit has no known listener of
//     the probe's kind (a socket systemd or another process handed it is
//     unseen), or when the unit is socket-activated.
func (d *run) unitGaps(scan *unitScan) gapView {
	u := d.in.Unit
	proto := func(s Socket) bool { return s.Proto == "tcp" || s.Proto == "tcp6" }
	if d.in.Spec.Type == probe.TypeUnix {
		proto = func(s Socket) bool { return s.Proto == "unix" }
	}
	known := slices.ContainsFunc(scan.listeners, proto)
	var sockets []string
	for _, t := range u.TriggeredBy {
		if strings.HasSuffix(t, ".socket") {
			sockets = append(sockets, t)
		}
	}
	activated := len(sockets) > 0
	v := gapView{triggers: sockets, near: d.in.Spec.Path}
	if d.in.Spec.Type == probe.TypeUnix {
		v.unknown = !known
		v.manager = activated || (u.TriggeredBy == nil && !known)
	}
	v.fd = scan.undecided(v) || !known || activated
	return v
}

// endpoint resolves the probed host:port.
func (d *run) endpoint(ctx context.Context, hostport, _ string) {
	host, portStr, err := net.SplitHostPort(hostport)
	if err != nil {
		return
	}
	d.host = host
	port, _ := strconv.ParseUint(portStr, 10, 16)
	addrs, err := Resolve(ctx, host)
	if err != nil {
		d.resolveErr = err
		return
	}
	for _, a := range addrs {
		d.probed = append(d.probed, netip.AddrPortFrom(a, uint16(port)))
	}
	if d.local, err = LocalAddrs(); err != nil {
		d.unavailable("local addresses: %v", err)
	}
}

// decide names the primary cause and the secondary findings.
func (d *run) decide() {
	in, res, u := d.in, d.in.Result, d.in.Unit
	var fs []Finding
	add := func(f Finding) { fs = append(fs, f) }

	if in.Refused != "" {
		name := "the unit"
		if u != nil {
			name = u.Name
		}
		add(Finding{Cause: NotAllowed, Evidence: map[string]any{"refused": in.Refused},
			Summary: fmt.Sprintf("medic is not allowed to restart %s: %s", name, in.Refused),
			Hint:    in.RefusedHint})
	}
	if f := d.portInUse(); f != nil {
		add(*f)
	}
	if u != nil {
		ev := map[string]any{
			"unit": u.Name, "active_state": u.ActiveState, "sub_state": u.SubState, "result": u.Result,
			"exec_main_code": u.ExecMainCode, "exec_main_status": u.ExecMainStatus, "n_restarts": u.NRestarts,
		}
		if !u.StateChangeTimestamp.IsZero() {
			ev["since"] = u.StateChangeTimestamp.UTC().Format(time.RFC3339)
		}
		switch {
		case u.Result == "oom-kill" || (d.oom > 0 && !u.Started()) || d.kernelOOM != nil:
			ev["oom_kills"] = d.oom
			add(Finding{Cause: OOMKilled, Evidence: withJournal(ev, in.Journal),
				Summary: fmt.Sprintf("%s was killed by the kernel's OOM killer (%s/%s, result %s, oom_kill %d)", u.Name, u.ActiveState, u.SubState, u.Result, d.oom) + d.oomKernelEvidence(ev),
				Hint:    "raise the unit's MemoryMax= or find the leak; the journal shows what it did last"})
		case !u.Started() && slices.Contains(crashResults, u.Result):
			add(Finding{Cause: Crashed, Evidence: withJournal(ev, in.Journal),
				Summary: fmt.Sprintf("%s crashed: %s/%s, result %s, main process %s%s", u.Name, u.ActiveState, u.SubState, u.Result, MainExit(u.ExecMainCode, u.ExecMainStatus), since(u)),
				Hint:    "read the unit's last journal lines (journalctl -u " + u.Name + "), fix the cause, then start it"})
		case !u.Started():
			add(Finding{Cause: NotRunning, Evidence: ev,
				Summary: fmt.Sprintf("%s is not running: %s/%s, result %s%s", u.Name, u.ActiveState, u.SubState, u.Result, since(u)),
				Hint:    "start the unit: systemctl start " + u.Name})
		}
	}

	if res.Class == probe.ClassDNS || d.resolveErr != nil {
		add(Finding{Cause: WrongHost, Evidence: map[string]any{"host": d.host, "error": errString(d.resolveErr, res.Err)},
			Summary: fmt.Sprintf("the name %q does not resolve", d.host),
			Hint:    "use an address, or fix the name in DNS or /etc/hosts"})
	}

	if in.Spec.Type == probe.TypeUnix && d.sock != nil {
		if f := d.socketFinding(); f != nil {
			add(*f)
		}
	}
	if f := d.notResponding(); f != nil {
		add(*f)
	}

	if d.tcp && len(d.probed) > 0 && !res.OK {
		probed := d.probed[0]
		serving := Serves(probed, d.listeners)
		switch {
		case !IsLocal(probed.Addr(), d.local) && (res.Class == probe.ClassUnreachable || res.Class == probe.ClassTimeout):
			add(Finding{Cause: WrongHost, Evidence: map[string]any{"address": probed.String(), "local": false},
				Summary: fmt.Sprintf("%s is not on this host and does not answer (%s)", probed, res.Class),
				Hint:    "check the upstream address: the backend is not on this host"})
		case d.stall != nil && d.stall.explained():
			// A backend that accepts but does not answer: notResponding.
		case res.Class == probe.ClassTimeout || res.Class == probe.ClassUnreachable || (len(d.rules) > 0 && res.Class == probe.ClassRefused):
			ev := map[string]any{"address": probed.String(), "listening": serving, "rules": d.rules}
			summary := fmt.Sprintf("connecting to %s %s instead of being refused", probed, map[probe.Class]string{probe.ClassTimeout: "timed out", probe.ClassUnreachable: "was unreachable", probe.ClassRefused: "was rejected"}[res.Class])
			if serving {
				summary += "; something listens there"
			}
			if len(d.rules) > 0 {
				summary += "; a firewall rule drops or rejects the port: " + d.rules[0]
			}
			if serving || len(d.rules) > 0 {
				add(Finding{Cause: Firewall, Evidence: ev, Summary: summary,
					Hint: fmt.Sprintf("allow tcp port %d in the firewall (iptables -L -n, nft list ruleset)", probed.Port())})
			} else if f := d.nothingListens(probed); f != nil {
				add(*f)
			}
		case !serving:
			alt := AltBindings(probed, d.listeners)
			if len(alt) > 0 {
				add(Finding{Cause: WrongHost, Evidence: map[string]any{"address": probed.String(), "bound_to": socketStrings(alt)},
					Summary: fmt.Sprintf("the backend listens on %s, the check probes %s", alt[0], probed),
					Hint:    fmt.Sprintf("bind the backend to %s (or 0.0.0.0/[::]), or point the upstream at %s", probed.Addr(), alt[0])})
			}
			if u == nil && len(alt) == 0 && res.Class == probe.ClassRefused && IsLocal(probed.Addr(), d.local) {
				add(Finding{Cause: NotRunning, Evidence: map[string]any{"address": probed.String(), "listening": false},
					Summary: fmt.Sprintf("nothing listens on %s", probed),
					Hint:    d.startHint(probed)})
			}
			if u != nil && u.Started() {
				other := tcpOnly(d.unitSockets)
				if len(other) > 0 {
					add(Finding{Cause: WrongPort, Evidence: map[string]any{"unit": u.Name, "listening": socketStrings(other), "probed": probed.String(), "port_owners": d.owners},
						Summary: fmt.Sprintf("%s is listening on %s, the check probes %s", u.Name, strings.Join(socketStrings(other), ", "), probed),
						Hint:    fmt.Sprintf("the upstream port should be %d", other[0].Addr.Port())})
				} else if len(d.dg.Unavailable)+d.unsaid == 0 || len(d.unitSockets) == 0 {
					add(Finding{Cause: Unknown, Evidence: map[string]any{"unit": u.Name, "probed": probed.String()},
						Summary: fmt.Sprintf("%s is %s/%s but listens on no TCP port", u.Name, u.ActiveState, u.SubState),
						Hint:    "check the backend's listen address in its configuration; it may still be starting"})
				}
			}
		default:
			// Something serves the probed address but the answer is wrong.
			if len(d.owners) > 0 && u != nil && !ownedBy(d.owners, u.Name) && u.Started() && len(d.holders) == 0 {
				add(Finding{Cause: WrongPort, Evidence: map[string]any{"unit": u.Name, "port_owners": d.owners, "listening": socketStrings(tcpOnly(d.unitSockets))},
					Summary: fmt.Sprintf("port %d is held by %s, not by %s", probed.Port(), strings.Join(d.owners, ", "), u.Name),
					Hint:    "another program holds the port: stop it, or move one of the two to another port"})
			}
		}
	}

	if f := d.httpFinding(); f != nil {
		add(*f)
	}
	if len(fs) == 0 && !res.OK {
		fs = append(fs, Finding{Cause: Unknown, Summary: "no evidence points at a known cause: " + res.Problem(),
			Hint: "try the target by hand (curl -v, nc -vz) and read the backend's log"})
	}
	if len(fs) > 0 {
		d.dg.Primary, d.dg.Secondary = fs[0], fs[1:]
	}
}

// startHint is the fix when nothing listens on probed and the unit's state
// is not known: with a unit named whose state could not be read, it says
// to start that unit; with none, to name it.
func (d *run) startHint(probed netip.AddrPort) string {
	if d.in.UnitName != "" {
		return fmt.Sprintf("start %s, which should listen on %s (systemctl start %s; its state could not be read)", d.in.UnitName, probed, d.in.UnitName)
	}
	return fmt.Sprintf("start the backend that should listen on %s (name its unit to see the unit's state)", probed)
}

// socketFinding reports a missing, stale or forbidden unix socket: a
// missing one (ENOENT) as NotRunning, since nothing created it, or as
// WrongPort when the unit is active (and listens on another path, when its
// sockets could be read); a stale or forbidden one as SocketPermissions.
func (d *run) socketFinding() *Finding {
	f := d.sock
	client := d.in.ClientUser
	if client == "" {
		client = DefaultClientUser
	}
	ev := map[string]any{"path": f.Path, "exists": f.Exists, "listening": f.Listening}
	if f.Exists {
		ev["owner"], ev["group"], ev["mode"] = f.Owner, f.Group, fmt.Sprintf("%04o", f.Mode.Perm())
	}
	var access []string
	denied := false
	seen := map[string]bool{}
	for _, a := range f.Access {
		if seen[a.User] {
			continue
		}
		seen[a.User] = true
		s := fmt.Sprintf("%s: %s", a.User, map[bool]string{true: "can connect", false: "cannot connect"}[a.CanConnect])
		if a.Why != "" {
			s += " (" + a.Why + ")"
		}
		access = append(access, s)
		if !a.CanConnect && a.User == client {
			denied = true
		}
	}
	ev["access"] = access
	var summary string
	if u := d.in.Unit; (!f.Exists || !f.Listening) && u != nil && u.Started() {
		if other := unixElsewhere(d.unitSockets, f.Path); len(other) > 0 {
			ev["unit"], ev["unit_listening"] = u.Name, socketStrings(other)
			return &Finding{Cause: WrongPort, Evidence: ev,
				Summary: fmt.Sprintf("%s is listening on %s, the check probes unix:%s", u.Name, strings.Join(socketStrings(other), ", "), f.Path),
				Hint:    "the upstream socket path should be " + other[0].Path}
		}
	}
	switch {
	case !f.Exists:
		// ENOENT: nothing created the socket; permissions are not the
		// question.
		if u := d.in.Unit; u != nil && u.Started() {
			return &Finding{Cause: WrongPort, Evidence: ev,
				Summary: fmt.Sprintf("nothing created the socket %s although %s is %s/%s: it listens on another path, or has not created it yet", f.Path, u.Name, u.ActiveState, u.SubState),
				Hint:    "check the socket path in the backend's configuration and in the upstream"}
		}
		return &Finding{Cause: NotRunning, Evidence: ev,
			Summary: fmt.Sprintf("nothing created the socket %s: the file does not exist", f.Path),
			Hint:    SocketHint(*f, client)}
	case !f.Listening:
		summary = fmt.Sprintf("the socket %s is stale: the file exists but nothing listens on it", f.Path)
	case denied || d.in.Result.Class == probe.ClassPermission:
		summary = fmt.Sprintf("%s cannot connect to %s (owner %s, group %s, mode %04o)", client, f.Path, f.Owner, f.Group, f.Mode.Perm())
	default:
		return nil
	}
	return &Finding{Cause: SocketPermissions, Evidence: ev, Summary: summary, Hint: SocketHint(*f, client)}
}

// checklist fills the five items a sysadmin checks by hand.
func (d *run) checklist() {
	in, res, u := d.in, d.in.Result, d.in.Unit
	var items []Item

	running := Item{Name: ItemRunning, Status: NotApplicable, Evidence: "no unit configured"}
	if u == nil && in.UnitName != "" {
		why := "not read"
		if in.UnitErr != nil {
			why = in.UnitErr.Error()
		}
		running = Item{Name: ItemRunning, Status: Unchecked, Evidence: fmt.Sprintf("%s: state unavailable: %s", in.UnitName, why)}
		d.unavailable("unit %s: %s", in.UnitName, why)
	}
	if u != nil {
		ev := fmt.Sprintf("%s: %s/%s", u.Name, u.ActiveState, u.SubState)
		if u.MainPID != 0 {
			ev += fmt.Sprintf(", main pid %d", u.MainPID)
		}
		if u.Result != "" && u.Result != "success" {
			ev += ", result " + u.Result + ", main process " + MainExit(u.ExecMainCode, u.ExecMainStatus)
		}
		st := Fail
		switch {
		case u.Up():
			st = Pass
		case u.Started() && !u.Down():
			st = Unchecked // starting or stopping: neither up nor down yet
		}
		running = Item{Name: ItemRunning, Status: st, Evidence: ev}
	}
	items = append(items, running)

	listening := Item{Name: ItemListening, Status: NotApplicable, Evidence: "not a TCP probe"}
	if d.tcp {
		switch {
		case len(d.probed) == 0:
			listening = Item{Name: ItemListening, Status: Unchecked, Evidence: "the address did not resolve"}
		case len(d.holders) > 0:
			held := make([]string, len(d.holders))
			for i, h := range d.holders {
				held[i] = h.String()
			}
			listening = Item{Name: ItemListening, Status: Fail, Evidence: strings.Join(held, "; ") + ", not by " + u.Name}
		case Serves(d.probed[0], d.listeners):
			ev := "something listens on " + d.probed[0].String()
			if len(d.owners) > 0 {
				ev = strings.Join(d.owners, "; ")
			}
			listening = Item{Name: ItemListening, Status: Pass, Evidence: ev}
		case !IsLocal(d.probed[0].Addr(), d.local):
			listening = Item{Name: ItemListening, Status: Unchecked, Evidence: d.probed[0].Addr().String() + " is not on this host"}
		default:
			ev := "nothing listens on " + d.probed[0].String()
			if s := tcpOnly(d.unitSockets); len(s) > 0 {
				ev += "; " + u.Name + " listens on " + strings.Join(socketStrings(s), ", ")
			} else if alt := AltBindings(d.probed[0], d.listeners); len(alt) > 0 {
				ev += "; " + strings.Join(socketStrings(alt), ", ") + " on the same port"
			}
			listening = Item{Name: ItemListening, Status: Fail, Evidence: ev}
		}
	}
	items = append(items, listening)

	direct := Item{Name: ItemDirect, Status: Pass, Evidence: fmt.Sprintf("%s answered in %s", res.Target, res.Duration.Round(time.Millisecond))}
	if !res.OK {
		direct = Item{Name: ItemDirect, Status: Fail, Evidence: res.Problem()}
	}
	items = append(items, direct)

	sock := Item{Name: ItemSocket, Status: NotApplicable, Evidence: "not a unix socket probe"}
	if in.Spec.Type == probe.TypeUnix {
		if f := d.sock; f == nil {
			sock = Item{Name: ItemSocket, Status: Unchecked, Evidence: "could not inspect " + in.Spec.Path}
		} else if len(d.holders) > 0 {
			sock = Item{Name: ItemSocket, Status: Fail, Evidence: d.holders[0].String() + ", not by " + u.Name}
		} else if fd := d.socketFinding(); fd != nil {
			sock = Item{Name: ItemSocket, Status: Fail, Evidence: fd.Summary}
		} else {
			sock = Item{Name: ItemSocket, Status: Pass, Evidence: fmt.Sprintf("%s owner %s group %s mode %04o, listening", f.Path, f.Owner, f.Group, f.Mode.Perm())}
		}
	}
	items = append(items, sock)

	fw := Item{Name: ItemFirewall, Status: NotApplicable, Evidence: "not a TCP probe"}
	if d.tcp {
		switch {
		case len(d.rules) > 0:
			fw = Item{Name: ItemFirewall, Status: Fail, Evidence: strings.Join(d.rules, "; ")}
		case res.OK:
			fw = Item{Name: ItemFirewall, Status: Pass, Evidence: "the connection went through"}
		case res.Class == probe.ClassRefused:
			fw = Item{Name: ItemFirewall, Status: Pass, Evidence: "refused, not dropped: the host answered"}
		case d.fwTried && d.fwNote == "":
			fw = Item{Name: ItemFirewall, Status: Pass, Evidence: "no rule drops or rejects the port"}
		case d.fwTried:
			fw = Item{Name: ItemFirewall, Status: Unchecked, Evidence: d.fwNote}
		case len(d.probed) == 0:
			fw = Item{Name: ItemFirewall, Status: Unchecked, Evidence: "not checked: the address did not resolve"}
		case res.Class == probe.ClassHTTPStatus || res.Class == probe.ClassBodyMismatch || res.Class == probe.ClassTLS:
			fw = Item{Name: ItemFirewall, Status: Pass, Evidence: "the host answered"}
		default:
			fw = Item{Name: ItemFirewall, Status: Unchecked, Evidence: fmt.Sprintf("not checked: the probe failed with %s", res.Class)}
		}
	}
	items = append(items, fw)
	// What could not be checked is said with its reason among the
	// unavailable evidence too (the unit's and the socket file's gaps are
	// there already).
	for _, it := range []Item{listening, fw} {
		if it.Status == Unchecked {
			d.unavailable("%s: %s", it.Name, it.Evidence)
		}
	}
	d.dg.Checklist = items
}

func since(u *unit.State) string {
	if u.StateChangeTimestamp.IsZero() {
		return ""
	}
	return ", since " + u.StateChangeTimestamp.UTC().Format(time.RFC3339)
}

func withJournal(ev map[string]any, journal []string) map[string]any {
	if len(journal) > 0 {
		n := min(len(journal), 5)
		ev["journal_tail"] = journal[len(journal)-n:]
	}
	return ev
}

func errString(errs ...error) string {
	for _, e := range errs {
		if e != nil {
			return e.Error()
		}
	}
	return ""
}

func socketStrings(ss []Socket) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.String()
	}
	return out
}

// unixElsewhere returns the unix sockets of ss bound to another path than
// path.
func unixElsewhere(ss []Socket, path string) []Socket {
	var out []Socket
	for _, s := range ss {
		if s.Proto == "unix" && s.Path != path {
			out = append(out, s)
		}
	}
	return out
}

func tcpOnly(ss []Socket) []Socket {
	var out []Socket
	for _, s := range ss {
		if s.Proto == "tcp" || s.Proto == "tcp6" {
			out = append(out, s)
		}
	}
	return out
}

func ownedBy(owners []string, unit string) bool {
	for _, o := range owners {
		if strings.Contains(o, "("+unit+")") {
			return true
		}
	}
	return false
}

// snapshotTTL is how long one listing of the host's listening sockets
// serves diagnoses.
const snapshotTTL = 250 * time.Millisecond

// socketSnapshot is one listing of the host's listening sockets.
type socketSnapshot struct {
	at      time.Time
	tcp     []Socket // from sock_diag, or /proc/net as the fallback
	unix    []Socket // from /proc/net/unix
	notes   []string // evidence that was unavailable, and why
	unixErr error
	hasTCP  bool
}

var (
	snapMu   sync.Mutex
	lastSnap socketSnapshot
)

// hostSockets returns the host's listening sockets, listed at most once
// per snapshotTTL: TCP ones (when tcp) from sock_diag, which works
// unprivileged and carries cgroup ids, else from /proc/net; unix ones from
// /proc/net/unix. Callers must not modify the slices.
func hostSockets(tcp bool) socketSnapshot {
	snapMu.Lock()
	defer snapMu.Unlock()
	if time.Since(lastSnap.at) < snapshotTTL && (lastSnap.hasTCP || !tcp) {
		return lastSnap
	}
	s := socketSnapshot{at: time.Now(), hasTCP: tcp}
	all, perr := ProcListeners("")
	for _, l := range all {
		if l.Proto == "unix" {
			s.unix = append(s.unix, l)
		}
	}
	if perr != nil {
		s.unixErr = perr
	}
	if tcp {
		ls, err := SockDiagListeners()
		if err != nil {
			s.notes = append(s.notes, fmt.Sprintf("%v; read /proc/net instead", err))
			ls = nil
			if perr != nil {
				s.notes = append(s.notes, fmt.Sprintf("listening sockets: %v", perr))
			}
			for _, l := range all {
				if l.Proto != "unix" {
					ls = append(ls, l)
				}
			}
		}
		s.tcp = ls
	}
	lastSnap = s
	return s
}
