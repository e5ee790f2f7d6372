// Package config holds medic's configuration: the types the TOML file decodes
// into, their defaults, loading, and validation that reports every problem
// with its file, line and key.
//
// A file is decoded on top of the Default* values, so a key left out keeps
// its default; a check that does not set interval or timeout takes the
// agent's. Unknown keys are errors. See config.example.toml at the root of
// the repository for every option with its default.
//
// Each kind of notifier is declared once, in its own file
// (notifier_<type>.go): the keys of its [[notifier]] table, their defaults
// and validation, the secret and certificate files it reads, and how it is
// built from its notify package. notifierKinds, in notifiers.go, is the
// registry the decoder, validation, ReadSecrets and Notifier.Build look
// kinds up in; adding a kind touches its file, its test and that map.
//
// Probe kinds are declared the same way (probe_<type>.go): the keys of a
// kind's [[check.probe]] table, their validation and the probe.Spec they
// make. probeKinds, in probes.go, is their registry; Probe embeds each
// kind's table, so the TOML table stays flat. The Prober of each kind and
// its endpoint are in the probe package (probe.Kinds).
package config

import (
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// Config is the whole configuration file.
type Config struct {
	// File is the path the configuration was read from, as given to Load or
	// Parse; it prefixes every Error.
	File string `toml:"-"`
	// Agent holds the settings of the agent itself (the [agent] table).
	Agent Agent `toml:"agent"`
	// Checks are the [[check]] tables, in file order.
	Checks []Check `toml:"check"`
	// Notifiers are the [[notifier]] tables, in file order.
	Notifiers []Notifier `toml:"notifier"`
	// Watch holds the logs medic follows for early signs of a failing
	// backend (the [watch] tables).
	Watch Watch `toml:"watch"`

	// loc finds the lines of keys in the source; nil when built in code.
	// Because of it, two Configs parsed from different text are never
	// reflect.DeepEqual: compare Agent, Checks and Notifiers instead.
	loc *locator
}

// Agent is the [agent] table.
type Agent struct {
	// Bus is the systemd manager medic talks to: "system" (default) or
	// "user" (the calling user's manager; used by tests and demos).
	Bus string `toml:"bus"`
	// Interval is the default time between two probes of a check (10s).
	Interval Duration `toml:"interval"`
	// Timeout is the default time one probe may take (2s); it must be
	// shorter than Interval.
	Timeout Duration `toml:"timeout"`
	// Jitter spreads probes: each wait is changed by up to this fraction of
	// the interval, at random. 0 to 0.5; default 0.1.
	Jitter float64 `toml:"jitter"`
	// StateDir holds the outbox and incident state (/var/lib/medic). It
	// must be an absolute path; it need not exist when validating.
	StateDir string `toml:"state_dir"`
	// StatusSocket is the Unix socket that `medic status` reads
	// (/run/medic/medic.sock). An absolute path; empty turns it off.
	StatusSocket string `toml:"status_socket"`
	// MetricsListen is the host:port of the Prometheus metrics endpoint,
	// e.g. "127.0.0.1:9464"; empty (default) turns it off.
	MetricsListen string `toml:"metrics_listen"`
	// HTTPListen is the host:port of the read-only status web page (every
	// check, the open incidents, the incident history), e.g.
	// "127.0.0.1:9465"; empty (default) turns it off. An empty host binds
	// 127.0.0.1; any other host is bound as written.
	HTTPListen string `toml:"http_listen"`
	// MaxConcurrentRemedies caps how many restarts medic runs at once
	// across all checks (4, at least 1).
	MaxConcurrentRemedies int `toml:"max_concurrent_remedies"`
	// Workers is the number of probe workers: the probe rounds that are
	// due run on this many workers at once (a round waiting on a target
	// that does not answer gives its worker up after a few milliseconds).
	// 0 (default) means 64 per CPU, at least 64 and at most 1024; else 1
	// to 1024.
	Workers int `toml:"workers"`
	// UnitEvents makes medic follow the configured units' state changes
	// over D-Bus signals, so that a unit that dies is probed (and healed)
	// at once instead of at the next interval (true). false leaves
	// detection to the probes' schedule alone.
	UnitEvents bool `toml:"unit_events"`
	// JournalLines is how many of a unit's last journal lines go into its
	// alerts (20); 0 turns journal reading off. Reading another unit's
	// journal needs medic in the systemd-journal (or adm) group.
	JournalLines int `toml:"journal_lines"`
	// OutboxMax bounds the messages waiting per notifier in the outbox
	// (1000). When full, the oldest reminders are dropped first; firing and
	// resolved messages are never dropped.
	OutboxMax int `toml:"outbox_max"`
	// IncidentHistory is how many ended incidents medic keeps in
	// state_dir/incidents (1000); 0 keeps none.
	IncidentHistory int `toml:"incident_history"`
	// IncidentRetention removes kept incidents that ended longer ago
	// (2160h, 90 days); 0 means no bound of age.
	IncidentRetention Duration `toml:"incident_retention"`
}

// Check is one [[check]] table: a systemd unit, the probes that tell whether
// it works, what to do when they fail and whom to tell.
type Check struct {
	// Name identifies the check in logs, alerts and metrics; required,
	// unique, made of letters, digits, '.', '_' and '-'.
	Name string `toml:"name"`
	// Unit is the systemd unit to remedy, e.g. "my-app.service"; required
	// unless Remedy.Action is "none". These are the only units medic acts on.
	Unit string `toml:"unit"`
	// Interval is the time between two probes; default the agent's.
	Interval Duration `toml:"interval"`
	// Timeout is the time one probe may take; default the agent's. It must
	// be shorter than Interval.
	Timeout Duration `toml:"timeout"`
	// RetryInterval is the shorter delay before the next probe after a
	// failed one; default min(1s, Interval). More than 0, at most Interval.
	RetryInterval Duration `toml:"retry_interval"`
	// Failures is the failure threshold: consecutive failed probes before
	// medic acts (3, at least 1).
	Failures int `toml:"failures"`
	// Successes is the success threshold: consecutive good probes before a
	// failing check counts as healthy again (1, at least 1).
	Successes int `toml:"successes"`
	// Grace is the grace period after medic starts and after each
	// (re)start of the unit during which failures are not counted (10s, 0 or
	// more).
	Grace Duration `toml:"grace"`
	// RestartStopped makes medic restart the unit even when an operator
	// stopped it (`systemctl stop`); by default (false) such a unit is left
	// alone, reported as stopped by the operator, until it is started again
	// or `medic resume`.
	RestartStopped bool `toml:"restart_stopped"`
	// ClientUser is the user the proxy in front of the backend runs as
	// ("www-data"): a unix probe passes only when this user could connect
	// to its socket too (search permission on each directory of the path,
	// path_resolution(7), and write permission on the socket, unix(7)),
	// and diagnosis says why it cannot. A user unknown on the host is
	// reported once and the probe checks medic's own access only.
	ClientUser string `toml:"client_user"`
	// Probes are the [[check.probe]] tables; at least one. The check fails
	// when any of them fails.
	Probes []Probe `toml:"probe"`
	// Remedy is the [check.remedy] table.
	Remedy Remedy `toml:"remedy"`
	// Escalate is the [check.escalate] table.
	Escalate Escalate `toml:"escalate"`
}

// Remedy is the [check.remedy] table: what medic does to a failing unit and
// how often.
type Remedy struct {
	// Action is "restart" (default), "start" (only start the unit when it is
	// not active) or "none" (only probe and escalate).
	Action string `toml:"action"`
	// VerifyTimeout is how long the probes may take to pass once the
	// restart job is done (30s, more than 0).
	VerifyTimeout Duration `toml:"verify_timeout"`
	// MaxRestarts is the restart budget: restarts allowed within Window
	// before medic gives up and escalates (3, at least 1 unless Action is
	// "none").
	MaxRestarts int `toml:"max_restarts"`
	// Window is the sliding window of the restart budget (10m, more than 0).
	Window Duration `toml:"window"`
	// Backoff is the delay before the second attempt, doubling for each
	// further one (5s, 0 or more).
	Backoff Duration `toml:"backoff"`
	// BackoffMax caps the backoff (5m, at least Backoff).
	BackoffMax Duration `toml:"backoff_max"`
	// RetryAfter renews the restart budget this long after medic gave up
	// (1h); 0 means never: a human must act.
	RetryAfter Duration `toml:"retry_after"`
	// JobTimeout is how long medic waits for the result of systemd's job
	// (90s, more than 0).
	JobTimeout Duration `toml:"job_timeout"`
}

// Watch holds the [[watch.*]] tables.
type Watch struct {
	// Nginx are the nginx error logs to follow ([[watch.nginx]]).
	Nginx []NginxWatch `toml:"nginx"`
}

// NginxWatch is one [[watch.nginx]] table: an nginx error log whose
// upstream errors ("connect() failed (111: Connection refused) while
// connecting to upstream", "upstream timed out", "no live upstreams", ...)
// make the checks that probe that upstream probe at once.
type NginxWatch struct {
	// ErrorLog is the absolute path of nginx's error_log, e.g.
	// "/var/log/nginx/error.log". It is followed from its end, across
	// logrotate's rename-and-create and copytruncate.
	ErrorLog string `toml:"error_log"`
}

// Escalate is the [check.escalate] table: whom to tell about an incident.
type Escalate struct {
	// Notify names the notifiers that receive this check's incidents.
	Notify []string `toml:"notify"`
	// RepeatInterval is the time between reminders of an incident still
	// open (4h); 0 sends no reminders.
	RepeatInterval Duration `toml:"repeat_interval"`
	// NotifyOnRecovery also sends a message when a restart fixed the check
	// without escalation (false): such incidents are otherwise only logged.
	NotifyOnRecovery bool `toml:"notify_on_recovery"`
	// FlapThreshold: when the check was restarted and recovered more than
	// this many times within the remedy window, medic escalates one
	// "flapping" incident that stays open until the check has been stable
	// for a whole window (2, below the default max_restarts of 3 so that a
	// flapping check is noticed before its budget is spent); 0 turns
	// flapping detection off.
	FlapThreshold int `toml:"flap_threshold"`
}

// Defaults. A file is decoded on top of these; change them only together
// with config.example.toml (a test compares the two).
var (
	// DefaultAgent is the [agent] table when the file leaves keys out.
	DefaultAgent = Agent{
		Bus:                   "system",
		Interval:              Duration{10 * time.Second},
		Timeout:               Duration{2 * time.Second},
		Jitter:                0.1,
		StateDir:              "/var/lib/medic",
		StatusSocket:          "/run/medic/medic.sock",
		MetricsListen:         "",
		HTTPListen:            "",
		MaxConcurrentRemedies: 4,
		UnitEvents:            true,
		JournalLines:          20,
		OutboxMax:             1000,
		IncidentHistory:       1000,
		IncidentRetention:     Duration{90 * 24 * time.Hour},
	}

	// DefaultRemedy is a check's [check.remedy] table when left out.
	DefaultRemedy = Remedy{
		Action:        "restart",
		VerifyTimeout: Duration{30 * time.Second},
		MaxRestarts:   3,
		Window:        Duration{10 * time.Minute},
		Backoff:       Duration{5 * time.Second},
		BackoffMax:    Duration{5 * time.Minute},
		RetryAfter:    Duration{time.Hour},
		JobTimeout:    Duration{90 * time.Second},
	}

	// DefaultEscalate is a check's [check.escalate] table when left out.
	DefaultEscalate = Escalate{
		RepeatInterval:   Duration{4 * time.Hour},
		NotifyOnRecovery: false,
		FlapThreshold:    2,
	}

	// DefaultCheck is a [[check]] table's defaults. Parse replaces Interval
	// and Timeout with the agent's, and RetryInterval with min(1s, Interval),
	// for a check that does not set them.
	DefaultCheck = Check{
		ClientUser:    "www-data",
		Interval:      DefaultAgent.Interval,
		Timeout:       DefaultAgent.Timeout,
		RetryInterval: Duration{time.Second},
		Failures:      3,
		Successes:     1,
		Grace:         Duration{10 * time.Second},
		Remedy:        DefaultRemedy,
		Escalate:      DefaultEscalate,
	}

	// DefaultConfig is a file with only an empty [agent] table.
	DefaultConfig = Config{Agent: DefaultAgent}
)

// DefaultRetryInterval is the longest default retry_interval: a check's
// default is min(DefaultRetryInterval, its interval).
const DefaultRetryInterval = time.Second

// tomlKeys returns the TOML names of the fields of the struct v.
func tomlKeys(v any) []string {
	t := reflect.TypeOf(v)
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		out = append(out, name)
	}
	return out
}

