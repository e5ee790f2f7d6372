package remedy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

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

// CheckAuthorization asks polkit over conn (a system bus connection)
// whether this process may change unit with verb ("restart", "start",
// "reset-failed"), the way systemd asks when medic calls RestartUnit: the
// action org.freedesktop.systemd1.manage-units with the details unit and
// verb, for the subject system-bus-name of conn's own unique name, without
// interaction. Root needs no polkit: systemd lets uid 0 do anything, so
// the answer for root is Authorized without asking. Errors: the call
// failed (polkit is not running: org.freedesktop.DBus.Error.ServiceUnknown;
// the bus is gone; ctx ended).
func CheckAuthorization(ctx context.Context, conn *godbus.Conn, unit, verb string) (Authorization, error) {
	a := Authorization{Unit: unit, Verb: verb}
	if os.Geteuid() == 0 {
		a.Authorized = true
		return a, nil
	}
	names := conn.Names()
	if len(names) == 0 {
		return a, errors.New("check authorization: no unique name on the bus")
	}
	subject := struct {
		Kind    string
		Details map[string]godbus.Variant
	}{"system-bus-name", map[string]godbus.Variant{"name": godbus.MakeVariant(names[0])}}
	details := map[string]string{"unit": unit, "verb": verb}
	var result struct {
		Authorized, Challenge bool
		Details               map[string]string
	}
	call := conn.Object(polkitDest, polkitPath).CallWithContext(ctx, polkitCheck, 0, subject, manageUnitsAction, details, uint32(0), "")
	if err := call.Store(&result.Authorized, &result.Challenge, &result.Details); err != nil {
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
