package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/medic-watchdog/medic/internal/fsname"
	"github.com/medic-watchdog/medic/internal/redact"
)

// validator collects problems with their keys and lines.
type validator struct {
	file string
	loc  *locator
	errs Errors
}

func (v *validator) errorf(key, format string, args ...any) {
	v.errs = append(v.errs, &Error{File: v.file, Line: v.loc.line(key), Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Validate checks c and returns Errors holding every problem found, or nil.
// It does not touch the file system or the network: files named in c need not
// exist yet. Parse calls it; call it yourself on a Config built in code.
func (c *Config) Validate() error {
	v := &validator{file: c.File, loc: c.loc}
	v.agent("agent", &c.Agent)

	notifiers := map[string]int{}
	for i := range c.Notifiers {
		n := &c.Notifiers[i]
		key := fmt.Sprintf("notifier[%d]", i)
		v.notifier(key, n)
		if n.Name == "" {
			continue
		}
		if j, dup := notifiers[n.Name]; dup {
			v.errorf(key+".name", "duplicate notifier name %q (also notifier[%d])", n.Name, j)
			continue
		}
		notifiers[n.Name] = i
	}

	checks := map[string]int{}
	for i := range c.Checks {
		ch := &c.Checks[i]
		key := fmt.Sprintf("check[%d]", i)
		v.check(key, ch, notifiers)
		if ch.Name == "" {
			continue
		}
		if j, dup := checks[ch.Name]; dup {
			v.errorf(key+".name", "duplicate check name %q (also check[%d])", ch.Name, j)
			continue
		}
		checks[ch.Name] = i
	}

	for i, w := range c.Watch.Nginx {
		key := fmt.Sprintf("watch.nginx[%d].error_log", i)
		switch {
		case w.ErrorLog == "":
			v.errorf(key, "missing error_log: the path of nginx's error log")
		case !filepath.IsAbs(w.ErrorLog):
			v.errorf(key, "%q is not an absolute path", w.ErrorLog)
		}
	}

	if len(v.errs) == 0 {
		return nil
	}
	sortErrors(v.errs)
	return v.errs
}

func (v *validator) agent(key string, a *Agent) {
	if a.Bus != "system" && a.Bus != "user" {
		v.errorf(key+".bus", "invalid bus %q: want \"system\" or \"user\"", a.Bus)
	}
	v.atLeast(key+".interval", a.Interval, MinInterval)
	if v.atLeast(key+".timeout", a.Timeout, MinTimeout) && a.Interval.Duration > 0 && a.Timeout.Duration >= a.Interval.Duration {
		v.errorf(key+".timeout", "timeout (%s) must be shorter than interval (%s)", a.Timeout, a.Interval)
	}
	if a.Jitter < 0 || a.Jitter > 0.5 || a.Jitter != a.Jitter {
		v.errorf(key+".jitter", "jitter %g out of range: want a fraction of the interval from 0 to 0.5", a.Jitter)
	}
	switch {
	case a.StateDir == "":
		v.errorf(key+".state_dir", "missing state directory")
	case !filepath.IsAbs(a.StateDir):
		v.errorf(key+".state_dir", "state directory %q is not an absolute path", a.StateDir)
	}
	if a.StatusSocket != "" {
		v.socketPath(key+".status_socket", a.StatusSocket)
	}
	if a.MetricsListen != "" {
		// An empty host (":9464") listens on every address.
		_, port, err := net.SplitHostPort(a.MetricsListen)
		if err != nil {
			v.errorf(key+".metrics_listen", "invalid listen address %q: want host:port, e.g. \"127.0.0.1:9464\"", a.MetricsListen)
		} else if msg := checkPort(port); msg != "" {
			v.errorf(key+".metrics_listen", "%s", msg)
		}
	}
	if a.HTTPListen != "" {
		// An empty host (":9465") binds 127.0.0.1 (statuspage.Listen).
		_, port, err := net.SplitHostPort(a.HTTPListen)
		if err != nil {
			v.errorf(key+".http_listen", "invalid listen address %q: want host:port, e.g. \"127.0.0.1:9465\"", a.HTTPListen)
		} else if msg := checkPort(port); msg != "" {
			v.errorf(key+".http_listen", "%s", msg)
		}
	}
	if a.JournalLines < 0 || a.JournalLines > 1000 {
		v.errorf(key+".journal_lines", "must be 0 (off) to 1000, got %d", a.JournalLines)
	}
	if a.OutboxMax < 1 {
		v.errorf(key+".outbox_max", "must be at least 1, got %d", a.OutboxMax)
	}
	if a.IncidentHistory < 0 || a.IncidentHistory > MaxIncidentHistory {
		v.errorf(key+".incident_history", "must be 0 (off) to %d, got %d", MaxIncidentHistory, a.IncidentHistory)
	}
	if a.IncidentRetention.Duration < 0 {
		v.errorf(key+".incident_retention", "must be 0 (no bound of age) or more, got %s", a.IncidentRetention)
	}
	if a.MaxConcurrentRemedies < 1 {
		v.errorf(key+".max_concurrent_remedies", "must be at least 1, got %d", a.MaxConcurrentRemedies)
	}
	if a.Workers < 0 || a.Workers > MaxWorkers {
		v.errorf(key+".workers", "must be 0 (64 per CPU) to %d, got %d", MaxWorkers, a.Workers)
	}
}

// refusedUnitNames are single units medic never acts on that no class of
// refusedRules covers: the ways in to the machine and the bus's alias.
var refusedUnitNames = map[string]bool{
	"dbus.service":             true,
	"dbus.socket":              true,
	"dbus-broker.service":      true,
	"messagebus.service":       true,
	"medic.service":            true,
	"polkit.service":           true,
	"polkitd.service":          true,
	"systemd-journald.service": true,
	"systemd-journald.socket":  true,
	"ssh.service":              true,
	"ssh.socket":               true,
	"sshd.service":             true,
	"getty.target":             true,
	"rescue.service":           true,
	"emergency.service":        true,
}

// refusedRules are the classes of units medic never acts on, each with the
// rule's name (as errors show it) and why. The first match wins.
var refusedRules = []struct {
	rule  string
	why   string
	match func(stem, suffix string) bool
}{
	{"medic itself (medic.service, medic@*)", "medic would stop its own watch",
		func(stem, _ string) bool { return stem == "medic" || strings.HasPrefix(stem, "medic@") }},
	{"D-Bus (dbus*)", "medic talks to systemd over it, and so does every other service",
		func(stem, _ string) bool { return strings.HasPrefix(stem, "dbus") }},
	{"polkit (polkit*)", "it is what allows medic's restarts",
		func(stem, _ string) bool { return strings.HasPrefix(stem, "polkit") }},
	{"systemd's own units (systemd-*)", "journald, logind, udevd, networkd and the like keep the machine itself running",
		func(stem, _ string) bool { return strings.HasPrefix(stem, "systemd-") }},
	{"user managers (user@*.service, user-runtime-dir@*.service)", "restarting one ends every process and session of that user",
		func(stem, suffix string) bool {
			return suffix == ".service" && (strings.HasPrefix(stem, "user@") || strings.HasPrefix(stem, "user-runtime-dir@"))
		}},
	{"slices (*.slice)", "a slice groups other units; acting on it acts on all of them",
		func(_, suffix string) bool { return suffix == ".slice" }},
	{"scopes (*.scope)", "a scope holds processes systemd did not start (sessions, containers); it cannot be restarted, only killed",
		func(_, suffix string) bool { return suffix == ".scope" }},
	{"targets (*.target)", "a target pulls in other units, or isolates, reboots or halts the machine",
		func(_, suffix string) bool { return suffix == ".target" }},
	{"devices, mounts and swap (*.device, *.mount, *.automount, *.swap)", "they are the machine's hardware and file systems, not a backend",
		func(_, suffix string) bool {
			return suffix == ".device" || suffix == ".mount" || suffix == ".automount" || suffix == ".swap"
		}},
	{"the ways in and the bus (ssh, getty, rescue, emergency, journald, polkit, dbus)", "restarting it could cut off medic itself or every way in to the machine",
		func(stem, suffix string) bool { return refusedUnitNames[stem+suffix] }},
}

// RefusedUnit returns the rule by which medic refuses to act on unit (the
// rule's name and why, e.g. "slices (*.slice): a slice groups other
// units; acting on it acts on all of them"), or "" when medic may act on
// it. Validate refuses a check whose remedy would act on such a unit.
func RefusedUnit(unit string) string {
	stem, suffix := unit, ""
	if dot := strings.LastIndexByte(unit, '.'); dot >= 0 {
		stem, suffix = unit[:dot], unit[dot:]
	}
	for _, r := range refusedRules {
		if r.match(stem, suffix) {
			return r.rule + ": " + r.why
		}
	}
	return ""
}

func (v *validator) check(key string, c *Check, notifiers map[string]int) {
	v.name(key+".name", "check", c.Name)
	switch {
	case c.Unit == "" && c.Remedy.Action != "none":
		v.errorf(key+".unit", "missing unit (required unless remedy.action = \"none\")")
	case c.Unit == "":
	case c.Remedy.Action != "none" && RefusedUnit(c.Unit) != "":
		v.errorf(key+".unit", "medic refuses to act on %s, by its rule for %s; use remedy.action = \"none\" to only watch it", c.Unit, RefusedUnit(c.Unit))
	default:
		if msg := checkUnitName(c.Unit); msg != "" {
			v.errorf(key+".unit", "%s", msg)
		}
	}
	v.atLeast(key+".interval", c.Interval, MinInterval)
	if v.atLeast(key+".timeout", c.Timeout, MinTimeout) && c.Interval.Duration > 0 && c.Timeout.Duration >= c.Interval.Duration {
		v.errorf(key+".timeout", "timeout (%s) must be shorter than interval (%s)", c.Timeout, c.Interval)
	}
	if v.atLeast(key+".retry_interval", c.RetryInterval, MinRetryInterval) && c.Interval.Duration > 0 && c.RetryInterval.Duration > c.Interval.Duration {
		v.errorf(key+".retry_interval", "retry_interval (%s) must not be longer than interval (%s)", c.RetryInterval, c.Interval)
	}
	if c.Failures < 1 {
		v.errorf(key+".failures", "must be at least 1, got %d", c.Failures)
	}
	if c.Successes < 1 {
		v.errorf(key+".successes", "must be at least 1, got %d", c.Successes)
	}
	v.notNegative(key+".grace", c.Grace)
	if len(c.Probes) == 0 {
		v.errorf(key, "no probes: add at least one [[check.probe]]")
	}
	for i := range c.Probes {
		v.probe(fmt.Sprintf("%s.probe[%d]", key, i), &c.Probes[i])
	}
	v.remedy(key+".remedy", &c.Remedy)

	e := &c.Escalate
	seen := map[string]bool{}
	for i, name := range e.Notify {
		k := fmt.Sprintf("%s.escalate.notify[%d]", key, i)
		switch _, ok := notifiers[name]; {
		case !ok:
			v.errorf(k, "unknown notifier %q", name)
		case seen[name]:
			v.errorf(k, "notifier %q listed twice", name)
		}
		seen[name] = true
	}
	v.notNegative(key+".escalate.repeat_interval", e.RepeatInterval)
	if e.FlapThreshold < 0 {
		v.errorf(key+".escalate.flap_threshold", "must be 0 (off) or more, got %d", e.FlapThreshold)
	}
}

func (v *validator) remedy(key string, r *Remedy) {
	switch r.Action {
	case "restart", "start", "none":
	default:
		v.errorf(key+".action", "invalid action %q: want \"restart\", \"start\" or \"none\"", r.Action)
	}
	v.positive(key+".verify_timeout", r.VerifyTimeout)
	if r.Action != "none" && r.MaxRestarts < 1 {
		v.errorf(key+".max_restarts", "must be at least 1, got %d (use action = \"none\" to never restart)", r.MaxRestarts)
	} else if r.MaxRestarts < 0 {
		v.errorf(key+".max_restarts", "must not be negative, got %d", r.MaxRestarts)
	}
	v.positive(key+".window", r.Window)
	if v.notNegative(key+".backoff", r.Backoff) && v.notNegative(key+".backoff_max", r.BackoffMax) && r.BackoffMax.Duration < r.Backoff.Duration {
		v.errorf(key+".backoff_max", "backoff_max (%s) must not be shorter than backoff (%s)", r.BackoffMax, r.Backoff)
	}
	v.notNegative(key+".retry_after", r.RetryAfter)
	v.positive(key+".job_timeout", r.JobTimeout)
}

// credentialName checks the name of a systemd credential (systemd.exec(5),
// LoadCredential=): a file name in $CREDENTIALS_DIRECTORY, not a path.
func (v *validator) credentialName(key, c string) {
	if c != "" && (strings.ContainsRune(c, '/') || c == "." || c == "..") {
		v.errorf(key, "invalid credential name %q: a name, not a path", c)
	}
}

// absPath reports path unless it is empty or absolute.
func (v *validator) absPath(key, path string) {
	if path != "" && !filepath.IsAbs(path) {
		v.errorf(key, "%q is not an absolute path", path)
	}
}

func (v *validator) httpURL(key, u string) {
	if u == "" {
		v.errorf(key, "missing url: want an http:// or https:// URL")
		return
	}
	if msg := checkHTTPURL(u); msg != "" {
		v.errorf(key, "%s", msg)
	}
}

// name checks the name of a check or notifier (what is "check" or
// "notifier"): it becomes a file or directory name in state_dir, so it
// follows fsname.Check, the rule the outbox applies too: 1 to 64 letters,
// digits, '.', '_' and '-', not starting with '.', not "corrupt".
func (v *validator) name(key, what, name string) {
	if name == "" {
		v.errorf(key, "missing %s name", what)
		return
	}
	if err := fsname.Check(name); err != nil {
		v.errorf(key, "invalid %s %v", what, err)
	}
}

// atLeast reports d unless it is at least lower (a positive bound), and
// tells whether it is.
func (v *validator) atLeast(key string, d Duration, lower time.Duration) bool {
	if !v.positive(key, d) {
		return false
	}
	if d.Duration < lower {
		v.errorf(key, "%s is too short: at least %s", d, Duration{lower})
		return false
	}
	return true
}

// positive reports d unless it is more than zero, and tells whether it is.
func (v *validator) positive(key string, d Duration) bool {
	switch {
	case d.Duration < 0:
		v.errorf(key, "must not be negative, got %s", d)
		return false
	case d.Duration == 0:
		v.errorf(key, "must be more than 0")
		return false
	}
	return true
}

// notNegative reports d if it is negative, and tells whether it is not.
func (v *validator) notNegative(key string, d Duration) bool {
	if d.Duration < 0 {
		v.errorf(key, "must not be negative, got %s", d)
		return false
	}
	return true
}

// maxSocketPath is the longest path a Unix socket address holds on Linux
// (sun_path is 108 bytes with the terminating NUL).
const maxSocketPath = 107

func (v *validator) socketPath(key, path string) {
	switch {
	case !filepath.IsAbs(path):
		v.errorf(key, "%q is not an absolute path", path)
	case len(path) > maxSocketPath:
		v.errorf(key, "socket path is %d bytes long: at most %d fit in a Unix socket address", len(path), maxSocketPath)
	}
}

// checkPort returns what is wrong with a port number, or "".
func checkPort(port string) string {
	if port == "" {
		return "missing port"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return fmt.Sprintf("invalid port %q: want a number from 1 to 65535", port)
	}
	return ""
}

// checkHTTPURL returns what is wrong with an http(s) URL, or "".
func checkHTTPURL(raw string) string {
	// The URL may hold a credential (user:password, ?token=): errors show
	// it redacted.
	s := redact.URLString(raw)
	u, err := url.Parse(raw)
	if !strings.Contains(raw, "://") {
		return fmt.Sprintf("invalid URL %q: want an absolute http:// or https:// URL", s)
	}
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Sprintf("invalid URL: %v", err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Sprintf("invalid URL %q: want an absolute http:// or https:// URL", s)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Sprintf("invalid URL %q: missing host", s)
	}
	if p := u.Port(); p != "" {
		if msg := checkPort(p); msg != "" {
			return fmt.Sprintf("invalid URL %q: %s", s, msg)
		}
	}
	return ""
}

// unitSuffixes are the unit types medic can act on (systemd.unit(5)).
var unitSuffixes = []string{
	".service", ".socket", ".target", ".device", ".mount", ".automount",
	".swap", ".timer", ".path", ".slice", ".scope",
}

var unitCharsRE = regexp.MustCompile(`^[A-Za-z0-9:_.\\-]+$`)

// maxUnitName is systemd's UNIT_NAME_MAX minus the terminating NUL.
const maxUnitName = 255

// checkUnitName returns what is wrong with a systemd unit name, or "".
// A name is prefix[@instance].suffix with the characters systemd allows; a
// template without an instance ("app@.service") cannot be restarted.
func checkUnitName(name string) string {
	if len(name) > maxUnitName {
		return fmt.Sprintf("invalid unit name: %d characters long, at most %d", len(name), maxUnitName)
	}
	dot := strings.LastIndexByte(name, '.')
	if dot < 0 {
		return fmt.Sprintf("invalid unit name %q: missing a suffix such as \".service\"", name)
	}
	suffix := name[dot:]
	found := false
	for _, s := range unitSuffixes {
		if suffix == s {
			found = true
			break
		}
	}
	if !found {
		return fmt.Sprintf("invalid unit name %q: unknown unit type %q (want %s)", name, suffix, strings.Join(unitSuffixes, ", "))
	}
	stem := name[:dot]
	prefix, instance, template := strings.Cut(stem, "@")
	switch {
	case prefix == "":
		return fmt.Sprintf("invalid unit name %q: empty name before %q", name, suffix)
	case !unitCharsRE.MatchString(prefix):
		return fmt.Sprintf("invalid unit name %q: use letters, digits, ':', '-', '_', '.' and '\\'", name)
	case template && instance == "":
		return fmt.Sprintf("unit %q is a template: name an instance, e.g. %q", name, prefix+"@1"+suffix)
	case template && !unitCharsRE.MatchString(instance):
		return fmt.Sprintf("invalid unit name %q: instance may hold letters, digits, ':', '-', '_', '.' and '\\'", name)
	}
	return ""
}