// Load reads the file at path and returns it parsed and validated, as Parse
// does. It fails with a plain error when the file cannot be read, and with
// Errors when its content is wrong.
//
// Load also refuses an SMTP password written inline in a file that users
// other than its owner and group can read: whoever can read the file has the
// password. Use password_file or password_credential, or chmod o-r the file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("load config: %w", err)
	}
	// One byte past the bound is enough for Parse to refuse the file; a
	// larger file is never read whole. The buffer is sized from the file's
	// size, and reading goes on past it (up to the bound) for a file that
	// grew meanwhile.
	size := MaxFileSize + 1
	if fi.Mode().IsRegular() && fi.Size() < int64(size) {
		size = int(fi.Size()) + 1
	}
	data := make([]byte, size)
	n, err := io.ReadFull(f, data)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	case err != nil:
		return nil, fmt.Errorf("load config: %w", err)
	case n < MaxFileSize+1:
		more, err := io.ReadAll(io.LimitReader(f, int64(MaxFileSize+1-n)))
		if err != nil {
			return nil, fmt.Errorf("load config: %w", err)
		}
		data = append(data, more...)
		n += len(more)
	}
	data = data[:n]
	return parse(data, path, fi.Mode().Perm())
}

// Parse decodes data on top of the defaults and validates the result. file
// names the source in errors (it may be empty). On any problem it returns nil
// and Errors holding every problem found: TOML syntax errors and values of
// the wrong type, unknown keys, and everything Validate reports.
//
// Before decoding, Parse refuses text longer than MaxFileSize or nested
// deeper than MaxDepth, with one Error naming the line where the bound was
// passed; the decoder never sees such text.
func Parse(data []byte, file string) (*Config, error) {
	return parse(data, file, 0)
}

