package config

import (
	"reflect"
	"slices"
	"strconv"
	"strings"

	"github.com/medic-watchdog/medic/probe"
)

// Probe is one [[check.probe]] table: its type, and the keys of its kind.
// Each kind's keys are a table type of their own, declared in the kind's
// file (probe_tcp.go, probe_unix.go, probe_http.go) with their validation
// and the probe.Spec they make; they are embedded here, so that the TOML
// table stays flat and p.Address, p.Path or p.URL read the kind's key.
// Only the table of Type is read: a key of another kind is an error naming
// the kinds that read it.
type Probe struct {
	// Type is "tcp", "unix" or "http" (which also covers https URLs): it
	// selects the kind, whose keys the table may set besides type.
	Type probe.Type `toml:"type"`
	TCPProbe
	UnixProbe
	HTTPProbe
}

// ProbeSettings is the table of one kind of probe: the keys of a
// [[check.probe]] table that only that kind reads. The implementations are
// this package's *TCPProbe, *UnixProbe and *HTTPProbe.
type ProbeSettings interface {
	// validate reports every problem of the table at key
	// ("check[0].probe[1]") to v. It touches no file.
	validate(v *validator, key string)
	// spec returns the probe.Spec of the table, without its Type. A unix
	// probe checks that clientUser could connect too; the other kinds
	// ignore it.
	spec(clientUser string) probe.Spec
}

// ProbeKind is one kind of probe as the configuration declares it. The
// Prober of the same type is in probe.Kinds.
type ProbeKind struct {
	// Type is the kind's type key.
	Type probe.Type
	// Table returns the kind's table within p.
	Table func(p *Probe) ProbeSettings
}

// probeKinds is the registry of probe kinds, in the order errors list them.
// Each kind lives in its own file (probe_<type>.go) with its table,
// validation and spec; adding a kind touches its file, its test, this list,
// Probe's embedded tables and probe.Kinds.
var probeKinds = []ProbeKind{tcpProbeKind, unixProbeKind, httpProbeKind}

// probeKind returns the kind of type t; ok is false when no kind has it.
func probeKind(t probe.Type) (kind ProbeKind, ok bool) {
	i := slices.IndexFunc(probeKinds, func(k ProbeKind) bool { return k.Type == t })
	if i < 0 {
		return ProbeKind{}, false
	}
	return probeKinds[i], true
}

// ProbeTypes returns the known probe types, in the order errors list them.
func ProbeTypes() []probe.Type {
	out := make([]probe.Type, len(probeKinds))
	for i, k := range probeKinds {
		out[i] = k.Type
	}
	return out
}

// knownProbeTypes lists the types for errors: `"tcp", "unix" or "http"`.
func knownProbeTypes() string { return alternatives(ProbeTypes()) }

// alternatives quotes items and joins them for an error message:
// `"a", "b" or "c"`.
func alternatives[T ~string](items []T) string {
	quoted := make([]string, len(items))
	for i, t := range items {
		quoted[i] = strconv.Quote(string(t))
	}
	last := len(quoted) - 1
	return strings.Join(quoted[:last], ", ") + " or " + quoted[last]
}

// probeKeys returns every key a [[check.probe]] table may have, of any
// kind, in the order of Probe's fields.
func probeKeys() []string {
	keys := []string{"type"}
	for _, k := range probeKinds {
		keys = append(keys, tomlKeys(k.Table(&Probe{}))...)
	}
	return keys
}

// probeKindsWithKey returns the types of the kinds whose table has key.
func probeKindsWithKey(key string) []string {
	var out []string
	for _, k := range probeKinds {
		if slices.Contains(tomlKeys(k.Table(&Probe{})), key) {
			out = append(out, string(k.Type))
		}
	}
	return out
}

// setKeys returns the TOML names of the fields of the table s (a pointer
// to a struct) that are set: not zero, and for a map or slice not empty.
func setKeys(s ProbeSettings) []string {
	v := reflect.ValueOf(s).Elem()
	names := tomlKeys(s)
	var out []string
	for i, name := range names {
		f := v.Field(i)
		switch f.Kind() {
		case reflect.Map, reflect.Slice:
			if f.Len() == 0 {
				continue
			}
		default:
			if f.IsZero() {
				continue
			}
		}
		out = append(out, name)
	}
	return out
}

// Spec converts p to the probe package's description of one probe: its
// type and the keys of its kind. A probe of an unknown type gives a Spec
// with only the type. The expect_status entries that do not parse are left
// out; Validate reports them.
func (p Probe) Spec() probe.Spec {
	return p.spec("")
}

// spec is Spec with the client user of a unix probe.
func (p *Probe) spec(clientUser string) probe.Spec {
	var s probe.Spec
	if kind, ok := probeKind(p.Type); ok {
		s = kind.Table(p).spec(clientUser)
	}
	s.Type = p.Type
	return s
}

// ProbeSpec is the Spec of c's probe number j as the agent builds it: for a
// unix probe, with the check's client_user as the Spec's ClientUser, so that
// the probe passes only when that user could connect too (path_resolution(7),
// unix(7)).
func (c Check) ProbeSpec(j int) probe.Spec {
	return c.Probes[j].spec(c.ClientUser)
}

// probe validates the [[check.probe]] table p at key: its type, that it
// sets no key of another kind, and the keys of its kind.
func (v *validator) probe(key string, p *Probe) {
	kind, ok := probeKind(p.Type)
	switch {
	case p.Type == "":
		v.errorf(key+".type", "missing probe type: want %s", knownProbeTypes())
		return
	case !ok:
		v.errorf(key+".type", "unknown probe type %q: want %s", p.Type, knownProbeTypes())
		return
	}
	for _, other := range probeKinds {
		if other.Type == p.Type {
			continue
		}
		for _, k := range setKeys(other.Table(p)) {
			v.errorf(key+"."+k, "not used by a %s probe (only by %s)", p.Type, strings.Join(probeKindsWithKey(k), ", "))
		}
	}
	kind.Table(p).validate(v, key)
}
