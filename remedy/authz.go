package remedy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	godbus "github.com/godbus/dbus/v5"
)

// ErrNotAuthorized: the manager refused a call for lack of authorization.
// Read it with errors.Is; errors.As with *AuthorizationError gives the
// details.
var ErrNotAuthorized = errors.New("not authorized")

// D-Bus error names a manager answers with when polkit (polkit(8)) does not
// authorize a call: the action needs an interactive authentication that
// the caller did not allow (systemd passes no ALLOW_INTERACTIVE_AUTHORIZATION
// flag for medic), or it is denied outright. Both are defined by the D-Bus
// specification's list of standard errors.
const (
	dbusErrInteractiveAuth = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	dbusErrAccessDenied    = "org.freedesktop.DBus.Error.AccessDenied"
)

// AuthorizationError is a call on Unit that the manager refused for lack of
// authorization. It matches ErrNotAuthorized.
type AuthorizationError struct {
	// Unit and Verb are what was refused; Verb is the polkit verb systemd
	// checks: "restart", "start" or "reset-failed".
	Unit, Verb string
	// Name is the D-Bus error name, Message its text as the manager gave it
	// (e.g. "Interactive authentication required.").
	Name, Message string
}

// Error returns "not authorized to restart my-app.service: Interactive
// authentication required.".
func (e *AuthorizationError) Error() string {
	msg := strings.TrimSpace(e.Message)
	if msg == "" {
		msg = e.Name
	}
	return fmt.Sprintf("not authorized to %s %s: %s", e.Verb, e.Unit, msg)
}

// Is reports whether target is ErrNotAuthorized.
func (e *AuthorizationError) Is(target error) bool { return target == ErrNotAuthorized }

// authorizationError returns err as an *AuthorizationError when it is a
// D-Bus error that means the caller is not authorized, and err unchanged
// otherwise.
func authorizationError(err error, unit, verb string) error {
	var de godbus.Error
	if !errors.As(err, &de) {
		var pde *godbus.Error
		if !errors.As(err, &pde) || pde == nil {
			return err
		}
		de = *pde
	}
	if de.Name != dbusErrInteractiveAuth && de.Name != dbusErrAccessDenied {
		return err
	}
	msg := ""
	if len(de.Body) > 0 {
		msg, _ = de.Body[0].(string)
	}
	return &AuthorizationError{Unit: unit, Verb: verb, Name: de.Name, Message: msg}
}

// Authorization is polkit's answer for one unit and verb.
type Authorization struct {
	Unit, Verb string
	// Authorized is true when the caller may act without authenticating.
	Authorized bool
	// Challenge is true when polkit would authorize the caller after an
	// interactive authentication, which medic can never give: for medic
	// that is a no.
	Challenge bool
}

// polkit's authority on the system bus (polkit(8),
// org.freedesktop.PolicyKit1.Authority(5)) and the action systemd checks
// before it changes a unit's state (systemd's
// org.freedesktop.systemd1.policy, with the details "unit" and "verb" that
// rules read through action.lookup()).
const (
	polkitDest        = "org.freedesktop.PolicyKit1"
	polkitPath        = godbus.ObjectPath("/org/freedesktop/PolicyKit1/Authority")
	polkitCheck       = "org.freedesktop.PolicyKit1.Authority.CheckAuthorization"
	manageUnitsAction = "org.freedesktop.systemd1.manage-units"
)

// Subject is a process polkit is asked about: polkit's "unix-process"
// subject (org.freedesktop.PolicyKit1.Authority(5)), named by its pid and
// start time (field 22 of /proc/PID/stat, in clock ticks since boot) so
// that a reused pid cannot stand in for it.
type Subject struct {
	PID       uint32
	StartTime uint64
	UID       uint32
}

// ProcessSubject returns the Subject of the running process pid, read from
// /proc/PID/stat and /proc/PID/status.
func ProcessSubject(pid int) (Subject, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return Subject{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count the fields after its closing parenthesis (proc(5)).
	i := strings.LastIndexByte(string(stat), ')')
	if i < 0 {
		return Subject{}, fmt.Errorf("read process %d: malformed stat", pid)
	}
	fields := strings.Fields(string(stat[i+1:]))
	if len(fields) < 20 {
		return Subject{}, fmt.Errorf("read process %d: malformed stat", pid)
	}
	start, err := strconv.ParseUint(fields[19], 10, 64) // field 22: starttime
	if err != nil {
		return Subject{}, fmt.Errorf("read process %d: start time: %w", pid, err)
	}
	fi, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return Subject{}, fmt.Errorf("read process %d: %w", pid, err)
	}
	uid := uint32(0)
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		uid = st.Uid
	}
	return Subject{PID: uint32(pid), StartTime: start, UID: uid}, nil
}

// CheckAuthorization asks polkit over conn (a system bus connection)
// whether subject may change unit with verb ("restart", "start",
// "reset-failed"), the way systemd asks when that process calls
// RestartUnit: the action org.freedesktop.systemd1.manage-units with the
// details unit and verb, without interaction. polkit takes details only
// from trusted callers (uid 0, or the action's owner), so only root can
// ask; as anyone else polkit answers with an error. Errors: polkit is not
// running (org.freedesktop.DBus.Error.ServiceUnknown), refused the
// question, the bus is gone, or ctx ended.
func CheckAuthorization(ctx context.Context, conn *godbus.Conn, subject Subject, unit, verb string) (Authorization, error) {
	a := Authorization{Unit: unit, Verb: verb}
	subj := struct {
		Kind    string
		Details map[string]godbus.Variant
	}{"unix-process", map[string]godbus.Variant{
		"pid":        godbus.MakeVariant(subject.PID),
		"start-time": godbus.MakeVariant(subject.StartTime),
		"uid":        godbus.MakeVariant(int32(subject.UID)),
	}}
	details := map[string]string{"unit": unit, "verb": verb}
	var result struct {
		Authorized, Challenge bool
		Details               map[string]string
	}
	call := conn.Object(polkitDest, polkitPath).CallWithContext(ctx, polkitCheck, 0, subj, manageUnitsAction, details, uint32(0), "")
	// The answer is one struct, (bba{ss}): authorized, challenge, details.
	if err := call.Store(&result); err != nil {
		return a, fmt.Errorf("ask polkit about %s of %s: %w", verb, unit, err)
	}
	a.Authorized, a.Challenge = result.Authorized, result.Challenge
	return a, nil
}

// PolkitRuleHint is the command line that writes the polkit rule allowing
// medic's restarts of the units in the configuration at configPath.
func PolkitRuleHint(configPath string) string {
	if configPath == "" {
		configPath = "/etc/medic/medic.toml"
	}
	return fmt.Sprintf("medic polkit-rule -c %s > /etc/polkit-1/rules.d/50-medic.rules", configPath)
}