// parse is Parse for a file whose permission bits are perm (0 when unknown).
func parse(data []byte, file string, perm os.FileMode) (*Config, error) {
	if e := prescan(data, file); e != nil {
		return nil, Errors{e}
	}
	d := decoder{
		file: file,
		loc:  newLocator(data),
	}
	cfg, err := d.decode(data)
	if err != nil {
		return nil, err
	}
	var verrs Errors
	if err := cfg.Validate(); err != nil && !errors.As(err, &verrs) {
		return nil, err // not reached: Validate returns only Errors
	}
	all := append(d.unknown, verrs...)
	if perm&0o004 != 0 {
		for i, n := range cfg.Notifiers {
			if n.Settings == nil {
				continue
			}
			if k, instead := n.Settings.inlineSecret(); k != "" {
				key := fmt.Sprintf("notifier[%d].%s", i, k)
				all = append(all, &Error{File: file, Line: d.loc.line(key), Key: key,
					Msg: fmt.Sprintf("%s written inline in a file that others can read (mode %04o): use %s, or chmod o-r %s", k, perm, instead, file)})
			}
		}
	}
	if len(all) > 0 {
		sortErrors(all)
		return nil, all
	}
	// Past validation, only the files a Config names are checked again
	// (ReadSecrets, CheckFiles): keep the lines of their keys, not of every
	// key of every check (a file with 10,000 checks has 80,000).
	cfg.loc.keep(func(path string) bool {
		return !strings.HasPrefix(path, "check[") || strings.HasSuffix(path, "_file")
	})
	return cfg, nil
}

