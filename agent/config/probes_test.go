package config

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	"github.com/medic-watchdog/medic/probe"
)

// checkWithProbe is a [[check]] with one probe whose keys are probe (TOML lines
// after type); the probe table starts on line 4.
func checkWithProbe(probe string) string {
	return "[[check]]\nname = \"app\"\nunit = \"app.service\"\n[[check.probe]]\n" + probe
}

// TestProbeKindsDecodeValidateBuild: a probe of every kind decodes from its
// table, validates, gives the Spec of its keys and builds with probe.New.
func TestProbeKindsDecodeValidateBuild(t *testing.T) {
	tables := map[probe.Type]struct {
		text        string
		want        probe.Spec
		wantNetwork string
		wantAddr    string
	}{
		probe.TypeTCP: {"type = \"tcp\"\naddress = \"127.0.0.1:8080\"\n",
			probe.Spec{Type: probe.TypeTCP, Address: "127.0.0.1:8080"}, "tcp", "127.0.0.1:8080"},
		probe.TypeUnix: {"type = \"unix\"\npath = \"/run/app.sock\"\n",
			probe.Spec{Type: probe.TypeUnix, Path: "/run/app.sock", ClientUser: "www-data"}, "unix", "/run/app.sock"},
		probe.TypeHTTP: {"type = \"http\"\nurl = \"https://app.example/health\"\nexpect_status = [204]\nheaders = { Host = \"app\" }\n",
			probe.Spec{Type: probe.TypeHTTP, HTTP: probe.HTTPOptions{URL: "https://app.example/health",
				ExpectStatus: []probe.StatusRange{{Min: 204, Max: 204}}, Headers: map[string]string{"Host": "app"}}},
			"tcp", "app.example:443"},
	}
	if got, want := ProbeTypes(), []probe.Type{probe.TypeTCP, probe.TypeUnix, probe.TypeHTTP}; !slices.Equal(got, want) {
		t.Errorf("ProbeTypes() = %q, want %q", got, want)
	}
	if got, want := slices.Sorted(slices.Values(ProbeTypes())), probe.Types(); !slices.Equal(got, want) {
		t.Errorf("config's probe kinds %q, probe.Kinds %q: want the same", got, want)
	}
	for _, typ := range ProbeTypes() {
		tt, ok := tables[typ]
		if !ok {
			t.Errorf("kind %q has no table in this test", typ)
			continue
		}
		cfg, err := Parse([]byte(checkWithProbe(tt.text)), "m.toml")
		if err != nil {
			t.Errorf("%s: Parse: %v", typ, err)
			continue
		}
		s := cfg.Checks[0].ProbeSpec(0)
		if !reflect.DeepEqual(s, tt.want) {
			t.Errorf("%s: ProbeSpec = %+v, want %+v", typ, s, tt.want)
		}
		if network, addr := s.Endpoint(); network != tt.wantNetwork || addr != tt.wantAddr {
			t.Errorf("%s: Endpoint() = %q, %q, want %q, %q", typ, network, addr, tt.wantNetwork, tt.wantAddr)
		}
		if _, err := probe.New(s); err != nil {
			t.Errorf("%s: probe.New: %v", typ, err)
		}
	}
}

// TestProbeRegistry: each kind's table is its own part of Probe, its keys
// are no other kind's, and every key is known to the decoder.
func TestProbeRegistry(t *testing.T) {
	owner := map[string]probe.Type{}
	for _, k := range probeKinds {
		var p Probe
		s := k.Table(&p)
		if reflect.TypeOf(s).Kind() != reflect.Pointer {
			t.Errorf("%s: Table() = %T, want a pointer into the Probe", k.Type, s)
			continue
		}
		if at, start := reflect.ValueOf(s).Pointer(), reflect.ValueOf(&p).Pointer(); at < start || at >= start+reflect.TypeOf(p).Size() {
			t.Errorf("%s: Table() points outside the Probe", k.Type)
		}
		for _, key := range tomlKeys(s) {
			if o, dup := owner[key]; dup || key == "type" {
				t.Errorf("%s: key %q is also %q's", k.Type, key, o)
			}
			owner[key] = k.Type
		}
	}
	want := append(slices.Sorted(maps.Keys(owner)), "type")
	slices.Sort(want)
	if got := slices.Sorted(slices.Values(probeKeys())); !slices.Equal(got, want) {
		t.Errorf("probeKeys() = %q, want %q", got, want)
	}
}

// TestProbeKeysOfTheKind: a probe sets only its kind's keys; another
// kind's key says which kind reads it, and an unknown or missing type lists
// the known ones.
func TestProbeKeysOfTheKind(t *testing.T) {
	for _, tt := range []struct {
		name, text string
		want       []string
	}{
		{"tcp key on unix", "type = \"unix\"\npath = \"/run/a.sock\"\naddress = \"127.0.0.1:1\"\n",
			[]string{`m.toml:7: check[0].probe[0].address: not used by a unix probe (only by tcp)`}},
		{"http keys on tcp", "type = \"tcp\"\naddress = \"127.0.0.1:1\"\nurl = \"http://x/\"\nexpect_body = \"ok\"\n",
			[]string{`m.toml:7: check[0].probe[0].url: not used by a tcp probe (only by http)`,
				`m.toml:8: check[0].probe[0].expect_body: not used by a tcp probe (only by http)`}},
		{"unix key on http", "type = \"http\"\nurl = \"http://x/\"\npath = \"/run/a.sock\"\n",
			[]string{`m.toml:7: check[0].probe[0].path: not used by a http probe (only by unix)`}},
		{"unknown type", "type = \"icmp\"\naddress = \"127.0.0.1:1\"\n",
			[]string{`m.toml:5: check[0].probe[0].type: unknown probe type "icmp": want "tcp", "unix" or "http"`}},
		{"missing type", "address = \"127.0.0.1:1\"\n",
			[]string{`m.toml:4: check[0].probe[0].type: missing probe type: want "tcp", "unix" or "http"`}},
		{"misspelt key", "type = \"tcp\"\nadress = \"127.0.0.1:1\"\n",
			[]string{`m.toml:4: check[0].probe[0].address: missing address: want host:port, e.g. "127.0.0.1:8080"`,
				`m.toml:6: check[0].probe[0].adress: unknown key; did you mean "address"?`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := problems(t, checkWithProbe(tt.text)); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("problems:\n got %q\nwant %q", got, tt.want)
			}
		})
	}
}
