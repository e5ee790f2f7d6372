package probe

import (
	"slices"
	"testing"
)

// TestKinds: every registered kind builds a Prober from a valid Spec of its
// type and names the socket it connects to.
func TestKinds(t *testing.T) {
	valid := map[Type]Spec{
		TypeTCP:  {Type: TypeTCP, Address: "127.0.0.1:8080"},
		TypeUnix: {Type: TypeUnix, Path: "/run/app.sock"},
		TypeHTTP: {Type: TypeHTTP, HTTP: HTTPOptions{URL: "http://127.0.0.1:8080/health"}},
	}
	if got, want := Types(), []Type{TypeHTTP, TypeTCP, TypeUnix}; !slices.Equal(got, want) {
		t.Errorf("Types() = %v, want %v", got, want)
	}
	for _, typ := range Types() {
		s, ok := valid[typ]
		if !ok {
			t.Errorf("kind %q has no valid Spec in this test", typ)
			continue
		}
		if k := Kinds[typ]; k.New == nil || k.Endpoint == nil {
			t.Errorf("kind %q: New or Endpoint is nil", typ)
			continue
		}
		if _, err := New(s); err != nil {
			t.Errorf("New(%+v): %v", s, err)
		}
		if network, addr := s.Endpoint(); network == "" || addr == "" {
			t.Errorf("%+v.Endpoint() = %q, %q, want both set", s, network, addr)
		}
	}
}

func TestSpecEndpoint(t *testing.T) {
	tests := []struct {
		spec                 Spec
		wantNetwork, wantAdr string
	}{
		{Spec{Type: TypeTCP, Address: "db.internal:5432"}, "tcp", "db.internal:5432"},
		{Spec{Type: TypeUnix, Path: "/run/app.sock"}, "unix", "/run/app.sock"},
		{Spec{Type: TypeHTTP, HTTP: HTTPOptions{URL: "http://127.0.0.1:8080/health"}}, "tcp", "127.0.0.1:8080"},
		{Spec{Type: TypeHTTP, HTTP: HTTPOptions{URL: "http://app.example/health"}}, "tcp", "app.example:80"},
		{Spec{Type: TypeHTTP, HTTP: HTTPOptions{URL: "HTTPS://[::1]/health"}}, "tcp", "[::1]:443"},
		{Spec{Type: TypeHTTP, HTTP: HTTPOptions{URL: "http://%zz/"}}, "tcp", ""},
		{Spec{Type: TypeHTTP, HTTP: HTTPOptions{URL: "http:///health"}}, "tcp", ""},
		{Spec{Type: "icmp", Address: "x:1"}, "", ""},
	}
	for _, tt := range tests {
		network, addr := tt.spec.Endpoint()
		if network != tt.wantNetwork || addr != tt.wantAdr {
			t.Errorf("%+v.Endpoint() = %q, %q, want %q, %q", tt.spec, network, addr, tt.wantNetwork, tt.wantAdr)
		}
	}
}