type decoder struct {
	file    string
	loc     *locator
	errs    Errors // values that could not be decoded
	unknown Errors // unknown keys
}

func (d *decoder) add(key, msg string) {
	d.errs = append(d.errs, &Error{File: d.file, Line: d.loc.line(key), Key: key, Msg: msg})
}

// rawConfig decodes arrays of tables as Primitive values so that each element
// decodes on its own: a wrong value is then reported with the element's index,
// and the elements after it are still checked.
type rawConfig struct {
	Agent     Agent            `toml:"agent"`
	Checks    []toml.Primitive `toml:"check"`
	Notifiers []toml.Primitive `toml:"notifier"`
	Watch     Watch            `toml:"watch"`
}

type rawCheck struct {
	Check
	Probes []toml.Primitive `toml:"probe"`
}

// decode returns the decoded config, or nil and Errors when the text cannot
// be decoded. Unknown keys are left in d.errs.
func (d *decoder) decode(data []byte) (*Config, error) {
	raw := rawConfig{Agent: DefaultAgent}
	md, err := toml.Decode(string(data), &raw)
	if err != nil {
		d.decodeError("", err)
		sortErrors(d.errs)
		return nil, d.errs
	}
	cfg := &Config{File: d.file, Agent: raw.Agent, Watch: raw.Watch, loc: d.loc}
	for i, p := range raw.Checks {
		key := fmt.Sprintf("check[%d]", i)
		rc := rawCheck{Check: DefaultCheck}
		rc.Interval, rc.Timeout = cfg.Agent.Interval, cfg.Agent.Timeout
		if err := md.PrimitiveDecode(p, &rc); err != nil {
			d.decodeError(key, err)
			continue
		}
		c := rc.Check
		c.Probes = nil
		for j, pp := range rc.Probes {
			var pr Probe
			if err := md.PrimitiveDecode(pp, &pr); err != nil {
				d.decodeError(fmt.Sprintf("%s.probe[%d]", key, j), err)
				continue
			}
			c.Probes = append(c.Probes, pr)
		}
		cfg.Checks = append(cfg.Checks, c)
	}
	for i, p := range raw.Notifiers {
		if n, ok := d.notifier(md, fmt.Sprintf("notifier[%d]", i), p); ok {
			cfg.Notifiers = append(cfg.Notifiers, n)
		}
	}
	if len(d.errs) > 0 {
		// A value of the wrong type stops the decoding of its element, which
		// leaves the config half decoded: listing its other keys as unknown
		// or validating it would only add noise.
		sortErrors(d.errs)
		return nil, d.errs
	}
	d.unknownKeys(md.Undecoded())
	// Defaults that depend on other values. Decoding each check again into
	// a struct of pointers only tells which keys it sets (a struct, not a
	// map, so that only these keys are decoded again: this loop runs once
	// per check); it must come after Undecoded, since it marks keys as
	// decoded.
	for i, p := range raw.Checks {
		var set struct {
			RetryInterval *Duration `toml:"retry_interval"`
		}
		if err := md.PrimitiveDecode(p, &set); err != nil {
			continue
		}
		if set.RetryInterval == nil {
			c := &cfg.Checks[i]
			c.RetryInterval = Duration{DefaultRetryInterval}
			if c.Interval.Duration > 0 && c.Interval.Duration < DefaultRetryInterval {
				c.RetryInterval = c.Interval
			}
		}
	}
	return cfg, nil
}

var (
	tomlPrefixRE = regexp.MustCompile(`^toml: (?:line \d+ )?(?:\(last key "((?:[^"\\]|\\.)*)"\): )?`)
	badTypeRE    = regexp.MustCompile(`^incompatible types: TOML value has type (\S+); destination has type (\S+)$`)
)

// decodeError records err from decoding the element at key ("" for the whole
// file).
func (d *decoder) decodeError(elem string, err error) {
	var (
		line    int
		lastKey string
		msg     = err.Error()
	)
	var pe toml.ParseError
	if errors.As(err, &pe) {
		line, lastKey, msg = pe.Position.Line, pe.LastKey, pe.Message
	} else if m := tomlPrefixRE.FindStringSubmatch(msg); m != nil {
		lastKey, msg = m[1], msg[len(m[0]):]
	}
	if m := badTypeRE.FindStringSubmatch(msg); m != nil {
		got, want := tomlTypeName(m[1]), tomlTypeName(m[2])
		msg = fmt.Sprintf("wrong type: got %s, want %s", got, want)
		switch lastKey {
		case "check", "notifier", "check.probe":
			if got == "table" && want == "array" {
				msg = fmt.Sprintf("wrong type: write [[%s]] (an array of tables), not [%s]", lastKey, lastKey)
			}
		}
	}
	if elem == "" {
		// The whole file: a syntax error (whose line the parser knows) or
		// a wrong value in [agent], where keys are not repeated.
		key := lastKey
		if len(d.loc.find(key)) == 0 {
			key = ""
		}
		if line == 0 {
			line = d.loc.line(key)
		}
		d.errs = append(d.errs, &Error{File: d.file, Line: line, Key: key, Msg: msg})
		return
	}
	// Inside an element of an array of tables, the decoder's line is that
	// of the last element with the same key: find the right one.
	key := elem
	plain := stripIndexes(elem)
	if rel, ok := strings.CutPrefix(lastKey, plain+"."); ok {
		key = elem + "." + rel
	}
	d.add(key, msg)
}

// tomlTypeName names a Go type from the decoder's messages as TOML does.
func tomlTypeName(t string) string {
	switch {
	case t == "string":
		return "string"
	case strings.HasPrefix(t, "int") || strings.HasPrefix(t, "uint") || t == "integer":
		return "integer"
	case strings.HasPrefix(t, "float"):
		return "float"
	case t == "bool":
		return "boolean"
	case strings.HasPrefix(t, "map") || t == "struct" || t == "table":
		return "table"
	case strings.HasPrefix(t, "[]") || t == "slice" || t == "array":
		return "array"
	case t == "time.Time":
		return "datetime"
	}
	return t
}

// unknownKeys records one error per key the file sets that medic does not
// know, at every place the file sets it.
func (d *decoder) unknownKeys(keys []toml.Key) {
	undecoded := map[string]bool{}
	for _, k := range keys {
		undecoded[strings.Join(k, ".")] = true
	}
	reported := map[string]bool{}
	for _, k := range keys {
		plain := strings.Join(k, ".")
		if len(k) > 1 && undecoded[strings.Join(k[:len(k)-1], ".")] {
			continue // report the unknown table, not each key in it
		}
		if reported[plain] {
			// The decoder lists a key once per array element that sets
			// it; one pass over the places below reports all of them.
			continue
		}
		reported[plain] = true
		msg := "unknown key"
		if s := suggest(k); s != "" {
			msg += fmt.Sprintf("; did you mean %q?", s)
		}
		found := d.loc.find(plain)
		if len(found) == 0 {
			// Set in an inline table: name the key without indexes, on
			// the line of the nearest enclosing key the source names.
			line := 0
			for p := parentKey(plain); p != "" && line == 0; p = parentKey(p) {
				if f := d.loc.find(p); len(f) > 0 {
					line = f[0].line
				}
			}
			d.unknown = append(d.unknown, &Error{File: d.file, Line: line, Key: plain, Msg: msg})
			continue
		}
		for _, e := range found {
			d.unknown = append(d.unknown, &Error{File: d.file, Line: e.line, Key: e.path, Msg: msg})
		}
	}
}

// suggest returns the known key closest to the last piece of the unknown key
// k, or "" when none is close.
func suggest(k toml.Key) string {
	return closest(k[len(k)-1], knownKeys[strings.Join(k[:len(k)-1], ".")])
}

// closest returns the name in known closest to key, or "" when none is
// close.
func closest(key string, known []string) string {
	last := key
	best, bestDist := "", 3
	for _, name := range known {
		if dist := editDistance(strings.ToLower(last), name); dist < bestDist {
			best, bestDist = name, dist
		}
	}
	return best
}

// knownKeys lists the keys of each table, by its plain path.
var knownKeys = map[string][]string{
	"":               tomlKeys(Config{}),
	"agent":          tomlKeys(Agent{}),
	"check":          tomlKeys(Check{}),
	"check.probe":    probeKeys(),
	"check.remedy":   tomlKeys(Remedy{}),
	"check.escalate": tomlKeys(Escalate{}),
	"notifier":       notifierKeys(),
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// sortErrors orders errs by line, keeping the order of errors on one line;
// errors without a line go last.
func sortErrors(errs Errors) {
	slices.SortStableFunc(errs, func(a, b *Error) int {
		la, lb := a.Line, b.Line
		if la == 0 {
			la = int(^uint(0) >> 1)
		}
		if lb == 0 {
			lb = int(^uint(0) >> 1)
		}
		return la - lb
	})
}
